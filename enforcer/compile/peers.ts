// NetworkPolicyPeer: validation into peer specs, and the set each peer's addresses fill.
import type { Family } from '../dataplane/types.ts'
import { formatCidr, formatNet, parseCidr, storableNets, strictlyContains, subtractNets, type Cidr } from './ip.ts'
import type { MemberSource, UnionPart } from './members.ts'
import { describeSelector, parseSelector, selectorKey, compareText, type Selector } from './selector.ts'

/** Pods chosen by label: `namespace` set = only that namespace; else namespaces matching `nsSel`. */
export type PodsPeer = { kind: 'pods'; namespace: string | null; nsSel: Selector | null; podSel: Selector }
export type NetPeer = { kind: 'net'; cidr: Cidr; except: Cidr[] }
export type PeerSpec = PodsPeer | NetPeer

/** null means "all peers". */
export type PeersResult = { ok: true; peers: PeerSpec[] | null } | { ok: false; error: string }

function parseIpBlock(raw: unknown, at: string): PeerSpec | string {
  if (typeof raw !== 'object' || raw === null) return `${at} must be an object`
  const b = raw as { cidr?: unknown; except?: unknown }
  const cidr = parseCidr(b.cidr)
  if (!cidr) return `${at}.cidr ${JSON.stringify(b.cidr)} is not a CIDR`
  const rawExcept = b.except ?? []
  if (!Array.isArray(rawExcept)) return `${at}.except must be a list`
  const except: Cidr[] = []
  for (const e of rawExcept) {
    const c = parseCidr(e)
    // "except ... Except values will be rejected if they are outside the cidr range."
    // (The API server also rejects an except equal to the cidr: it must be a strict subset.)
    if (!c || !strictlyContains(cidr, c)) return `${at}.except ${JSON.stringify(e)} is not a CIDR strictly inside ${formatCidr(cidr)}`
    except.push(c)
  }
  // Canonical order without duplicates, so equal blocks share one set.
  const unique = new Map(except.map((c) => [formatCidr(c), c]))
  const sorted = [...unique.keys()].sort(compareText).map((k) => unique.get(k)!)
  return { kind: 'net', cidr, except: sorted }
}

function parsePeer(raw: unknown, policyNamespace: string, at: string): PeerSpec | string {
  if (typeof raw !== 'object' || raw === null) return `${at} must be an object`
  const p = raw as { podSelector?: unknown; namespaceSelector?: unknown; ipBlock?: unknown }
  const hasPod = p.podSelector !== undefined && p.podSelector !== null
  const hasNs = p.namespaceSelector !== undefined && p.namespaceSelector !== null
  const hasBlock = p.ipBlock !== undefined && p.ipBlock !== null
  // "Exactly one of the selector pointers must be non-nil": ipBlock, or one/both selectors.
  if (hasBlock && (hasPod || hasNs)) return `${at} sets ipBlock together with a selector`
  if (hasBlock) return parseIpBlock(p.ipBlock, `${at}.ipBlock`)
  if (!hasPod && !hasNs) return `${at} names no podSelector, namespaceSelector or ipBlock`
  const pod = parseSelector(p.podSelector as never, `${at}.podSelector`)
  if (!pod.ok) return pod.error
  // "If NamespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the
  //  Pods matching PodSelector in the Namespaces selected by NamespaceSelector. Otherwise
  //  it selects the Pods matching PodSelector in the policy's own Namespace."
  // "namespaceSelector ... If PodSelector is also set, then ... AND ...; Otherwise it
  //  selects all Pods in the Namespaces selected by NamespaceSelector."
  if (!hasNs) return { kind: 'pods', namespace: policyNamespace, nsSel: null, podSel: pod.selector }
  const ns = parseSelector(p.namespaceSelector as never, `${at}.namespaceSelector`)
  if (!ns.ok) return ns.error
  return { kind: 'pods', namespace: null, nsSel: ns.selector, podSel: pod.selector }
}

/**
 * "from: ... If this field is empty or missing, this rule matches all sources
 * (traffic not restricted by source). If this field is present and contains at
 * least one item, this rule allows traffic only if the traffic matches at least
 * one item in the from list." (Likewise `to` for destinations.)
 */
export function parsePeers(raw: unknown, policyNamespace: string, at: string): PeersResult {
  if (raw === undefined || raw === null) return { ok: true, peers: null }
  if (!Array.isArray(raw)) return { ok: false, error: `${at} must be a list` }
  if (raw.length === 0) return { ok: true, peers: null }
  const peers: PeerSpec[] = []
  for (let i = 0; i < raw.length; i++) {
    const r = parsePeer(raw[i], policyNamespace, `${at}[${i}]`)
    if (typeof r === 'string') return { ok: false, error: r }
    peers.push(r)
  }
  return { ok: true, peers }
}

/** ipset members for an ipBlock: the cidr, with each except as a more specific `nomatch` entry. */
export function netMembers(spec: NetPeer): string[] {
  const excepts = new Set(spec.except.map(formatCidr))
  const positives = storableNets(spec.cidr).map(formatCidr)
  // An except equal to a positive entry (possible only for a /0 stored as two /1s)
  // removes that entry; keeping both would be the same entry twice.
  const out = positives.filter((p) => !excepts.has(p))
  for (const e of excepts) if (!positives.includes(e)) out.push(`${e} nomatch`)
  return out
}

/** One peer's own set in one family: its name key, type and what fills it. */
export interface PeerPart {
  kind: 'ip' | 'net'
  key: string
  type: 'hash:ip' | 'hash:net'
  description: string
  source: Extract<MemberSource, { kind: 'pods' | 'net' }>
  /** The peer as part of a union set: ipBlocks without `nomatch` entries there. */
  unionPart: UnionPart
}

/** null when the peer holds no address of the family (an IPv4 ipBlock in the IPv6 chains). */
export function peerPart(spec: PeerSpec, family: Family): PeerPart | null {
  if (spec.kind === 'pods') {
    const key = JSON.stringify(['pods', spec.namespace, spec.nsSel ? selectorKey(spec.nsSel) : null, selectorKey(spec.podSel)])
    const where = spec.namespace !== null ? `in ${spec.namespace}` : `in namespaces ${describeSelector(spec.nsSel!)}`
    const source = { kind: 'pods' as const, peer: spec }
    return { kind: 'ip', key, type: 'hash:ip', description: `pods ${describeSelector(spec.podSel)} ${where}`, source, unionPart: { key: `ip\0${key}`, source } }
  }
  if (spec.cidr.family !== family) return null
  const key = JSON.stringify(['net', formatCidr(spec.cidr), spec.except.map(formatCidr)])
  const text = `ipBlock ${formatCidr(spec.cidr)}${spec.except.length ? ' except ' + spec.except.map(formatCidr).join(',') : ''}`
  return { kind: 'net', key, type: 'hash:net', description: text, source: { kind: 'net', peer: spec }, unionPart: { key: `net+\0${key}`, source: { kind: 'net', peer: spec, positive: true } } }
}

/** The addresses an ipBlock allows, as positive entries only (for a union with other peers). */
export function netPositives(spec: NetPeer): string[] {
  return subtractNets(spec.cidr, spec.except).map(formatNet)
}
