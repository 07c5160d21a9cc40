// Differential fuzz: the compiler against an independent reference evaluator.
//
// Each seed builds a random world with a seeded PRNG: 2-3 namespaces and 4-8
// ordinary pods (labels from keys a,b × values x,y; IPv4 addresses in
// 10.0.0.0/22, in about half the worlds IPv6 ones in fd00::/110 too; random
// named container ports over TCP/UDP/SCTP), every pod a local workload with
// its own interface, and 1-12 policies of random shapes: podSelector,
// namespaceSelector (also by kubernetes.io/metadata.name), both, ipBlock
// peers (over the pods' addresses, some with excepts that cover pods, some
// overlapping, some /0), matchLabels and matchExpressions (In, NotIn, Exists,
// DoesNotExist), empty selectors, empty and missing from/to/ports, numeric
// ports, endPort ranges, named ports, TCP/UDP/SCTP, every policyTypes form
// (defaulted, Ingress, Egress, both) and several rules and policies per pod.
// About half the worlds also get a policy with 9-12 peers on one port, so the
// default layout (unionAbove 8) builds union sets too.
//
// Every world is compiled twice, with DEFAULT_ENFORCER_CONFIG (a few peers of
// a port group one rule each, more in one union set) and with unionAbove 0
// (every group of several peers a union set), and the FORWARD verdict of the
// simulated dataplane (lib/compile-sim.ts) for each flow must equal the
// reference evaluator (lib/policy-oracle.ts, shares no code with the
// compiler): every ordered pair of pods × 14 (protocol, port) probes in IPv4
// and, where both pods have one, IPv6; addresses outside any pod (inside
// ipBlocks, inside their excepts, beside them, far away) to every pod and
// every pod to them. New connections only.
//
// 160 seeds, ~440k flow checks (both layouts), about 5 s. FUZZ_SEEDS=N runs
// seeds 1..N, FUZZ_SEED=S only seed S. A mismatch names the seed, the layout
// and the flow with the oracle's reasoning, and prints the world as JSON.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type EnforcerConfig, type LabelSelector, type LabelSelectorRequirement, type LocalWorkload, type Namespace, type NetworkPolicy, type NetworkPolicyPeer, type NetworkPolicyPort, type Pod } from '../enforcer/model.ts'
import type { DesiredState } from '../enforcer/dataplane/types.ts'
import { flow, ns, pod, policy, snapshot, workload } from './lib/compile-sim.ts'
import { bits, formatIp, inCidr, Oracle, parseIp, type Ip, type Proto } from './lib/policy-oracle.ts'
import { rng } from './lib/rng.ts'

// --- seeded choices -----------------------------------------------------------
class Rng {
  readonly next: () => number
  constructor(seed: number) {
    this.next = rng((seed * 0x9e3779b1) >>> 0)
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]
  }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(xs: readonly (readonly [number, T])[]): T {
    let r = this.next() * xs.reduce((a, [w]) => a + w, 0)
    for (const [w, v] of xs) if ((r -= w) < 0) return v
    return xs[xs.length - 1][1]
  }
  big(max: bigint): bigint {
    // uniform enough for test data: 2 × 30 random bits, reduced
    const r = (BigInt(Math.floor(this.next() * 2 ** 30)) << 30n) | BigInt(Math.floor(this.next() * 2 ** 30))
    return r % max
  }
}

// --- worlds ---------------------------------------------------------------------
const KEYS = ['a', 'b']
const VALUES = ['x', 'y']
const SEL_VALUES = ['x', 'y', 'z']
const PORT_NAMES = ['http', 'dns', 'metrics']
const NAMED_NUMBERS = [53, 80, 8080, 9090]
/** Where pod addresses live: base, and how many host bits. */
const POOL = { 4: { base: parseIp('10.0.0.0').n, host: 10 }, 6: { base: parseIp('fd00::').n, host: 18 } } as const
/** The (protocol, port) pairs every pod pair is probed on: every named port number in TCP and UDP, range edges, others. */
const PROBES: [Proto, number][] = [
  ['tcp', 53], ['tcp', 80], ['tcp', 85], ['tcp', 443], ['tcp', 8050], ['tcp', 8080], ['tcp', 9090], ['tcp', 9999],
  ['udp', 53], ['udp', 80], ['udp', 8080], ['udp', 9090], ['sctp', 80], ['sctp', 9000],
]

