// The cluster-wide part of the compiled layout: from the pod ranges of every
// Node (spec.podCIDRs) and --cluster-cidr, one hash:net set per family,
// anti-spoofing rules in the raw wren-PREROUTING chain and, with masquerade,
// a nat wren-POSTROUTING chain hooked from POSTROUTING. With no ranges the
// output is exactly what it was before nodes were part of the snapshot.
import t from 'tap'
import { compile, Compiler } from '../enforcer/compile/index.ts'
import type { Chain, DesiredState, FamilyState, Hook, IpSet } from '../enforcer/dataplane/types.ts'
import { DEFAULT_ENFORCER_CONFIG, type EnforcerConfig, type Node, type Snapshot } from '../enforcer/model.ts'
import { ns, policy, pod, snapshot, workload } from './lib/compile-sim.ts'

const cfg = DEFAULT_ENFORCER_CONFIG
const noMasq: EnforcerConfig = { ...cfg, masquerade: false }

const node = (name: string, podCIDRs: string[], ip = '192.168.1.1'): Node => ({
  metadata: { name },
  spec: { podCIDRs },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
})
const n1 = node('n1', ['10.244.0.0/24', 'fd00:244::/64'], '192.168.1.1')
const n2 = node('n2', ['10.244.1.0/24'], '192.168.1.2')
const n3 = node('n3', ['10.244.2.0/24', 'fd00:244:2::/64'], '192.168.1.3')

// policy content, so the sets and chains the network part joins are not alone
const web = pod('a', 'web', { labels: { app: 'web' }, ips: ['10.244.0.5', 'fd00:244::5'] })
const cli = pod('a', 'cli', { labels: { app: 'cli' }, ips: ['10.244.1.7'] })
const allowCli = policy('a', 'allow-cli', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }] })
const base = (): Snapshot => snapshot({ namespaces: [ns('a')], pods: [web, cli], policies: [allowCli], workloads: [workload('wrenweb', 'a', 'web')] })
const withNodes = (nodes: Node[]): Snapshot => ({ ...base(), nodes })

const chain = (fs: FamilyState, name: string): Chain | undefined => fs.chains.find((c) => c.name === name)
const lines = (c: Chain | undefined): string[] => (c?.rules ?? []).map((r) => [...r.match, '=>', ...r.action].join(' '))
const set = (fs: FamilyState, name: string): IpSet | undefined => fs.sets.find((s) => s.name === name)

const RAW_BEFORE = ['-i wren+ -m rpfilter --invert => -j DROP']
const antiSpoofing = (family: 4 | 6) => [
  `-m set --match-set wren${family}-podcidrs src -m rpfilter --invert => -j DROP`,
  '-i vxlan.wren -m rpfilter --invert => -j DROP',
]
const NAT_HOOK: Hook = { table: 'nat', chain: 'POSTROUTING', target: 'wren-POSTROUTING' }
const masqChain = (family: 4 | 6): Chain => ({
  name: 'wren-POSTROUTING',
  table: 'nat',
  rules: [{ match: ['-m', 'set', '--match-set', `wren${family}-podcidrs`, 'src', '-m', 'set', '!', '--match-set', `wren${family}-podcidrs`, 'dst'], action: ['-j', 'MASQUERADE'], comment: 'pod traffic leaving the cluster pod ranges' }],
})
const podSet = (family: 4 | 6, members: string[]): IpSet => ({ name: `wren${family}-podcidrs`, type: 'hash:net', family, members, comment: 'every pod range of the cluster' })

/** One family's state with the network part taken out: what it must have been without ranges. */
function withoutNetwork(fs: FamilyState): FamilyState {
  return {
    family: fs.family,
    hooks: fs.hooks.filter((h) => h.table !== 'nat'),
    chains: fs.chains
      .filter((c) => c.table !== 'nat')
      .map((c) => (c.name === 'wren-PREROUTING' ? { ...c, rules: c.rules.slice(0, 1) } : c)),
    sets: fs.sets.filter((s) => !s.name.endsWith('-podcidrs')),
  }
}

