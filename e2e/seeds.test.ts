// The seed documents' NetworkPolicy scenarios with real traffic: one subtest
// per seed builds a one-node cluster (agent, pods wired by the CNI plugin,
// kube-dns, service NAT, an outside host), runs every step of the document and
// asserts each measured cell, then checks that teardown left nothing behind.
import t from 'tap'
import { scenarios } from './scenarios/index.ts'
import { runScenario } from './scenarios/run.ts'
import { formatMatrix } from './scenarios/matrix.ts'

const root = process.getuid?.() === 0
// ~80 s of work, but the kernel lock may first wait for other agent-owning tests
t.setTimeout(40 * 60_000)

for (const sc of scenarios) {
  t.test(`seed ${sc.seed}: ${sc.title}`, { skip: root ? false : 'needs root', timeout: 20 * 60_000 }, async (t) => {
    const res = await runScenario(
      sc,
      (r) => {
        t.comment(`step ${r.index + 1}/${sc.steps.length}: ${r.step.title} (${r.ms} ms)\n${formatMatrix(sc, r.matrix)}`)
        for (const c of r.matrix.flat()) {
          if (c.expect === '.') continue
          t.equal(c.got, c.expect, `step ${r.index + 1} "${r.step.title}": ${c.row} -> ${c.col}${c.detail ? ` (${c.detail})` : ''}`)
        }
      },
      (m) => t.comment(m),
    )
    t.error(res.error, 'every step ran')
    t.equal(res.steps.length, sc.steps.length, 'all steps measured')
    t.same(res.teardownErrors, [], 'teardown without errors')
    t.same(res.leftovers, [], 'nothing left behind (ws-* netns, wren*/wsout links, wren chains and sets, routes)')
  })
}