interface World {
  seed: number
  namespaces: Namespace[]
  pods: Pod[]
  policies: NetworkPolicy[]
  workloads: LocalWorkload[]
  /** Addresses of no pod, per family, to probe from and to. */
  outside: Record<4 | 6, string[]>
}

const podIps = (p: Pod, fam: 4 | 6): string[] => (p.status?.podIPs ?? []).map((x) => x.ip).filter((ip) => parseIp(ip).fam === fam)
const ifaceOf = (w: World, p: Pod): string => w.workloads.find((x) => x.namespace === p.metadata.namespace && x.pod === p.metadata.name)!.hostIface

function labels(r: Rng): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of KEYS) if (r.chance(0.6)) out[k] = r.pick(VALUES)
  return out
}

function requirement(r: Rng, keys: readonly string[], values: readonly string[]): LabelSelectorRequirement {
  const key = r.pick(keys)
  const operator = r.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'])
  if (operator === 'Exists' || operator === 'DoesNotExist') return { key, operator }
  const vs = [r.pick(values)]
  if (r.chance(0.4)) vs.push(r.pick(values))
  return { key, operator, values: vs }
}

function selector(r: Rng, keys = KEYS, values = SEL_VALUES): LabelSelector {
  const shape = r.weighted([[2, 'empty'], [4, 'labels'], [3, 'expressions'], [1, 'both']] as const)
  const sel: LabelSelector = {}
  if (shape === 'empty') return sel
  if (shape !== 'expressions') {
    sel.matchLabels = {}
    for (const k of r.chance(0.25) ? keys : [r.pick(keys)]) sel.matchLabels[k] = r.pick(values)
  }
  if (shape !== 'labels') sel.matchExpressions = Array.from({ length: r.int(1, 2) }, () => requirement(r, keys, values))
  return sel
}

function nsSelector(r: Rng, names: string[]): LabelSelector {
  if (r.chance(0.2)) {
    const key = 'kubernetes.io/metadata.name'
    return r.chance(0.5) ? { matchLabels: { [key]: r.pick(names) } } : { matchExpressions: [requirement(r, [key], names)] }
  }
  return selector(r)
}

const mask = (fam: 4 | 6, n: bigint, len: number): bigint => (n >> BigInt(bits(fam) - len)) << BigInt(bits(fam) - len)
const cidrText = (fam: 4 | 6, n: bigint, len: number): string => `${formatIp({ fam, n: mask(fam, n, len) })}/${len}`

function poolAddr(r: Rng, fam: 4 | 6): bigint {
  const { base, host } = POOL[fam]
  return base + 1n + r.big((1n << BigInt(host)) - 2n)
}

/** A random address inside `n/len`. */
function addrIn(r: Rng, fam: 4 | 6, n: bigint, len: number): bigint {
  const hostBits = bits(fam) - len
  return mask(fam, n, len) + (hostBits === 0 ? 0n : r.big(1n << BigInt(Math.min(hostBits, 60))))
}

function ipBlock(r: Rng, fam: 4 | 6, podAddrs: Ip[]): NetworkPolicyPeer {
  const poolLen = bits(fam) - POOL[fam].host
  const len = r.chance(0.05) ? 0 : Math.max(0, poolLen + r.pick([-14, -6, -2, 0, 1, 2, 3, 4, 5, 6, 8, 9, 10]))
  const ofFam = podAddrs.filter((a) => a.fam === fam)
  const around = ofFam.length > 0 && r.chance(0.6) ? r.pick(ofFam).n : poolAddr(r, fam)
  const block: { cidr: string; except?: string[] } = { cidr: cidrText(fam, around, len) }
  if (len < bits(fam) && r.chance(0.5)) {
    const except = new Set<string>()
    for (let i = r.int(1, 2); i > 0; i--) {
      const elen = r.int(Math.max(len + 1, poolLen - 2), Math.min(len + 12, bits(fam)))
      const inside = ofFam.filter((a) => inCidr(block.cidr, a))
      const at = inside.length > 0 && r.chance(0.6) ? r.pick(inside).n : addrIn(r, fam, around, len)
      except.add(cidrText(fam, at, Math.max(elen, len + 1)))
    }
    block.except = [...except]
  }
  return { ipBlock: block }
}

function peer(r: Rng, nsNames: string[], podAddrs: Ip[], v6: boolean): NetworkPolicyPeer {
  const kind = r.weighted([[3, 'pod'], [2, 'ns'], [2, 'both'], [3, 'block']] as const)
  if (kind === 'pod') return { podSelector: selector(r) }
  if (kind === 'ns') return { namespaceSelector: nsSelector(r, nsNames) }
  if (kind === 'both') return { namespaceSelector: nsSelector(r, nsNames), podSelector: selector(r) }
  return ipBlock(r, v6 && r.chance(0.3) ? 6 : 4, podAddrs)
}