t.test('no pod ranges: exactly the output of a snapshot without nodes', async (t) => {
  const cases: [string, Snapshot][] = [
    ['nodes: []', withNodes([])],
    ['a node without spec', withNodes([{ metadata: { name: 'n1' } }])],
    ['a node with empty podCIDRs', withNodes([node('n1', [])])],
    ['a node with only malformed ranges', withNodes([node('n1', ['10.244.0.0/33', 'nope']), { metadata: { name: 'n2' }, spec: { podCIDRs: [''] } }])],
  ]
  for (const config of [cfg, noMasq]) {
    const want = compile(base(), config)
    t.notOk('nodes' in base(), 'the reference snapshot has no nodes field')
    for (const [name, snap] of cases) t.strictSame(compile(snap, config), want, `${name}, masquerade ${config.masquerade}`)
    for (const fs of [want.v4, want.v6]) {
      t.notOk(fs.sets.some((s) => s.name.endsWith('-podcidrs')), 'no pod range set')
      t.notOk(fs.chains.some((c) => c.table === 'nat'), 'no nat chain')
      t.notOk(fs.hooks.some((h) => h.table === 'nat'), 'no nat hook')
      t.strictSame(lines(chain(fs, 'wren-PREROUTING')), RAW_BEFORE, 'raw chain as before')
    }
  }
})

t.test('with node ranges: the set per family, anti-spoofing, masquerade', async (t) => {
  const out = compile(withNodes([n2, n1]), cfg)
  t.strictSame(set(out.v4, 'wren4-podcidrs'), podSet(4, ['10.244.0.0/24', '10.244.1.0/24']))
  t.strictSame(set(out.v6, 'wren6-podcidrs'), podSet(6, ['fd00:244::/64']))
  t.notOk(set(out.v4, 'wren6-podcidrs'), 'no v6 set in the v4 state')
  t.notOk(set(out.v6, 'wren4-podcidrs'), 'no v4 set in the v6 state')
  for (const fs of [out.v4, out.v6]) {
    t.strictSame(fs.sets.map((s) => s.name), fs.sets.map((s) => s.name).sort(), `v${fs.family} sets sorted by name`)
    t.strictSame(lines(chain(fs, 'wren-PREROUTING')), [...RAW_BEFORE, ...antiSpoofing(fs.family)], `v${fs.family} raw chain`)
    t.strictSame(chain(fs, 'wren-PREROUTING')!.rules.slice(1).map((r) => r.comment), ['spoofed pod source', 'spoofed source over VXLAN'])
    t.strictSame(chain(fs, 'wren-POSTROUTING'), masqChain(fs.family), `v${fs.family} nat chain`)
    t.strictSame(fs.hooks.filter((h) => h.table === 'nat'), [NAT_HOOK], `v${fs.family} nat hook`)
    t.strictSame(fs.chains.map((c) => `${c.table} ${c.name}`), fs.chains.map((c) => `${c.table} ${c.name}`).sort(), 'chains in table, name order')
  }
  // everything else is what it was
  const before = compile(base(), cfg)
  t.strictSame(withoutNetwork(out.v4), before.v4, 'v4 otherwise unchanged')
  t.strictSame(withoutNetwork(out.v6), before.v6, 'v6 otherwise unchanged')
  t.strictSame(out.problems, before.problems)
  t.strictSame(out.workloads, before.workloads)
})

t.test('ranges of one family only: the other family is as before', async (t) => {
  const out = compile(withNodes([n2]), cfg)
  const before = compile(base(), cfg)
  t.strictSame(set(out.v4, 'wren4-podcidrs')?.members, ['10.244.1.0/24'])
  t.strictSame(out.v6, before.v6)
})

t.test('members: canonical, deduplicated, sorted; the order of nodes does not matter', async (t) => {
  const nodes = [node('x', ['10.244.1.9/24', 'FD00:244:0:0::1/64']), node('y', ['10.244.1.0/24']), node('z', ['10.10.0.0/16']), { metadata: { name: 'w' }, spec: { podCIDRs: ['10.9.0.0/16'] } }]
  const out = compile(withNodes(nodes), cfg)
  t.strictSame(set(out.v4, 'wren4-podcidrs')?.members, ['10.10.0.0/16', '10.244.1.0/24', '10.9.0.0/16'])
  t.strictSame(set(out.v6, 'wren6-podcidrs')?.members, ['fd00:244::/64'])
  t.strictSame(compile(withNodes([...nodes].reverse()), cfg), out, 'reversed node list')
})

