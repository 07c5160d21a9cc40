// Routes between nodes as plain data: planRoutes() from spec-shaped Node
// objects, the host's connected subnets and the mode; clusterPodCidrs().
// Nodes: a (this node) and b, c on the connected 192.168.1.0/24 (and
// fd10::/64); far on 172.16.0.0/16, which this host is not connected to.
import t from 'tap'
import { clusterPodCidrs, planRoutes, type OverlayMode, type PlanInput, type PlannedRoute, type RoutePlan, type VxlanDevice } from '../enforcer/network/plan.ts'
import type { Problem } from '../enforcer/dataplane/types.ts'
import type { Node } from '../enforcer/model.ts'
import { vtepMac } from '../shared/names.ts'
import { rng } from './lib/rng.ts'

const node = (name: string, ips: string[], podCIDRs: string[]): Node => ({
  metadata: { name },
  spec: { podCIDRs },
  status: { addresses: ips.map((address) => ({ type: 'InternalIP', address })) },
})

const CONNECTED = ['192.168.1.0/24', 'fd10::/64']
const a = node('a', ['192.168.1.1'], ['10.244.0.0/24'])
const b = node('b', ['192.168.1.2'], ['10.244.1.0/24'])
const c = node('c', ['192.168.1.3'], ['10.244.2.0/24'])
const far = node('far', ['172.16.0.5'], ['10.244.9.0/24'])
// dual-stack: b6 has its v6 InternalIP on fd10::/64; c6 on fd20::/64 (not connected); d6 has none
const a6 = node('a', ['192.168.1.1', 'fd10::1'], ['10.244.0.0/24', 'fd00:244::/64'])
const b6 = node('b', ['192.168.1.2', 'fd10::2'], ['10.244.1.0/24', 'fd00:244:1::/64'])
const c6 = node('c', ['192.168.1.3', 'fd20::3'], ['10.244.2.0/24', 'fd00:244:2::/64'])
const d6 = node('d', ['192.168.1.4'], ['10.244.3.0/24', 'fd00:244:3::/64'])

const plan = (nodes: Node[], o: Partial<PlanInput> = {}): RoutePlan =>
  planRoutes({ self: o.self ?? 'a', nodes, mode: o.mode ?? 'auto', connected: o.connected ?? CONNECTED, last: o.last })

const blackhole = (dst: string): PlannedRoute => ({ dst, kind: 'blackhole' })
const hostGw = (dst: string, via: string): PlannedRoute => ({ dst, kind: 'host-gw', via })
const vx = (dst: string, via: string): PlannedRoute => ({ dst, kind: 'vxlan', via })
const peer = (name: string, underlay: string, gateways: string[]) => ({ node: name, mac: vtepMac(name), underlay, gateways })
const device = (peers: VxlanDevice['peers'], addresses = ['10.244.0.0'], local = '192.168.1.1'): VxlanDevice => ({ mac: vtepMac('a'), local, addresses, peers })
const noRoutes = (name: string, message: string): Problem => ({ object: `Node ${name}`, message, effect: 'no routes to its pods' })
const kept = (name: string, message: string): Problem => ({ object: `Node ${name}`, message, effect: 'its routes from before are kept' })
const held = (message: string): Problem => ({ object: 'Node a', message, effect: 'routes between nodes left as they are' })

/** What the kernel is asked for; byNode is checked where it matters. */
const summary = (p: RoutePlan) => ({ hold: p.hold, routes: p.routes, vxlan: p.vxlan ?? null, problems: p.problems })

interface Case {
  name: string
  nodes: Node[]
  mode?: OverlayMode
  connected?: string[]
  /** Nodes of the plan before this one. */
  before?: Node[]
  want: { hold?: boolean; routes: PlannedRoute[]; vxlan?: VxlanDevice; problems?: Problem[] }
}

