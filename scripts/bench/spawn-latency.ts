// What one short command costs a big Node process: `ipset restore` with empty input, run
// through shared/exec.ts (child_process.spawn, which forks the whole process) and through
// shared/spawner.ts (the native helper, shim/wren-spawn.c, spawns it). A ballast heap stands in
// for the agent's. The reference is the floor: the same command typed into a long-lived `sh`
// (no output captured). The calls alternate so that system noise falls on all alike. "sync" is
// the part of a call that blocks the event loop (until run() returns its promise). Root.
//   node --no-warnings --experimental-transform-types scripts/bench/spawn-latency.ts [calls] [heapMB]
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec, type Exec } from '../../shared/exec.ts'
import { createSpawner } from '../../shared/spawner.ts'
import { summary } from './report.ts'

const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '')
const calls = Number(process.argv[2] ?? 200)
const heapMB = Number(process.argv[3] ?? 150)

/** Arrays of doubles until the heap holds heapMB: the fork copies page tables for all of it. */
function ballast(mb: number): number[][] {
  const keep: number[][] = []
  while (process.memoryUsage().heapUsed < mb * 1e6) keep.push(Array.from({ length: 100_000 }, (_, i) => i + 0.5))
  return keep
}

/** `ipset restore` through one persistent sh, answered by a line with its exit code. */
function shReference(): { run: Exec; stop(): void } {
  const sh = spawn('sh', [], { stdio: ['pipe', 'pipe', 'inherit'] })
  const waiting: ((code: number) => void)[] = []
  let buf = ''
  sh.stdout.setEncoding('utf8').on('data', (s: string) => {
    buf += s
    for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) waiting.shift()?.(Number(buf.slice(0, nl)))
  })
  const run: Exec = (cmd, args) =>
    new Promise((resolve) => {
      waiting.push((code) => resolve({ code, stdout: '', stderr: '' }))
      sh.stdin.write(`${[cmd, ...args].join(' ')} </dev/null >/dev/null 2>&1; echo $?\n`)
    })
  return { run, stop: () => sh.stdin.end() }
}

interface Timing {
  total: number[]
  sync: number[]
}

async function once(run: Exec, into: Timing): Promise<void> {
  const t0 = performance.now()
  const p = run('ipset', ['restore'], { input: '' })
  const t1 = performance.now()
  const r = await p
  into.total.push(performance.now() - t0)
  into.sync.push(t1 - t0)
  if (r.code !== 0) throw new Error(`ipset restore exited ${r.code}: ${r.stderr}`)
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wren-spawn-bench-'))
  const helperPath = join(dir, 'wren-spawn')
  const spawner = createSpawner({ helperPath })
  const sh = shReference()
  try {
    const cc = spawnSync('gcc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', helperPath, join(REPO, 'shim', 'wren-spawn.c')], { stdio: 'inherit' })
    if (cc.status !== 0) throw new Error('gcc failed')
    const keep = ballast(heapMB)
    const mem = process.memoryUsage()
    console.log(`heap ${(mem.heapUsed / 1e6).toFixed(0)} MB, rss ${(mem.rss / 1e6).toFixed(0)} MB (${keep.length} ballast arrays); ${calls} calls each`)
    const ways: [string, Exec, Timing][] = [
      ['exec.ts', exec, { total: [], sync: [] }],
      ['spawner', spawner, { total: [], sync: [] }],
      ['sh (ref)', sh.run, { total: [], sync: [] }],
    ]
    for (const [, run] of ways) for (let i = 0; i < 10; i++) await once(run, { total: [], sync: [] }) // warm-up
    for (let i = 0; i < calls; i++) for (const [, run, t] of ways) await once(run, t)
    for (const [name, , t] of ways) console.log(`${name.padEnd(8)} total ${summary(t.total)}   sync ${summary(t.sync)}`)
  } finally {
    await spawner.close()
    sh.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
