// Test helper (not a test): a reference evaluator of Kubernetes NetworkPolicy
// (networking.k8s.io/v1), written from the API documentation and sharing no
// code with enforcer/compile, so the compiler's output (run by compile-sim.ts)
// can be checked against it. It answers one question: may a new connection
// from one address to another (protocol, port) be made?
//
// Model (only what the fuzz worlds use, anything else throws):
// - Every pod is an ordinary running pod on the pod network (host-network and
//   finished pods, which the compiler never counts as peers, are refused).
// - Pods are found by their IPs (each IP belongs to at most one pod); an
//   address of no pod is outside the cluster.
// - A pod is isolated for a direction iff some policy of its namespace selects
//   it and has that direction in its effective policyTypes; an isolated pod
//   allows only what some rule of such a policy allows. A connection between
//   two pods needs the sender's egress and the receiver's ingress.
import type { LabelSelector, Namespace, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, Pod } from '../../enforcer/model.ts'

export type Proto = 'tcp' | 'udp' | 'sctp'
export type Dir = 'ingress' | 'egress'

export interface OracleWorld {
  namespaces: Namespace[]
  pods: Pod[]
  policies: NetworkPolicy[]
}

// --- addresses, as (family, big integer) -----------------------------------
export interface Ip {
  fam: 4 | 6
  n: bigint
}

export function parseIp(text: string): Ip {
  if (!text.includes(':')) {
    const parts = text.split('.')
    if (parts.length !== 4 || parts.some((p) => !/^\d+$/.test(p) || Number(p) > 255)) throw new Error(`oracle: bad IPv4 ${text}`)
    return { fam: 4, n: parts.reduce((a, p) => (a << 8n) | BigInt(p), 0n) }
  }
  const halves = text.split('::')
  if (halves.length > 2) throw new Error(`oracle: bad IPv6 ${text}`)
  const group = (s: string) => (s === '' ? [] : s.split(':'))
  const head = group(halves[0])
  const tail = halves.length === 2 ? group(halves[1]) : []
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) throw new Error(`oracle: bad IPv6 ${text}`)
  return { fam: 6, n: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n) }
}

/** Dotted quad, or RFC 5952 text (lowercase, longest run of two or more zero groups as `::`, leftmost on a tie). */
export function formatIp(ip: Ip): string {
  if (ip.fam === 4) return [24n, 16n, 8n, 0n].map((s) => String((ip.n >> s) & 255n)).join('.')
  const g = Array.from({ length: 8 }, (_, i) => Number((ip.n >> BigInt(112 - 16 * i)) & 0xffffn))
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':')
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

export const bits = (fam: 4 | 6): number => (fam === 4 ? 32 : 128)

/** Whether `ip` lies in `cidr` (`base/len`; host bits of the base ignored); never across families. */
export function inCidr(cidr: string, ip: Ip): boolean {
  const [base, len] = cidr.split('/')
  const b = parseIp(base)
  if (b.fam !== ip.fam || len === undefined) return false
  const shift = BigInt(bits(b.fam) - Number(len))
  return b.n >> shift === ip.n >> shift
}

// --- labels ------------------------------------------------------------------
/**
 * "A label selector is a label query over a set of resources. The result of
 * matchLabels and matchExpressions are ANDed. An empty label selector matches
 * all objects."
 */
export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true
  const has = (k: string) => Object.prototype.hasOwnProperty.call(labels, k)
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (!has(k) || labels[k] !== v) return false
  for (const e of sel.matchExpressions ?? []) {
    const values = e.values ?? []
    switch (e.operator) {
      case 'In':
        if (!has(e.key) || !values.includes(labels[e.key])) return false
        break
      case 'NotIn':
        if (has(e.key) && values.includes(labels[e.key])) return false
        break
      case 'Exists':
        if (!has(e.key)) return false
        break
      case 'DoesNotExist':
        if (has(e.key)) return false
        break
      default:
        throw new Error(`oracle: operator ${e.operator}`)
    }
  }
  return true
}

// --- the evaluator -------------------------------------------------------------
const podId = (p: Pod): string => `${p.metadata.namespace}/${p.metadata.name}`
const ipKey = (ip: Ip): string => `${ip.fam}/${ip.n}`

export interface Decision {
  allowed: boolean
  /** Why, per side that was judged: `open` (not isolated), `ns/policy rule N`, or `denied by ns/p, ...`. */
  egress?: string
  ingress?: string
}

export class Oracle {
  private readonly byIp = new Map<string, Pod>()
  private readonly nsLabels = new Map<string, Record<string, string>>()

  constructor(private readonly world: OracleWorld) {
    for (const n of world.namespaces) {
      // the API server labels every namespace with its name
      this.nsLabels.set(n.metadata.name, { ...(n.metadata.labels ?? {}), 'kubernetes.io/metadata.name': n.metadata.name })
    }
    for (const p of world.pods) {
      if (p.spec?.hostNetwork || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') throw new Error(`oracle: ${podId(p)} is not an ordinary pod`)
      for (const { ip } of p.status?.podIPs ?? []) {
        const k = ipKey(parseIp(ip))
        if (this.byIp.has(k)) throw new Error(`oracle: ${ip} belongs to two pods`)
        this.byIp.set(k, p)
      }
    }
  }

  podAt(ip: string): Pod | undefined {
    return this.byIp.get(ipKey(parseIp(ip)))
  }

  private labelsOfNs(ns: string): Record<string, string> {
    return this.nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns }
  }

