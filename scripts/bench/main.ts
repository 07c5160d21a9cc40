// How every benchmark runs: its work on one Cleanup stack, which is undone on
// success, failure, SIGINT and SIGTERM alike (a benchmark leaves namespaces,
// links and agents behind otherwise), then the figures printed.
import { Cleanup } from '../../e2e/lib/host.ts'
import { note, printTable, type Row } from './report.ts'

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)

export interface Printed {
  title: string
  rows: Row[]
  notes: string[]
}

/** Runs `measure`, prints what it returns, tears down, exits (1 on failure or a teardown error, 130 on a signal). */
export async function benchMain(measure: (cleanup: Cleanup) => Promise<Printed>): Promise<void> {
  const cleanup = new Cleanup()
  let stopping = false
  const teardown = async (code: number) => {
    if (stopping) return
    stopping = true
    const errors = await cleanup.run()
    for (const e of errors) log(`cleanup: ${e}`)
    process.exit(errors.length && !code ? 1 : code)
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (log(`${sig}: cleaning up`), void teardown(130)))
  try {
    const { title, rows, notes } = await measure(cleanup)
    printTable(title, rows)
    for (const n of notes) note(n)
  } catch (e) {
    log(`failed: ${process.env.WREN_BENCH_DEBUG ? ((e as Error).stack ?? e) : (e as Error).message}`)
    return teardown(1)
  }
  return teardown(0)
}