t.test('masquerade off: the set and anti-spoofing stay, no nat chain or hook', async (t) => {
  const out = compile(withNodes([n1, n2]), noMasq)
  for (const fs of [out.v4, out.v6]) {
    t.ok(set(fs, `wren${fs.family}-podcidrs`), `v${fs.family} set`)
    t.strictSame(lines(chain(fs, 'wren-PREROUTING')), [...RAW_BEFORE, ...antiSpoofing(fs.family)])
    t.notOk(fs.chains.some((c) => c.table === 'nat'), 'no nat chain')
    t.notOk(fs.hooks.some((h) => h.table === 'nat'), 'no nat hook')
  }
  t.strictSame(out.v4.sets, compile(withNodes([n1, n2]), cfg).v4.sets, 'same sets as with masquerade')
})

t.test('config.clusterCidrs: merged with the nodes’ ranges, or alone', async (t) => {
  const config: EnforcerConfig = { ...cfg, clusterCidrs: ['10.244.0.0/16', 'fd00:244::/56', '10.244.1.5/24'] }
  const out = compile(withNodes([n1, n2]), config)
  t.strictSame(set(out.v4, 'wren4-podcidrs')?.members, ['10.244.0.0/16', '10.244.0.0/24', '10.244.1.0/24'])
  t.strictSame(set(out.v6, 'wren6-podcidrs')?.members, ['fd00:244::/56', 'fd00:244::/64'])
  const alone = compile(base(), config)
  t.strictSame(set(alone.v4, 'wren4-podcidrs')?.members, ['10.244.0.0/16', '10.244.1.0/24'], 'without nodes')
  t.strictSame(chain(alone.v4, 'wren-POSTROUTING'), masqChain(4))
  t.strictSame(alone, compile(withNodes([]), config), 'nodes: [] the same as no nodes field')
  const v4only = compile(base(), { ...cfg, clusterCidrs: ['10.0.0.0/8'] })
  t.strictSame(v4only.v6, compile(base(), cfg).v6, 'a v4 --cluster-cidr leaves v6 as before')
})

// ---- the Compiler with memory ----

const show = (d: DesiredState) => JSON.stringify(d)

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

/** Node lists step by step: added, changed, removed, an address-only change, back to none. */
const STEPS: [string, Node[] | undefined][] = [
  ['no nodes field', undefined],
  ['one node', [n1]],
  ['a second node', [n1, n2]],
  ['a third, dual-stack', [n1, n2, n3]],
  ['the same list as new objects', [n1, n2, n3].map((n) => structuredClone(n))],
  ['an InternalIP change only', [n1, node('n2', ['10.244.1.0/24'], '192.168.1.22'), n3]],
  ['a range changed', [n1, node('n2', ['10.244.5.0/24']), n3]],
  ['a v6 range added to a node', [n1, node('n2', ['10.244.5.0/24', 'fd00:244:5::/64']), n3]],
  ['a node removed', [n1, n3]],
  ['reordered', [n3, n1]],
  ['nodes: []', []],
  ['back to one node', [n2]],
  ['no nodes field again', undefined],
  ['two nodes again', [n2, n3]],
]

for (const config of [cfg, noMasq, { ...cfg, clusterCidrs: ['10.244.0.0/16'] }]) {
  const label = `masquerade ${config.masquerade}, clusterCidrs [${config.clusterCidrs.join(' ')}]`
  t.test(`Compiler equals compile() after every node change (${label})`, async (t) => {
    const fresh = new Compiler(config)
    const frozen = new Compiler(config)
    for (const [what, nodes] of STEPS) {
      const snap = nodes ? withNodes(nodes) : base()
      const want = show(compile(structuredClone(snap), config))
      t.equal(show(fresh.compile(structuredClone(snap))), want, `${what}: fresh objects`)
      t.equal(show(frozen.compile(deepFreeze(structuredClone(snap)))), want, `${what}: deep-frozen`)
    }
  })
}

