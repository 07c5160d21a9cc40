// Test helper (not a test): a tiny interpreter of the compiler's output, so
// semantic tests can ask "is this packet accepted?" instead of comparing rule
// text. It understands exactly the tokens the compiler is meant to emit and
// throws on anything else, and on a reference to a set or chain that does not
// exist, so a compiler emitting unexpected or dangling tokens fails loudly.
import type { Chain, DesiredState, FamilyState, IpSet } from '../../enforcer/dataplane/types.ts'
import type { LocalWorkload, Namespace, NetworkPolicy, Pod, Snapshot } from '../../enforcer/model.ts'

export type Verdict = 'ACCEPT' | 'DROP' | 'PASS'

export interface Packet {
  family: 4 | 6
  in?: string
  out?: string
  src: string
  dst: string
  proto: 'tcp' | 'udp' | 'sctp' | 'icmp'
  dport?: number
  state?: 'NEW' | 'ESTABLISHED' | 'INVALID'
}

// --- address math, independent of the compiler's ip.ts ---------------------
function toBig(ip: string): { fam: 4 | 6; n: bigint } {
  if (!ip.includes(':')) return { fam: 4, n: ip.split('.').reduce((a, p) => (a << 8n) | BigInt(Number(p)), 0n) }
  const [h, t] = ip.split('::')
  const head = h ? h.split(':') : []
  const tail = t !== undefined && t !== '' ? t.split(':') : []
  const groups = t === undefined ? head : [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail]
  return { fam: 6, n: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n) }
}

function netContains(cidr: string, ip: string): number | null {
  const [base, written] = cidr.split('/')
  const b = toBig(base)
  const a = toBig(ip)
  if (a.fam !== b.fam) return null
  const bits = b.fam === 4 ? 32 : 128
  // a bare address in a hash:net is a whole-address prefix, as ipset lists it
  const len = written === undefined ? bits : Number(written)
  const shift = BigInt(bits - len)
  return a.n >> shift === b.n >> shift ? len : null
}

function setHas(set: IpSet, key: string): boolean {
  if (set.type !== 'hash:net') return set.members.includes(key)
  // ipset hash:net: the most specific matching entry decides; `nomatch` entries say no.
  let best = -1
  let verdict = false
  for (const m of set.members) {
    const [cidr, flag] = m.split(' ')
    const len = netContains(cidr, key)
    if (len !== null && len > best) {
      best = len
      verdict = flag !== 'nomatch'
    }
  }
  return verdict
}

// --- rule interpreter ------------------------------------------------------
interface Ctx {
  fs: FamilyState
  pkt: Packet
  mark: number
  depth: number
}

const ifaceMatches = (pattern: string, iface: string | undefined): boolean =>
  iface !== undefined && (pattern.endsWith('+') ? iface.startsWith(pattern.slice(0, -1)) : iface === pattern)

function findSet(ctx: Ctx, name: string): IpSet {
  const s = ctx.fs.sets.find((x) => x.name === name)
  if (!s) throw new Error(`rule references missing set ${name}`)
  if (s.family !== ctx.fs.family) throw new Error(`set ${name} has family ${s.family} in the v${ctx.fs.family} state`)
  return s
}

function matchModule(ctx: Ctx, tok: string[], i: number): [boolean, number] {
  const mod = tok[i]
  const opt = tok[i + 1]
  const { pkt } = ctx
  if (mod === 'set' && opt === '--match-set') {
    const set = findSet(ctx, tok[i + 2])
    const dirs = tok[i + 3]
    const key = dirs === 'src' ? pkt.src : dirs === 'dst' ? pkt.dst : dirs === 'dst,dst' ? `${pkt.dst},${pkt.proto}:${pkt.dport}` : null
    if (key === null) throw new Error(`bad set dirs ${dirs}`)
    return [setHas(set, key), i + 4]
  }
  if (mod === 'mark' && opt === '--mark') {
    const [v, m] = tok[i + 2].split('/').map((x) => Number(x))
    return [(ctx.mark & m) === v, i + 3]
  }
  if (mod === 'conntrack' && opt === '--ctstate') return [tok[i + 2].split(',').includes(pkt.state ?? 'NEW'), i + 3]
  if (mod === 'rpfilter' && opt === '--invert') return [false, i + 2] // test packets are never spoofed
  if ((mod === 'tcp' || mod === 'udp' || mod === 'sctp') && opt === '--dport') {
    const [lo, hi] = tok[i + 2].split(':').map(Number)
    return [pkt.dport !== undefined && pkt.dport >= lo && pkt.dport <= (hi ?? lo), i + 3]
  }
  if (mod === 'icmp6' && opt === '--icmpv6-type') return [false, i + 3]
  throw new Error(`unknown match module ${mod} ${opt}`)
}

