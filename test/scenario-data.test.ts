// Pure checks of the seed scenarios' data and their helpers (no kernel):
// every expected grid parses, every pod/service a row or column names exists
// by the step it is probed in, the DNS wire format round-trips, and the
// matrix printer marks mismatches.
import t from 'tap'
import { scenarios } from '../e2e/scenarios/index.ts'
import { expectedGrid, formatMatrix, mismatches, type Matrix } from '../e2e/scenarios/matrix.ts'
import { decodeAnswer, encodeQuery, frameTcp, hostsFile, searchCandidates, unframeTcp } from '../e2e/lib/dns.ts'
import type { Scenario } from '../e2e/scenarios/types.ts'

/** Pods and services present once step `upto` has run. */
function worldAt(sc: Scenario, upto: number): { pods: Set<string>; services: Set<string> } {
  const pods = new Set(sc.pods.map((p) => `${p.namespace}/${p.name}`))
  const services = new Set((sc.services ?? []).map((s) => `${s.namespace}/${s.name}`))
  for (const step of sc.steps.slice(0, upto + 1)) {
    for (const a of step.actions) {
      if ('addPod' in a) pods.add(`${a.addPod.namespace}/${a.addPod.name}`)
      if ('addService' in a) services.add(`${a.addService.namespace}/${a.addService.name}`)
    }
  }
  return { pods, services }
}

for (const sc of scenarios) {
  t.test(`seed ${sc.seed} data`, async (t) => {
    t.ok(sc.steps.length > 1, 'has steps')
    sc.steps.forEach((step, i) => {
      const grid = expectedGrid(sc, step)
      const { pods, services } = worldAt(sc, i)
      grid.forEach((cells, r) => {
        const row = sc.rows[r]!
        const probed = cells.some((c) => c !== '.')
        if ('pod' in row && probed) t.ok(pods.has(row.pod), `step ${i + 1}: row ${row.id} exists`)
        cells.forEach((c, j) => {
          const col = sc.columns[j]!
          if (c === '.') return
          if (col.kind === 'pod') t.ok(pods.has(col.pod), `step ${i + 1}: column ${col.id} exists`)
          if ((col.kind === 'svc' || col.kind === 'nodeport') && !services.has(col.svc)) t.fail(`step ${i + 1}: service ${col.svc} missing`)
          if ('outside' in row) t.not(col.kind, 'name', 'the outside host does no cluster DNS')
          if (col.kind === 'dns') t.not(c, 'nodns', `${col.id}: a lookup is ok or x (nodns is for names that are then used)`)
        })
      })
    })
    const policies = sc.steps.flatMap((s) => s.actions.flatMap((a) => ('apply' in a ? [a.apply] : [])))
    for (const p of policies) t.equal(p.kind, 'NetworkPolicy', 'only NetworkPolicies are applied')
  })
}

t.test('expected grids reject typos', async (t) => {
  const sc = scenarios[0]!
  const step = sc.steps[0]!
  const row = sc.rows[0]!.id
  t.throws(() => expectedGrid(sc, { ...step, expect: { ...step.expect, [row]: 'ok ok' } }), /cells for/)
  t.throws(() => expectedGrid(sc, { ...step, expect: { ...step.expect, nobody: 'ok' } }), /unknown row/)
  t.throws(() => expectedGrid(sc, { ...step, expect: { ...step.expect, [row]: step.expect[row]!.replace('ok', 'yes') } }), /bad cell/)
})

t.test('DNS wire format', async (t) => {
  const q = encodeQuery(0x1234, 'nginx.default.svc.cluster.local')
  t.equal(q.readUInt16BE(0), 0x1234)
  t.equal(q.readUInt16BE(4), 1, 'one question')
  // a response: the query with QR set, one answer with a compressed name pointer to the question
  const answer = Buffer.concat([q, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 94, 0, 7])])
  answer.writeUInt16BE(0x8180, 2)
  answer.writeUInt16BE(1, 6)
  t.same(decodeAnswer(answer), { id: 0x1234, rcode: 0, addresses: ['10.94.0.7'] })
  t.same(decodeAnswer(unframeTcp(frameTcp(answer))).addresses, ['10.94.0.7'])
  t.throws(() => decodeAnswer(q), /not a response/)
  t.throws(() => encodeQuery(1, 'a..b'), /bad DNS label/)
})

t.test('search list like kubelet resolv.conf (ndots 5)', async (t) => {
  t.same(searchCandidates('nginx', 'demo'), ['nginx.demo.svc.cluster.local', 'nginx.svc.cluster.local', 'nginx.cluster.local', 'nginx'])
  t.same(searchCandidates('google.com.', 'demo'), ['google.com'])
  t.equal(searchCandidates('a.b.c.d.e.f', 'x')[0], 'a.b.c.d.e.f')
  t.equal(hostsFile(new Map([['b', ['10.0.0.2']], ['a', ['10.0.0.1', '10.0.0.3']]])), '10.0.0.1 a\n10.0.0.3 a\n10.0.0.2 b\n')
})

t.test('matrix printer marks mismatches', async (t) => {
  const sc = scenarios[0]!
  const m: Matrix = sc.rows.map((r) => sc.columns.map((c) => ({ row: r.id, col: c.id, expect: 'ok' as const, got: 'ok' as const })))
  t.equal(mismatches(m).length, 0)
  m[1]![2] = { row: sc.rows[1]!.id, col: sc.columns[2]!.id, expect: 'x', got: 'ok', detail: 'reply p-demo/nginx2' }
  const text = formatMatrix(sc, m)
  t.match(text, /\*ok\/x/)
  t.match(text, new RegExp(`\\* ${sc.rows[1]!.id} -> ${sc.columns[2]!.id}: measured ok, expected x \\(reply p-demo/nginx2\\)`))
  t.equal(mismatches(m).length, 1)
})