function protocol(r: Rng): string | undefined {
  return r.weighted([[5, undefined], [2, 'TCP'], [3, 'UDP'], [1, 'SCTP']] as const)
}

function port(r: Rng): NetworkPolicyPort {
  const shape = r.weighted([[4, 'number'], [2, 'range'], [3, 'named'], [1, 'proto']] as const)
  const p: NetworkPolicyPort = {}
  const proto = protocol(r)
  if (proto) p.protocol = proto
  if (shape === 'number') p.port = r.pick([53, 80, 443, 8080, 9090, 9000])
  if (shape === 'range') [p.port, p.endPort] = r.pick([[80, 90], [8000, 8100], [50, 80], [9000, 9999], [53, 53]])
  if (shape === 'named') p.port = r.pick([...PORT_NAMES, 'nope'])
  return p
}

function ports(r: Rng): NetworkPolicyPort[] | undefined {
  const shape = r.weighted([[3, 'missing'], [1, 'empty'], [6, 'some']] as const)
  if (shape === 'missing') return undefined
  if (shape === 'empty') return []
  return Array.from({ length: r.int(1, 3) }, () => port(r))
}

function peers(r: Rng, nsNames: string[], podAddrs: Ip[], v6: boolean, many: boolean): NetworkPolicyPeer[] | undefined {
  if (!many) {
    const shape = r.weighted([[2, 'missing'], [1, 'empty'], [7, 'some']] as const)
    if (shape === 'missing') return undefined
    if (shape === 'empty') return []
  }
  const n = many ? r.int(9, 12) : r.weighted([[6, 1], [4, 2], [2, 3], [1, 4], [1, r.int(5, 12)]] as const)
  return Array.from({ length: n }, () => peer(r, nsNames, podAddrs, v6))
}

function rules(r: Rng, dir: 'ingress' | 'egress', nsNames: string[], podAddrs: Ip[], v6: boolean): object[] | undefined {
  const shape = r.weighted([[2, 'missing'], [1, 'empty'], [7, 'some']] as const)
  if (shape === 'missing') return undefined
  if (shape === 'empty') return []
  const field = dir === 'ingress' ? 'from' : 'to'
  return Array.from({ length: r.weighted([[5, 1], [3, 2], [2, 3]] as const) }, () => {
    const rule: Record<string, unknown> = {}
    const ps = peers(r, nsNames, podAddrs, v6, false)
    if (ps !== undefined) rule[field] = ps
    const pts = ports(r)
    if (pts !== undefined) rule.ports = pts
    return rule
  })
}

function randomPolicy(r: Rng, name: string, nsNames: string[], podAddrs: Ip[], v6: boolean): NetworkPolicy {
  const spec: NetworkPolicy['spec'] = { podSelector: selector(r) }
  const types = r.weighted([[3, undefined], [1, []], [2, ['Ingress']], [2, ['Egress']], [3, ['Ingress', 'Egress']]] as const)
  if (types) spec.policyTypes = [...types]
  const ingress = rules(r, 'ingress', nsNames, podAddrs, v6)
  if (ingress) spec.ingress = ingress
  const egress = rules(r, 'egress', nsNames, podAddrs, v6)
  if (egress) spec.egress = egress
  return policy(r.pick(nsNames), name, spec)
}

/** A policy with one rule of 9-12 peers on one port (or a few), so that port group is a union even with unionAbove 8. */
function widePolicy(r: Rng, name: string, nsNames: string[], podAddrs: Ip[], v6: boolean): NetworkPolicy {
  const dir = r.pick(['ingress', 'egress'] as const)
  const rule: Record<string, unknown> = { [dir === 'ingress' ? 'from' : 'to']: peers(r, nsNames, podAddrs, v6, true) }
  const pts = r.weighted([[4, [{ port: 80 }]], [2, [{ port: 'http' }]], [1, [{ port: 8000, endPort: 8100 }, { protocol: 'UDP', port: 53 }]], [1, undefined]] as const)
  if (pts) rule.ports = pts
  const spec: NetworkPolicy['spec'] = { podSelector: r.chance(0.5) ? {} : selector(r), policyTypes: [dir === 'ingress' ? 'Ingress' : 'Egress'], [dir]: [rule] }
  return policy(r.pick(nsNames), name, spec)
}

