// Runs every seed scenario on this machine with real traffic and prints,
// after each step, the connectivity matrix measured beside the expected one.
// Exits non-zero when a cell differs, a scenario fails, or anything is left
// behind. Usage: scripts/seeds [SEED...]   (e.g. scripts/seeds 002 004)
import { scenarios } from '../e2e/scenarios/index.ts'
import { runScenario } from '../e2e/scenarios/run.ts'
import { LEGEND, formatMatrix, mismatches } from '../e2e/scenarios/matrix.ts'

// a closed pipe (`scripts/seeds | head`) must not kill the run before its teardown
process.stdout.on('error', () => {})

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('seeds: needs root (network namespaces, iptables, ipset)')
    return 2
  }
  const wanted = process.argv.slice(2)
  const chosen = scenarios.filter((s) => !wanted.length || wanted.includes(s.seed))
  if (!chosen.length) {
    console.error(`seeds: no scenario among ${wanted.join(' ')}; known: ${scenarios.map((s) => s.seed).join(' ')}`)
    return 2
  }
  console.log(LEGEND)
  let bad = 0
  const summary: string[] = []
  for (const sc of chosen) {
    console.log(`\n=== seed ${sc.seed}: ${sc.title}`)
    let cells = 0
    let wrong = 0
    const res = await runScenario(
      sc,
      (r) => {
        const m = mismatches(r.matrix)
        cells += r.matrix.flat().filter((c) => c.expect !== '.').length
        wrong += m.length
        console.log(`\n--- ${sc.seed} step ${r.index + 1}/${sc.steps.length}: ${r.step.title}  [${m.length ? `${m.length} MISMATCH` : 'as expected'}, ${r.ms} ms]`)
        console.log(formatMatrix(sc, r.matrix))
      },
      (msg) => console.log(`  (${msg})`),
    )
    const problems = [res.error && `error: ${res.error.message}`, ...res.teardownErrors.map((e) => `teardown: ${e}`), ...res.leftovers.map((l) => `left behind: ${l}`)].filter(Boolean)
    for (const p of problems) console.log(`  ! ${p}`)
    const ok = !problems.length && !wrong && res.steps.length === sc.steps.length
    if (!ok) bad++
    summary.push(`seed ${sc.seed}: ${ok ? 'PASS' : 'FAIL'}  ${res.steps.length}/${sc.steps.length} steps, ${cells - wrong}/${cells} cells as expected, ${(res.ms / 1000).toFixed(1)} s`)
  }
  console.log(`\n${summary.join('\n')}`)
  return bad ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e)
    process.exit(1)
  },
)