  /**
   * policyTypes: "If this field is not specified, it will default based on the
   * existence of ingress or egress rules; policies that contain an egress
   * section are assumed to affect egress, and all policies (whether or not they
   * contain an ingress section) are assumed to affect ingress."
   */
  static types(p: NetworkPolicy): Set<Dir> {
    const t = p.spec.policyTypes
    if (!t || t.length === 0) return new Set<Dir>(p.spec.egress && p.spec.egress.length > 0 ? ['ingress', 'egress'] : ['ingress'])
    return new Set(t.map((x) => (x === 'Ingress' ? 'ingress' : x === 'Egress' ? 'egress' : (() => { throw new Error(`oracle: policyType ${x}`) })())))
  }

  /** Whether the peer (address `ip`, the pod owning it if any) is matched by `peer` of a policy in `policyNs`. */
  private peerMatches(peer: NetworkPolicyPeer, policyNs: string, ip: Ip, pod: Pod | undefined): boolean {
    if (peer.ipBlock) return inCidr(peer.ipBlock.cidr, ip) && !(peer.ipBlock.except ?? []).some((e) => inCidr(e, ip))
    if (!pod) return false
    const ns = pod.metadata.namespace!
    // without namespaceSelector: the policy's own namespace; with it: the namespaces it selects (AND the podSelector)
    if (peer.namespaceSelector === undefined) {
      if (ns !== policyNs) return false
    } else if (!selectorMatches(peer.namespaceSelector, this.labelsOfNs(ns))) return false
    return selectorMatches(peer.podSelector, pod.metadata.labels ?? {})
  }

  /**
   * "ports ... If this field is empty or missing, this rule matches all ports."
   * A named port is looked up on the destination pod (ingress: the selected
   * pod; egress: the peer): a container port of that name and protocol whose
   * number is the destination port.
   */
  private portMatches(ports: NetworkPolicyPort[] | undefined, proto: Proto, port: number, dstPod: Pod | undefined): boolean {
    if (!ports || ports.length === 0) return true
    return ports.some((p) => {
      const pp = (p.protocol ?? 'TCP').toLowerCase()
      if (pp !== proto) return false
      if (p.port === undefined) return true
      if (typeof p.port === 'number') return p.endPort !== undefined ? port >= p.port && port <= p.endPort : port === p.port
      if (!dstPod) return false
      const named = (dstPod.spec?.containers ?? []).flatMap((c) => c.ports ?? [])
      return named.some((c) => c.name === p.port && (c.protocol ?? 'TCP').toLowerCase() === proto && c.containerPort === port)
    })
  }

  /** The verdict of `subject`'s policies for one direction: the other end is `peerIp` (pod `peerPod`); `dstPod` is the destination. */
  private judge(dir: Dir, subject: Pod, peerIp: Ip, peerPod: Pod | undefined, dstPod: Pod | undefined, proto: Proto, port: number): string | null {
    const ns = subject.metadata.namespace!
    const policies = this.world.policies.filter((p) => p.metadata.namespace === ns && selectorMatches(p.spec.podSelector, subject.metadata.labels ?? {}) && Oracle.types(p).has(dir))
    if (policies.length === 0) return 'open'
    for (const p of policies) {
      const rules = (dir === 'ingress' ? p.spec.ingress : p.spec.egress) ?? []
      for (let i = 0; i < rules.length; i++) {
        const r = rules[i]
        const peers = dir === 'ingress' ? (r as { from?: NetworkPolicyPeer[] }).from : (r as { to?: NetworkPolicyPeer[] }).to
        // "If this field is empty or missing, this rule matches all sources/destinations."
        const peerOk = !peers || peers.length === 0 || peers.some((x) => this.peerMatches(x, ns, peerIp, peerPod))
        if (peerOk && this.portMatches(r.ports, proto, port, dstPod)) return `${ns}/${p.metadata.name} rule ${i}`
      }
    }
    return null
  }

  /** A new connection from `src` to `dst`: the sender's egress (if a pod) and the receiver's ingress (if a pod). */
  decide(src: string, dst: string, proto: Proto, port: number): Decision {
    const s = parseIp(src)
    const d = parseIp(dst)
    if (s.fam !== d.fam) throw new Error('oracle: flow across families')
    const srcPod = this.byIp.get(ipKey(s))
    const dstPod = this.byIp.get(ipKey(d))
    const out: Decision = { allowed: true }
    const denied = (dir: Dir, subject: Pod) =>
      'denied by ' + this.world.policies.filter((p) => p.metadata.namespace === subject.metadata.namespace && selectorMatches(p.spec.podSelector, subject.metadata.labels ?? {}) && Oracle.types(p).has(dir)).map((p) => `${p.metadata.namespace}/${p.metadata.name}`).join(', ')
    if (srcPod) {
      const why = this.judge('egress', srcPod, d, dstPod, dstPod, proto, port)
      out.egress = why ?? denied('egress', srcPod)
      if (why === null) out.allowed = false
    }
    if (dstPod) {
      const why = this.judge('ingress', dstPod, s, srcPod, dstPod, proto, port)
      out.ingress = why ?? denied('ingress', dstPod)
      if (why === null) out.allowed = false
    }
    return out
  }
}