function generate(seed: number): World {
  const r = new Rng(seed)
  const nsNames = ['n0', 'n1', 'n2'].slice(0, r.int(2, 3))
  const namespaces = nsNames.map((n) => ns(n, labels(r)))
  const v6 = r.chance(0.5)
  const used = new Set<string>()
  const fresh = (fam: 4 | 6): Ip => {
    for (;;) {
      const ip = { fam, n: poolAddr(r, fam) }
      if (!used.has(formatIp(ip))) {
        used.add(formatIp(ip))
        return ip
      }
    }
  }
  const pods: Pod[] = []
  const podAddrs: Ip[] = []
  for (let i = 0, n = r.int(4, 8); i < n; i++) {
    const ips = [fresh(4)]
    if (v6 && r.chance(0.75)) ips.push(fresh(6))
    podAddrs.push(...ips)
    const named = PORT_NAMES.filter(() => r.chance(0.5)).map((name) => {
      const proto = name === 'dns' ? r.weighted([[3, 'UDP'], [1, undefined]] as const) : r.weighted([[4, undefined], [1, 'UDP'], [1, 'SCTP']] as const)
      return { name, containerPort: r.pick(NAMED_NUMBERS), ...(proto ? { protocol: proto } : {}) }
    })
    pods.push(pod(r.pick(nsNames), `p${i}`, { labels: labels(r), ips: ips.map(formatIp), ports: named }))
  }
  const policies: NetworkPolicy[] = []
  for (let i = 0, n = r.int(1, 12); i < n; i++) policies.push(randomPolicy(r, `np${i}`, nsNames, podAddrs, v6))
  if (r.chance(0.5)) for (let i = 0, n = r.int(1, 2); i < n; i++) policies.push(widePolicy(r, `wide${i}`, nsNames, podAddrs, v6))
  const workloads = pods.map((p, i) => workload(`wrenp${i}`, p.metadata.namespace, p.metadata.name))

  // Addresses of no pod: inside each ipBlock, inside each except, beside them, far away.
  const outside: Record<4 | 6, Set<string>> = { 4: new Set(['192.168.7.7', '10.200.0.1']), 6: new Set(v6 ? ['2001:db8::7', 'fd01::1'] : []) }
  const blocks = policies.flatMap((p) => [...(p.spec.ingress ?? []).flatMap((x) => x.from ?? []), ...(p.spec.egress ?? []).flatMap((x) => x.to ?? [])]).flatMap((x) => (x.ipBlock ? [x.ipBlock] : []))
  for (const b of blocks) {
    for (const c of [b.cidr, ...(b.except ?? [])]) {
      const [base, len] = c.split('/')
      const a = parseIp(base)
      const inside = formatIp({ fam: a.fam, n: addrIn(r, a.fam, a.n, Number(len)) })
      if (!used.has(inside)) outside[a.fam].add(inside)
    }
  }
  for (let i = 0; i < 3; i++) {
    const near = formatIp({ fam: 4, n: poolAddr(r, 4) })
    if (!used.has(near)) outside[4].add(near)
  }
  // keep the outside list short: the first ones are the fixed ones, the rest a sample
  const trim = (xs: Set<string>, n: number) => {
    const list = [...xs]
    while (list.length > n) list.splice(r.int(2, list.length - 1), 1)
    return list
  }
  return { seed, namespaces, pods, policies, workloads, outside: { 4: trim(outside[4], 10), 6: trim(outside[6], 6) } }
}

// --- checking ---------------------------------------------------------------------
interface Flow {
  from: { ip: string; iface?: string; who: string }
  to: { ip: string; iface?: string; who: string }
  proto: Proto
  port: number
}

function flows(w: World, r: Rng): Flow[] {
  const out: Flow[] = []
  const ep = (p: Pod, ip: string) => ({ ip, iface: ifaceOf(w, p), who: `${p.metadata.namespace}/${p.metadata.name}` })
  for (const fam of [4, 6] as const) {
    for (const a of w.pods) {
      for (const b of w.pods) {
        if (a === b) continue
        const [ia, ib] = [podIps(a, fam)[0], podIps(b, fam)[0]]
        if (ia === undefined || ib === undefined) continue
        for (const [proto, port] of PROBES) out.push({ from: ep(a, ia), to: ep(b, ib), proto, port })
      }
    }
    for (const x of w.outside[fam]) {
      for (const p of w.pods) {
        const ip = podIps(p, fam)[0]
        if (ip === undefined) continue
        // a sample of the probes each way, always including the most used policy port
        for (const [proto, port] of PROBES) {
          if (port !== 80 && !r.chance(0.3)) continue
          out.push({ from: { ip: x, who: 'outside' }, to: ep(p, ip), proto, port })
          out.push({ from: ep(p, ip), to: { ip: x, who: 'outside' }, proto, port })
        }
      }
    }
  }
  return out
}

