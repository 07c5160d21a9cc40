// Set members: what each kind of set selects (a MemberSource, plain data), the
// pods of the cluster it selects, and a cache of members across compiles.
//
// The cache is what keeps a label change cheap at cluster scale. It relies on
// one property: whether a pod belongs to a set, and what it contributes, depends
// only on that pod's own PodInfo (labels, namespace labels, IPs, named ports,
// eligibility). So after a change, a set that each changed pod's old and new
// version are both outside of, or both inside of contributing the same
// entries, has exactly the members it had. The caller finds the changed pods
// (cluster-builder.ts); every other set is recomputed.
import type { Family } from '../dataplane/types.ts'
import { candidates, type Cluster, type PodInfo } from './cluster.ts'
import type { Proto } from './match.ts'
import { netMembers, netPositives, type NetPeer, type PodsPeer } from './peers.ts'
import { canonicalList, type SetRequest } from './sets.ts'
import { compareText, matches, type Selector } from './selector.ts'

export type MemberSource =
  | { kind: 'pods'; peer: PodsPeer }
  /** An ipBlock; `positive`: its except carved out as plain entries (for a union) instead of `nomatch` ones. */
  | { kind: 'net'; peer: NetPeer; positive?: boolean }
  /** ip,port entries of a named container port; `on`: only the subject pods of an ingress policy, null: any pod. */
  | { kind: 'named'; proto: Proto; name: string; on: { namespace: string; subject: Selector } | null }
  /** Every address any of the parts holds (the peers of one port group); parts keyed like sets, so their members are cached once. */
  | { kind: 'union'; parts: UnionPart[] }

export interface UnionPart {
  key: string
  source: Extract<MemberSource, { kind: 'pods' | 'net' }>
}

function hasNamedPort(pod: PodInfo, proto: Proto, name: string): boolean {
  return pod.namedPorts.some((np) => np.name === name && np.proto === proto)
}

type PodSource = Exclude<MemberSource, { kind: 'net' } | { kind: 'union' }>

/** Whether `pod` is selected by the source (it contributes members or would if it had addresses). */
export function involves(source: MemberSource, pod: PodInfo): boolean {
  if (!pod.peerEligible) return false
  switch (source.kind) {
    case 'net':
      return false
    case 'union':
      return source.parts.some((p) => involves(p.source, pod))
    case 'pods': {
      const { peer } = source
      if (peer.namespace !== null ? pod.namespace !== peer.namespace : !matches(peer.nsSel!, pod.nsLabels)) return false
      return matches(peer.podSel, pod.labels)
    }
    case 'named':
      if (source.on && (pod.namespace !== source.on.namespace || !matches(source.on.subject, pod.labels))) return false
      return hasNamedPort(pod, source.proto, source.name)
  }
}

/** The peer-eligible pods the source selects, found through the cluster's indexes. */
function selectedPods(source: PodSource, cluster: Cluster): PodInfo[] {
  let pool: PodInfo[]
  if (source.kind === 'pods') {
    const { peer } = source
    if (peer.namespace !== null) pool = cluster.eligibleByNamespace.get(peer.namespace) ?? []
    else {
      const namespaces = [...cluster.nsLabels].filter(([, labels]) => matches(peer.nsSel!, labels)).map(([ns]) => ns)
      pool = namespaces.length === cluster.nsLabels.size ? cluster.eligible : namespaces.flatMap((ns) => cluster.eligibleByNamespace.get(ns) ?? [])
    }
    pool = candidates(cluster, peer.podSel, pool)
  } else if (source.on) {
    pool = candidates(cluster, source.on.subject, cluster.eligibleByNamespace.get(source.on.namespace) ?? [])
  } else {
    pool = cluster.eligible
  }
  return pool.filter((pod) => involves(source, pod))
}

function podMembers(source: PodSource, pods: PodInfo[], family: Family): string[] {
  const out: string[] = []
  for (const pod of pods) {
    if (source.kind === 'pods') {
      out.push(...pod.ips[family])
      continue
    }
    for (const np of pod.namedPorts) {
      if (np.name !== source.name || np.proto !== source.proto) continue
      for (const ip of pod.ips[family]) out.push(`${ip},${source.proto}:${np.port}`)
    }
  }
  // Shared with later compiles through the cache: frozen so no consumer can edit it.
  return Object.freeze(canonicalList(out)) as string[]
}