function matchRule(ctx: Ctx, tok: string[]): boolean {
  let ok = true
  for (let i = 0; i < tok.length; ) {
    const t = tok[i]
    if (t === '-i' || t === '-o') {
      ok &&= ifaceMatches(tok[i + 1], t === '-i' ? ctx.pkt.in : ctx.pkt.out)
      i += 2
    } else if (t === '-p') {
      ok &&= tok[i + 1] === ctx.pkt.proto
      i += 2
    } else if (t === '-m') {
      const [m, next] = matchModule(ctx, tok, i + 1)
      ok &&= m
      i = next
    } else throw new Error(`unknown match token ${t}`)
  }
  return ok
}

type Outcome = 'ACCEPT' | 'DROP' | 'RETURN'

function runChain(ctx: Ctx, name: string): Outcome {
  const chain: Chain | undefined = ctx.fs.chains.find((c) => c.name === name)
  if (!chain) throw new Error(`jump to missing chain ${name}`)
  if (++ctx.depth > 50) throw new Error('chain loop')
  for (const r of chain.rules) {
    if (!matchRule(ctx, r.match)) continue
    const [kind, target, ...rest] = r.action
    if (kind === '-g') return runChain(ctx, target)
    if (target === 'ACCEPT' || target === 'DROP') return target
    if (target === 'RETURN') return 'RETURN'
    if (target === 'MARK' && rest[0] === '--set-xmark') {
      const [v, m] = rest[1].split('/').map(Number)
      ctx.mark = (ctx.mark & ~m) ^ v
      continue
    }
    if (kind === '-j' && target.startsWith('wren-') && rest.length === 0) {
      const o = runChain(ctx, target)
      if (o !== 'RETURN') return o
      continue
    }
    throw new Error(`unknown action ${r.action.join(' ')}`)
  }
  return 'RETURN'
}

/** Runs a packet through the chain a built-in hook jumps to; PASS = wren left it to the rest of the ruleset. */
export function verdict(state: DesiredState, hook: 'FORWARD' | 'INPUT' | 'OUTPUT', pkt: Packet): Verdict {
  const fs = pkt.family === 4 ? state.v4 : state.v6
  const h = fs.hooks.find((x) => x.chain === hook && x.table === 'filter')
  if (!h) throw new Error(`no hook for ${hook}`)
  const o = runChain({ fs, pkt, mark: 0, depth: 0 }, h.target)
  return o === 'RETURN' ? 'PASS' : o
}

// --- snapshot builders -----------------------------------------------------
export interface PodOpts {
  labels?: Record<string, string>
  ips?: string[]
  ports?: { name: string; containerPort: number; protocol?: string }[]
  hostNetwork?: boolean
  phase?: string
}

export function pod(namespace: string, name: string, o: PodOpts = {}): Pod {
  return {
    metadata: { name, namespace, labels: o.labels ?? {} },
    spec: { hostNetwork: o.hostNetwork, containers: [{ name: 'c', ports: o.ports ?? [] }] },
    status: { podIPs: (o.ips ?? []).map((ip) => ({ ip })), phase: o.phase ?? 'Running' },
  }
}

export const ns = (name: string, labels: Record<string, string> = {}): Namespace => ({ metadata: { name, labels } })

export const policy = (namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({ metadata: { name, namespace }, spec })

export const workload = (hostIface: string, namespace?: string, podName?: string, ips: string[] = []): LocalWorkload => ({ hostIface, namespace, pod: podName, ips })

export function snapshot(s: Partial<Snapshot>): Snapshot {
  return { namespaces: s.namespaces ?? [], pods: s.pods ?? [], policies: s.policies ?? [], workloads: s.workloads ?? [] }
}

/** Something that sends or receives: a local workload (with its host interface) or a remote address. */
export interface Endpoint {
  ip: string
  iface?: string
}

/** The FORWARD verdict for a flow between two endpoints, as the node would route it. */
export function flow(state: DesiredState, from: Endpoint, to: Endpoint, dport: number, proto: Packet['proto'] = 'tcp', ct: Packet['state'] = 'NEW'): Verdict {
  const family = from.ip.includes(':') ? 6 : 4
  return verdict(state, 'FORWARD', { family, in: from.iface ?? 'eth0', out: to.iface ?? 'eth0', src: from.ip, dst: to.ip, proto, dport, state: ct })
}