const LAYOUTS: { name: string; config: EnforcerConfig }[] = [
  { name: 'unionAbove 8', config: { ...DEFAULT_ENFORCER_CONFIG } },
  { name: 'unionAbove 0', config: { ...DEFAULT_ENFORCER_CONFIG, unionAbove: 0 } },
]

const unionSets = (s: DesiredState, fam: 4 | 6): number => s[fam === 4 ? 'v4' : 'v6'].sets.filter((x) => x.name.startsWith(`wren${fam}u-`)).length

const worldJson = (w: World): string => JSON.stringify({ namespaces: w.namespaces, pods: w.pods, policies: w.policies })

const SEEDS: number[] = process.env.FUZZ_SEED ? [Number(process.env.FUZZ_SEED)] : Array.from({ length: Number(process.env.FUZZ_SEEDS ?? 160) }, (_, i) => i + 1)

const totals = { flows: 0, accepted: 0, unions: { 'unionAbove 8': [0, 0], 'unionAbove 0': [0, 0] } as Record<string, [number, number]> }

for (const seed of SEEDS) {
  const w = generate(seed)
  const name = `seed ${seed}: ${w.namespaces.length} namespaces, ${w.pods.length} pods${w.pods.some((p) => podIps(p, 6).length > 0) ? ' (dual-stack)' : ''}, ${w.policies.length} policies`
  t.test(name, async (t) => {
    const oracle = new Oracle(w)
    const fs = flows(w, new Rng(seed ^ 0x5eed))
    const expected = fs.map((f) => oracle.decide(f.from.ip, f.to.ip, f.proto, f.port))
    for (const layout of LAYOUTS) {
      const state = compile(snapshot({ namespaces: w.namespaces, pods: w.pods, policies: w.policies, workloads: w.workloads }), layout.config)
      t.same(state.problems, [], `seed ${seed} [${layout.name}]: the generated world is valid`)
      totals.unions[layout.name][0] += unionSets(state, 4)
      totals.unions[layout.name][1] += unionSets(state, 6)
      const bad: string[] = []
      fs.forEach((f, i) => {
        const got = flow(state, f.from, f.to, f.port, f.proto)
        const want = expected[i].allowed ? 'ACCEPT' : 'DROP'
        totals.flows++
        if (got === 'ACCEPT') totals.accepted++
        if (got !== want) {
          const why = [expected[i].egress && `egress: ${expected[i].egress}`, expected[i].ingress && `ingress: ${expected[i].ingress}`].filter(Boolean).join('; ')
          bad.push(`seed ${seed} [${layout.name}]: ${f.proto} ${f.from.ip} (${f.from.who}) -> ${f.to.ip} (${f.to.who}) port ${f.port}: expected ${want}, got ${got} (oracle ${why})`)
        }
      })
      t.same(bad.slice(0, 10), [], `seed ${seed} [${layout.name}]: ${fs.length} flows agree with the oracle${bad.length ? ` (${bad.length} differ)` : ''}`, bad.length ? { world: worldJson(w) } : {})
    }
  })
}

t.test('the run exercised what it claims', async (t) => {
  const [u8v4, u8v6] = totals.unions['unionAbove 8']
  const [u0v4, u0v6] = totals.unions['unionAbove 0']
  t.comment(`${SEEDS.length} worlds, ${totals.flows} flow checks, ${totals.accepted} accepted; union sets: unionAbove 8 v4 ${u8v4} v6 ${u8v6}, unionAbove 0 v4 ${u0v4} v6 ${u0v6}`)
  if (SEEDS.length < 20) return
  t.ok(u8v4 > 0, 'the default layout built wren4u- union sets (port groups of more than 8 peers)')
  t.ok(u0v4 > 0 && u0v6 > 0, 'unionAbove 0 built wren4u- and wren6u- union sets')
  const share = totals.accepted / totals.flows
  t.ok(share > 0.15 && share < 0.85, `both verdicts are common (${Math.round(share * 100)}% accepted)`)
})