/** One pod that changed: its previous version (absent when new) and its current one (absent when gone). */
export interface PodChange {
  before?: PodInfo
  after?: PodInfo
}

function contribution(source: PodSource, pod: PodInfo): readonly unknown[] {
  if (source.kind === 'pods') return [...pod.ips[4], '', ...pod.ips[6]]
  const ports = pod.namedPorts.filter((np) => np.name === source.name && np.proto === source.proto).map((np) => np.port)
  return [...pod.ips[4], '', ...pod.ips[6], '', ...ports]
}

/** Whether the change can alter the members of a set of `source`. */
function affects(source: MemberSource, change: PodChange): boolean {
  if (source.kind === 'union') return source.parts.some((p) => affects(p.source, change))
  const was = change.before !== undefined && involves(source, change.before)
  const is = change.after !== undefined && involves(source, change.after)
  if (was !== is) return true
  if (!is || source.kind === 'net') return false
  const a = contribution(source, change.before!)
  const b = contribution(source, change.after!)
  return a.length !== b.length || a.some((x, i) => x !== b[i])
}

interface Entry {
  source: MemberSource
  members: Record<Family, string[]>
}

/**
 * Members per set key, kept across compiles. `update` must see every compile's
 * changed pods (or `all`) before `members` is asked for that compile's sets.
 */
export class MemberCache {
  private entries = new Map<string, Entry>()
  private used = new Set<string>()

  /** Drops every entry a changed pod could affect. */
  update(changed: PodChange[] | 'all'): void {
    if (changed === 'all') this.entries.clear()
    else if (changed.length > 0) {
      for (const [key, e] of this.entries) if (changed.some((c) => affects(e.source, c))) this.entries.delete(key)
    }
  }

  members(r: SetRequest, family: Family, cluster: Cluster): string[] {
    return this.entry(r.key, r.source, cluster).members[family]
  }

  private entry(key: string, source: MemberSource, cluster: Cluster): Entry {
    this.used.add(key)
    let e = this.entries.get(key)
    if (!e) {
      if (source.kind === 'net') {
        const list = source.positive ? netPositives(source.peer) : netMembers(source.peer)
        const net = Object.freeze(canonicalList(list)) as string[]
        e = { source, members: source.peer.cidr.family === 4 ? { 4: net, 6: [] } : { 4: [], 6: net } }
      } else if (source.kind === 'union') {
        // the parts are cached under their own keys: a change recomputes each part once, then merges
        const parts = source.parts.map((p) => this.entry(p.key, p.source, cluster))
        e = { source, members: { 4: mergeSorted(parts.map((p) => p.members[4])), 6: mergeSorted(parts.map((p) => p.members[6])) } }
      } else {
        const pods = selectedPods(source, cluster)
        e = { source, members: { 4: podMembers(source, pods, 4), 6: podMembers(source, pods, 6) } }
      }
      this.entries.set(key, e)
    }
    return e
  }

  /** Forgets the sets this compile did not use, so the cache never outgrows one desired state. */
  prune(): void {
    for (const key of this.entries.keys()) if (!this.used.has(key)) this.entries.delete(key)
    this.used.clear()
  }
}

/** The union of canonical (sorted, deduplicated) lists, canonical; a single list is returned as it is. */
function mergeSorted(lists: string[][]): string[] {
  const nonEmpty = lists.filter((l) => l.length > 0)
  if (nonEmpty.length === 0) return Object.freeze([]) as unknown as string[]
  let round = nonEmpty
  while (round.length > 1) {
    const next: string[][] = []
    for (let i = 0; i < round.length; i += 2) next.push(i + 1 < round.length ? mergeTwo(round[i], round[i + 1]) : round[i])
    round = next
  }
  return Object.isFrozen(round[0]) ? round[0] : (Object.freeze(round[0]) as string[])
}

function mergeTwo(a: string[], b: string[]): string[] {
  const out: string[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const c = compareText(a[i], b[j])
    if (c <= 0) out.push(a[i++])
    else out.push(b[j++])
    if (c === 0) j++
  }
  while (i < a.length) out.push(a[i++])
  while (j < b.length) out.push(b[j++])
  return out
}