t.test('Compiler, frozen snapshots keeping unchanged node objects and lists by identity', async (t) => {
  const compiler = new Compiler(cfg)
  const list = Object.freeze([n1, n2].map(deepFreeze))
  const pods = base()
  const snap = (nodes: readonly Node[]) => Object.freeze({ ...pods, nodes: nodes as Node[] }) as Snapshot
  const check = (s: Snapshot, what: string) => t.equal(show(compiler.compile(s)), show(compile(structuredClone(s), cfg)), what)
  check(snap(list), 'first')
  check(snap(list), 'the same list again')
  check(snap(Object.freeze([...list])), 'a new list of the same objects')
  check(snap(Object.freeze([list[0], deepFreeze(node('n2', ['10.244.7.0/24']))])), 'one node replaced')
  check(snap(list), 'and back')
})

t.test('Compiler: an unfrozen node list changed in place is seen', async (t) => {
  // The project's rule (compile-incremental.test.ts): unfrozen objects are never
  // remembered by identity. The store hands out frozen lists, so this is about
  // other callers of the Compiler.
  const compiler = new Compiler(cfg)
  const snap = withNodes([structuredClone(n1)])
  compiler.compile(snap)
  snap.nodes!.push(structuredClone(n2))
  t.equal(show(compiler.compile(snap)), show(compile(structuredClone(snap), cfg)), 'a node pushed into the same list')
  snap.nodes![0].spec!.podCIDRs = ['10.244.9.0/24']
  t.equal(show(compiler.compile(snap)), show(compile(structuredClone(snap), cfg)), 'a node’s range changed in place')
})

t.test('Compiler: the same snapshot twice gives the very same chains arrays', async (t) => {
  const compiler = new Compiler(cfg)
  const snap = withNodes([n1, n2])
  const first = compiler.compile(snap)
  const second = compiler.compile(snap)
  t.equal(second.v4.chains, first.v4.chains, 'v4 chains: the same array object')
  t.equal(second.v6.chains, first.v6.chains, 'v6 chains: the same array object')
  t.equal(chain(second.v4, 'wren-POSTROUTING'), chain(first.v4, 'wren-POSTROUTING'), 'the nat chain: the same object')
  // equal content under new objects: the pod ranges are the same, so are the chains
  const third = compiler.compile(withNodes([n1, n2].map((n) => structuredClone(n))))
  t.equal(third.v4.chains, first.v4.chains, 'equal nodes as new objects: the same chains array')
  const moved = compiler.compile(withNodes([n1, node('n2', ['10.244.1.0/24'], '192.168.1.99')]))
  t.equal(moved.v4.chains, first.v4.chains, 'an InternalIP change: the same chains array')
  // a range change is a new list, with the new members in the set
  const changed = compiler.compile(withNodes([n1, node('n2', ['10.244.8.0/24'])]))
  t.not(changed.v4.chains, first.v4.chains, 'a range change: new chains')
  t.strictSame(set(changed.v4, 'wren4-podcidrs')?.members, ['10.244.0.0/24', '10.244.8.0/24'])
  t.equal(changed.v6.chains, first.v6.chains, 'v6 ranges unchanged: the same v6 chains array')
  t.ok(Object.isFrozen(first.v4.chains), 'the shared chains array is frozen')
  for (const c of first.v4.chains) t.ok(Object.isFrozen(c) && Object.isFrozen(c.rules), `${c.table} ${c.name} frozen`)
})

t.test('Compiler: the pod range set is frozen like every set shared between compiles', async (t) => {
  // compile-incremental.test.ts holds every v4 set's members frozen: the writer may keep what it is given.
  const compiler = new Compiler(cfg)
  const snap = withNodes([n1, n2])
  const out = compiler.compile(snap)
  const s = set(out.v4, 'wren4-podcidrs')!
  t.ok(Object.isFrozen(s.members), 'wren4-podcidrs members frozen')
  t.equal(set(compiler.compile(snap).v4, 'wren4-podcidrs'), s, 'the very same set object is handed out again')
})
