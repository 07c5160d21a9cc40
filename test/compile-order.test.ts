// Determinism: the same cluster in any object order compiles to byte-identical
// output, and a pod IP change only changes set members.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import type { DesiredState } from '../enforcer/dataplane/types.ts'
import { DEFAULT_ENFORCER_CONFIG, type Snapshot } from '../enforcer/model.ts'
import { ns, pod, policy, snapshot, workload } from './lib/compile-sim.ts'
import { rng } from './lib/rng.ts'

const SNAP: Snapshot = snapshot({
  namespaces: [ns('a', { env: 'prod' }), ns('b', { env: 'dev' })],
  pods: [
    pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1', 'fd00::1'], ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('a', 'cli', { labels: { app: 'cli' }, ips: ['10.0.0.2'] }),
    pod('b', 'cli', { labels: { app: 'cli' }, ips: ['10.0.1.2', 'fd00::2'] }),
    pod('b', 'db', { labels: { app: 'db' }, ips: ['10.0.1.3'], ports: [{ name: 'sql', containerPort: 5432 }] }),
    pod('c', 'bad', { labels: { app: 'cli' }, ips: ['nonsense'] }),
  ],
  policies: [
    policy('a', 'web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }, { namespaceSelector: { matchLabels: { env: 'dev' } } }], ports: [{ port: 'http' }, { port: 80 }] }] }),
    policy('a', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('a', 'egress', { podSelector: { matchLabels: { app: 'cli' } }, egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'sql' }] }, { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }] }),
    policy('b', 'db', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'dev'] }] } }] }] }),
    policy('b', 'broken', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }),
  ],
  workloads: [workload('wrenaweb', 'a', 'web'), workload('wrenacli', 'a', 'cli'), workload('wrenbcli', 'b', 'cli'), workload('wrenbdb', 'b', 'db'), workload('wrenghost', 'b', 'ghost')],
})

/** A seeded permutation (mulberry32), so failures reproduce. */
function shuffle<T>(items: readonly T[], seed: number): T[] {
  const rand = rng(seed)
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

function reorder(s: Snapshot, f: <T>(xs: readonly T[]) => T[]): Snapshot {
  return { namespaces: f(s.namespaces), pods: f(s.pods), policies: f(s.policies), workloads: f(s.workloads) }
}

const text = (d: DesiredState): string => JSON.stringify(d)

for (const [layout, config] of [['', DEFAULT_ENFORCER_CONFIG], [' (union sets)', { ...DEFAULT_ENFORCER_CONFIG, unionAbove: 0 }]] as const) {
  t.test('reversed and shuffled inputs compile identically' + layout, async (t) => {
    const expected = text(compile(SNAP, config))
    if (config.unionAbove === 0) t.ok(expected.includes('wren4u-'), 'the sample exercises union sets')
    t.equal(text(compile(reorder(SNAP, (xs) => [...xs].reverse()), config)), expected, 'reversed')
    for (let seed = 1; seed <= 20; seed++) {
      t.equal(text(compile(reorder(SNAP, (xs) => shuffle(xs, seed)), config)), expected, `shuffle seed ${seed}`)
    }
  })
}

t.test('IP order inside a pod and label key order do not matter', async (t) => {
  const expected = text(compile(SNAP, DEFAULT_ENFORCER_CONFIG))
  const flipped = structuredClone(SNAP)
  for (const p of flipped.pods) {
    p.status!.podIPs!.reverse()
    p.metadata.labels = Object.fromEntries(Object.entries(p.metadata.labels ?? {}).reverse())
  }
  t.equal(text(compile(flipped, DEFAULT_ENFORCER_CONFIG)), expected)
})

t.test('compiling twice gives the same output and does not mutate the snapshot', async (t) => {
  const before = JSON.stringify(SNAP)
  t.equal(text(compile(SNAP, DEFAULT_ENFORCER_CONFIG)), text(compile(SNAP, DEFAULT_ENFORCER_CONFIG)))
  t.equal(JSON.stringify(SNAP), before)
})

t.test('a pod IP change only changes set members', async (t) => {
  const before = compile(SNAP, DEFAULT_ENFORCER_CONFIG)
  const moved = structuredClone(SNAP)
  moved.pods.find((p) => p.metadata.namespace === 'b' && p.metadata.name === 'cli')!.status!.podIPs = [{ ip: '10.0.1.77' }, { ip: 'fd00::77' }]
  const after = compile(moved, DEFAULT_ENFORCER_CONFIG)
  for (const fam of ['v4', 'v6'] as const) {
    t.equal(JSON.stringify(after[fam].chains), JSON.stringify(before[fam].chains), `${fam} chains unchanged`)
    t.same(after[fam].sets.map((s) => s.name), before[fam].sets.map((s) => s.name), `${fam} same sets`)
  }
  const changed = after.v4.sets.filter((s, i) => JSON.stringify(s) !== JSON.stringify(before.v4.sets[i]))
  t.ok(changed.length > 0, 'some set changed')
  for (const s of changed) {
    t.ok(s.members.includes('10.0.1.77'), `${s.name} gained the new IP`)
    t.notOk(s.members.includes('10.0.1.2'), `${s.name} lost the old IP`)
  }
  t.ok(after.v6.sets.some((s) => s.members.includes('fd00::77')))
})

t.test('set members are sorted and unique', async (t) => {
  const s = compile(SNAP, DEFAULT_ENFORCER_CONFIG)
  for (const set of [...s.v4.sets, ...s.v6.sets]) {
    t.same(set.members, [...new Set(set.members)].sort(), set.name)
  }
})