const cases: Case[] = [
  {
    name: 'two nodes on a connected subnet: host-gw via the InternalIP',
    nodes: [a, b],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')] },
  },
  {
    name: 'three nodes on a connected subnet: host-gw to each',
    nodes: [a, b, c],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2'), hostGw('10.244.2.0/24', '192.168.1.3')] },
  },
  {
    name: 'a node not on a connected subnet: VXLAN to its range network address',
    nodes: [a, b, far],
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2'), vx('10.244.9.0/24', '10.244.9.0')],
      vxlan: device([peer('far', '172.16.0.5', ['10.244.9.0'])]),
    },
  },
  {
    name: 'no connected subnets at all: every other node over VXLAN',
    nodes: [a, b],
    connected: [],
    want: { routes: [blackhole('10.244.0.0/24'), vx('10.244.1.0/24', '10.244.1.0')], vxlan: device([peer('b', '192.168.1.2', ['10.244.1.0'])]) },
  },
  {
    name: "mode vxlan: connected nodes over VXLAN too, one peer per node in name order",
    nodes: [c, a, b],
    mode: 'vxlan',
    want: {
      routes: [blackhole('10.244.0.0/24'), vx('10.244.1.0/24', '10.244.1.0'), vx('10.244.2.0/24', '10.244.2.0')],
      vxlan: device([peer('b', '192.168.1.2', ['10.244.1.0']), peer('c', '192.168.1.3', ['10.244.2.0'])]),
    },
  },
  {
    name: 'mode host-gw: an unconnected node is a problem and gets no route',
    nodes: [a, b, far],
    mode: 'host-gw',
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')],
      problems: [noRoutes('far', 'InternalIP 172.16.0.5 is not on a directly connected subnet, and --overlay host-gw forbids VXLAN')],
    },
  },
  {
    name: 'dual-stack, v6 InternalIP on a connected v6 subnet: host-gw for both families',
    nodes: [a6, b6],
    want: {
      routes: [blackhole('10.244.0.0/24'), blackhole('fd00:244::/64'), hostGw('10.244.1.0/24', '192.168.1.2'), hostGw('fd00:244:1::/64', 'fd10::2')],
    },
  },
  {
    name: 'dual-stack, v6 InternalIP not connected: v4 host-gw, v6 over VXLAN with the v4 underlay',
    nodes: [a6, c6],
    want: {
      routes: [blackhole('10.244.0.0/24'), blackhole('fd00:244::/64'), hostGw('10.244.2.0/24', '192.168.1.3'), vx('fd00:244:2::/64', 'fd00:244:2::')],
      vxlan: device([peer('c', '192.168.1.3', ['fd00:244:2::'])], ['10.244.0.0', 'fd00:244::']),
    },
  },
  {
    name: 'dual-stack, no v6 InternalIP: v6 over VXLAN',
    nodes: [a6, b6, d6],
    want: {
      routes: [
        blackhole('10.244.0.0/24'), blackhole('fd00:244::/64'),
        hostGw('10.244.1.0/24', '192.168.1.2'), hostGw('fd00:244:1::/64', 'fd10::2'),
        hostGw('10.244.3.0/24', '192.168.1.4'), vx('fd00:244:3::/64', 'fd00:244:3::'),
      ],
      vxlan: device([peer('d', '192.168.1.4', ['fd00:244:3::'])], ['10.244.0.0', 'fd00:244::']),
    },
  },
  {
    name: 'dual-stack, mode vxlan: both ranges through one peer',
    nodes: [a6, b6],
    mode: 'vxlan',
    want: {
      routes: [blackhole('10.244.0.0/24'), blackhole('fd00:244::/64'), vx('10.244.1.0/24', '10.244.1.0'), vx('fd00:244:1::/64', 'fd00:244:1::')],
      vxlan: device([peer('b', '192.168.1.2', ['10.244.1.0', 'fd00:244:1::'])], ['10.244.0.0', 'fd00:244::']),
    },
  },
  {
    name: 'the underlay is the IPv4 InternalIP even when an IPv6 one is listed first',
    nodes: [a, node('far', ['fd20::9', '172.16.0.5'], ['10.244.9.0/24'])],
    want: { routes: [blackhole('10.244.0.0/24'), vx('10.244.9.0/24', '10.244.9.0')], vxlan: device([peer('far', '172.16.0.5', ['10.244.9.0'])]) },
  },
  {
    name: 'only an IPv6 InternalIP, v4 range: no underlay, no route',
    nodes: [a, node('far', ['fd20::9'], ['10.244.9.0/24'])],
    want: { routes: [blackhole('10.244.0.0/24')], problems: [noRoutes('far', 'VXLAN needs an IPv4 InternalIP (the outer address)')] },
  },
  {
    name: 'this node without an IPv4 InternalIP: nodes needing VXLAN get no route, host-gw ones do',
    nodes: [node('a', ['fd10::1'], ['10.244.0.0/24', 'fd00:244::/64']), b6, far],
    want: {
      routes: [blackhole('10.244.0.0/24'), blackhole('fd00:244::/64'), hostGw('10.244.1.0/24', '192.168.1.2'), hostGw('fd00:244:1::/64', 'fd10::2')],
      problems: [{ object: 'Node a', message: 'VXLAN needs an IPv4 InternalIP on this node', effect: 'no routes to nodes reached over VXLAN' }],
    },
  },
  {
    name: 'a node without InternalIP: a problem naming it, no route',
    nodes: [a, b, { metadata: { name: 'c' }, spec: { podCIDRs: ['10.244.2.0/24'] } }],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')], problems: [noRoutes('c', 'no InternalIP address')] },
  },
  {
    name: 'a node without pod CIDRs: a problem naming it, no route',
    nodes: [a, b, node('c', ['192.168.1.3'], [])],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')], problems: [noRoutes('c', 'no pod CIDRs (spec.podCIDRs)')] },
  },
  {
    name: 'a malformed pod CIDR: a problem naming it, no route for any of its ranges',
    nodes: [a, b, node('c', ['192.168.1.3'], ['10.244.2.0/24', 'fd00::/129'])],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')], problems: [noRoutes('c', 'pod CIDR "fd00::/129" is not a CIDR')] },
  },
  {
    name: 'a malformed InternalIP: a problem naming it, no route',
    nodes: [a, node('c', ['192.168.1.300'], ['10.244.2.0/24'])],
    want: { routes: [blackhole('10.244.0.0/24')], problems: [noRoutes('c', 'InternalIP "192.168.1.300" is not an IP address; no InternalIP address')] },
  },
  {
    name: 'two ranges of one family on a node: a problem, no route',
    nodes: [a, node('c', ['192.168.1.3'], ['10.244.2.0/24', '10.244.5.0/24'])],
    want: { routes: [blackhole('10.244.0.0/24')], problems: [noRoutes('c', 'more than one IPv4 pod CIDR')] },
  },
  {
    name: 'overlapping ranges between two new nodes: neither gets a route',
    nodes: [a, b, node('d', ['192.168.1.4'], ['10.244.1.128/25']), c],
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.2.0/24', '192.168.1.3')],
      problems: [noRoutes('b', 'pod CIDR 10.244.1.0/24 overlaps Node d'), noRoutes('d', 'pod CIDR 10.244.1.128/25 overlaps Node b')],
    },
  },
  {
    name: 'overlap where one node held the range in the last plan: it keeps it, the other gets a problem',
    before: [a, b, c],
    nodes: [a, b, c, node('d', ['192.168.1.4'], ['10.244.1.0/24'])],
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2'), hostGw('10.244.2.0/24', '192.168.1.3')],
      problems: [noRoutes('d', 'pod CIDR 10.244.1.0/24 overlaps Node b')],
    },
  },
  {
    name: "a new node claiming this node's range: this node keeps it",
    before: [a, b],
    nodes: [a, b, node('d', ['192.168.1.4'], ['10.244.0.0/16'])],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')], problems: [noRoutes('d', 'pod CIDR 10.244.0.0/16 overlaps Node a, Node b')] },
  },
  {
    name: 'a node whose object turns bad keeps the routes the last plan gave it',
    before: [a, b, far],
    nodes: [a, node('b', [], ['10.244.1.0/24']), node('far', ['172.16.0.5'], [])],
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2'), vx('10.244.9.0/24', '10.244.9.0')],
      vxlan: device([peer('far', '172.16.0.5', ['10.244.9.0'])]),
      problems: [kept('b', 'no InternalIP address'), kept('far', 'no pod CIDRs (spec.podCIDRs)')],
    },
  },
  {
    name: 'a node that moves off the connected subnet under mode host-gw keeps its last routes',
    before: [a, b],
    nodes: [a, node('b', ['172.16.0.2'], ['10.244.1.0/24'])],
    mode: 'host-gw',
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')],
      problems: [kept('b', 'InternalIP 172.16.0.2 is not on a directly connected subnet, and --overlay host-gw forbids VXLAN')],
    },
  },
  {
    name: 'a deleted node loses its routes and its VXLAN peer',
    before: [a, b, far],
    nodes: [a, b],
    want: { routes: [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2')] },
  },
  {
    name: 'own node missing from a non-empty list: hold, with a problem',
    nodes: [b, far],
    want: { hold: true, routes: [], problems: [held("this node's own Node object is missing")] },
  },
  {
    name: 'own node missing from an empty list (no Node objects): hold, no problem',
    nodes: [],
    want: { hold: true, routes: [] },
  },
  {
    name: 'own node unusable: hold, with a problem',
    nodes: [node('a', ['192.168.1.1'], []), b],
    want: { hold: true, routes: [], problems: [held("this node's own object is unusable: no pod CIDRs (spec.podCIDRs)")] },
  },
  {
    name: "own range contested on the first plan: hold",
    nodes: [a, node('d', ['192.168.1.4'], ['10.244.0.0/23'])],
    want: { hold: true, routes: [], problems: [held('pod CIDR 10.244.0.0/24 overlaps Node d')] },
  },
  {
    name: 'host bits in a CIDR are normalised, in routes, gateways and device addresses',
    nodes: [node('a', ['192.168.1.1'], ['10.244.0.5/24']), node('b', ['192.168.1.2'], ['10.1.2.3/24']), node('far', ['172.16.0.5'], ['10.244.9.7/24', 'FD00:244:9:0::1/64'])],
    want: {
      routes: [blackhole('10.244.0.0/24'), hostGw('10.1.2.0/24', '192.168.1.2'), vx('10.244.9.0/24', '10.244.9.0'), vx('fd00:244:9::/64', 'fd00:244:9::')],
      vxlan: device([peer('far', '172.16.0.5', ['10.244.9.0', 'fd00:244:9::'])]),
    },
  },
]

t.test('planRoutes: table', async (t) => {
  for (const k of cases) {
    const last = k.before && plan(k.before, { mode: k.mode, connected: k.connected })
    const got = plan(k.nodes, { mode: k.mode, connected: k.connected, last })
    t.strictSame(summary(got), { hold: k.want.hold ?? false, routes: k.want.routes, vxlan: k.want.vxlan ?? null, problems: k.want.problems ?? [] }, k.name)
  }
})

t.test('byNode: what each node was given, for the next plan', async (t) => {
  const p = plan([a, b, far])
  t.strictSame([...p.byNode.keys()], ['a', 'b', 'far'])
  t.strictSame(p.byNode.get('a'), { routes: [blackhole('10.244.0.0/24')] })
  t.strictSame(p.byNode.get('b'), { routes: [hostGw('10.244.1.0/24', '192.168.1.2')], peer: undefined })
  t.strictSame(p.byNode.get('far'), { routes: [vx('10.244.9.0/24', '10.244.9.0')], peer: peer('far', '172.16.0.5', ['10.244.9.0']) })
  // a node kept from before keeps the very entry it had
  const next = plan([a, node('b', [], ['10.244.1.0/24']), far], { last: p })
  t.equal(next.byNode.get('b'), p.byNode.get('b'), 'kept entry is the last plan’s')
  t.notOk(plan([a], { last: p }).byNode.has('far'), 'deleted node gone from byNode')
  // a node with a problem and nothing before has no entry, so it gets nothing later either
  const bad = plan([a, node('c', [], ['10.244.2.0/24'])])
  t.notOk(bad.byNode.has('c'))
  t.notOk(plan([a, node('c', [], ['10.244.2.0/24'])], { last: bad }).byNode.has('c'))
})

t.test('hold keeps what the last plan had: byNode and the VXLAN device', async (t) => {
  const last = plan([a, b, far])
  const p = plan([b, far], { last })
  t.equal(p.hold, true)
  t.strictSame(p.routes, [], 'no routes asked for: the kernel keeps what it has')
  t.equal(p.byNode, last.byNode)
  t.strictSame(p.vxlan, last.vxlan)
  t.strictSame(p.problems, [held("this node's own Node object is missing")])
  // and the hold carries over a second time, so a node coming back later still finds its routes
  const again = plan([b], { last: p })
  t.equal(again.byNode, last.byNode)
  const back = plan([a, node('b', [], ['10.244.1.0/24']), far], { last: again })
  t.strictSame(back.routes, [blackhole('10.244.0.0/24'), hostGw('10.244.1.0/24', '192.168.1.2'), vx('10.244.9.0/24', '10.244.9.0')])
})

t.test('the vxlan device: own MAC, own IPv4 InternalIP, own ranges, one peer per VXLAN node', async (t) => {
  const p = plan([a6, node('x', ['172.16.0.7'], ['10.244.7.0/24', 'fd00:244:7::/64']), node('y', ['172.16.0.8'], ['10.244.8.0/24']), b6])
  t.ok(p.vxlan)
  const v = p.vxlan!
  t.equal(v.mac, vtepMac('a'))
  t.match(v.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
  t.equal(parseInt(v.mac.slice(0, 2), 16) & 0x03, 0x02, 'locally administered, unicast')
  t.equal(v.local, '192.168.1.1')
  t.strictSame(v.addresses, ['10.244.0.0', 'fd00:244::'])
  t.strictSame(v.peers, [peer('x', '172.16.0.7', ['10.244.7.0', 'fd00:244:7::']), peer('y', '172.16.0.8', ['10.244.8.0'])])
  t.not(v.peers[0].mac, v.peers[1].mac, 'each node its own MAC')
  t.equal(plan([a, b]).vxlan, undefined, 'no VXLAN node: no device')
})

/** A seeded Fisher-Yates shuffle of a copy. */
function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

t.test('order-independence: every order of the node list gives the same plan', async (t) => {
  const before = [a6, b6, c6, far, node('gone', ['192.168.1.9'], ['10.244.99.0/24'])]
  const nodes = [
    a6, b6, c6, far,
    node('e', ['192.168.1.5'], ['10.244.2.0/25']), // overlaps c6, which held it
    node('f', ['192.168.1.6'], ['10.244.20.0/24']),
    node('g', ['192.168.1.7'], ['10.244.20.0/23']), // overlaps f, neither held it
    node('h', [], ['10.244.30.0/24']),
  ]
  const show = (p: RoutePlan) => JSON.stringify({ ...summary(p), byNode: [...p.byNode] })
  for (const mode of ['auto', 'vxlan', 'host-gw'] as const) {
    const last = plan([...before].reverse(), { mode })
    const want = show(plan(nodes, { mode, last }))
    const rand = rng(7)
    let differ = 0
    for (let i = 0; i < 200; i++) {
      if (show(plan(shuffled(nodes, rand), { mode, last: plan(shuffled(before, rand), { mode }) })) !== want) differ++
    }
    t.equal(differ, 0, `${mode}: 200 shuffled orders`)
  }
  // and the shape of that plan, once
  const p = plan(nodes, { last: plan(before) })
  t.strictSame(p.problems.map((x) => x.object), ['Node e', 'Node f', 'Node g', 'Node h'])
  t.strictSame(p.routes.map((r) => r.dst), ['10.244.0.0/24', 'fd00:244::/64', '10.244.1.0/24', 'fd00:244:1::/64', '10.244.2.0/24', 'fd00:244:2::/64', '10.244.9.0/24'])
})

t.test('a range a node keeps from before is not given to another node too', async (t) => {
  // b had 10.244.1.0/24; its object turns bad in a way that drops the range from
  // view (a malformed edit, or no InternalIP and another range), so b keeps its
  // route, while a new node d claims the same range: d must not get a second
  // route to that destination (the kernel writer would apply both in turn).
  const last = plan([a, b])
  for (const [what, bNow] of [
    ['b with a malformed range', node('b', ['192.168.1.2'], ['10.244.1.0/33'])],
    ['b without InternalIP and with another range', node('b', [], ['10.244.5.0/24'])],
  ] as const) {
    const p = plan([a, bNow, node('d', ['192.168.1.4'], ['10.244.1.0/24'])], { last })
    const dsts = p.routes.map((r) => r.dst)
    t.strictSame(dsts, [...new Set(dsts)], `${what}: one route per destination`)
    t.strictSame(p.routes.filter((r) => r.dst === '10.244.1.0/24'), [hostGw('10.244.1.0/24', '192.168.1.2')], `${what}: b keeps it`)
    t.ok(p.problems.some((x) => x.object === 'Node d'), `${what}: d gets a problem`)
  }
})

t.test('clusterPodCidrs: every node’s ranges, canonical, deduplicated, sorted', async (t) => {
  const cases: [string, Node[], string[]][] = [
    ['no nodes', [], []],
    ['one range each', [b, a, c], ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24']],
    ['dual-stack, v4 and v6 in text order', [b6, a6], ['10.244.0.0/24', '10.244.1.0/24', 'fd00:244:1::/64', 'fd00:244::/64']],
    ['host bits cleared, duplicates merged', [node('x', [], ['10.1.2.3/24']), node('y', [], ['10.1.2.0/24']), node('z', [], ['FD00:0:0:1::5/64'])], ['10.1.2.0/24', 'fd00:0:0:1::/64']],
    ['malformed and missing ranges skipped', [node('x', [], ['10.1.0.0/33', 'nope', '10.2.0.0/16']), { metadata: { name: 'y' } }], ['10.2.0.0/16']],
  ]
  for (const [name, nodes, want] of cases) t.strictSame(clusterPodCidrs(nodes), want, name)
})
