// The cluster as the compiler sees it: every pod with its labels, its
// namespace's labels, its canonical IPs per family and its named container
// ports, so selectors are evaluated against plain maps; indexed (by namespace,
// by label) so that finding a selector's pods costs the pods it could match,
// not every pod of the cluster. ClusterBuilder (cluster-builder.ts) keeps it
// from one compile to the next.
import type { Family, Problem } from '../dataplane/types.ts'
import type { Snapshot, Pod } from '../model.ts'
import { canonicalAddr } from './ip.ts'
import type { Proto } from './match.ts'
import { compareText, labelMap, type Selector } from './selector.ts'

/** Kubernetes sets this label on every namespace to the namespace's name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name'

export interface NamedPort {
  name: string
  proto: Proto
  port: number
}

export interface PodInfo {
  namespace: string
  name: string
  labels: Map<string, string>
  nsLabels: Map<string, string>
  ips: Record<Family, string[]>
  namedPorts: NamedPort[]
  /**
   * Whether the pod's IPs may appear in peer sets. Host-network pods carry the
   * node's IP (NetworkPolicy leaves them undefined; admitting them would allow
   * the whole node), and finished pods may have handed their IP to another pod.
   */
  peerEligible: boolean
}

export interface Cluster {
  /** Sorted by namespace/name. */
  pods: PodInfo[]
  byKey: Map<string, PodInfo[]>
  /** Peer-eligible pods only, each list in `pods` order. */
  eligible: PodInfo[]
  eligibleByNamespace: Map<string, PodInfo[]>
  /** label key → label value → peer-eligible pods carrying it. */
  eligibleByLabel: Map<string, Map<string, PodInfo[]>>
  /** Labels of every namespace that has a pod (shared by its pods' `nsLabels`). */
  nsLabels: Map<string, Map<string, string>>
}

export const podKey = (namespace: string, name: string): string => `${namespace}/${name}`

/** Objects from manifests may omit the namespace; kubectl would put them in `default`. */
export const namespaceOf = (meta: { namespace?: string }): string => (typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default')

export function namespaceLabels(snapshot: Snapshot): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>()
  // Sorted so that a duplicated Namespace object resolves the same way in any input order.
  const sorted = [...snapshot.namespaces].sort((a, b) => compareText(a.metadata.name + '\0' + JSON.stringify(a.metadata.labels ?? {}), b.metadata.name + '\0' + JSON.stringify(b.metadata.labels ?? {})))
  for (const ns of sorted) {
    if (typeof ns.metadata?.name === 'string' && !out.has(ns.metadata.name)) out.set(ns.metadata.name, labelMap(ns.metadata.labels))
  }
  return out
}

export function nsLabelsFor(known: Map<string, Map<string, string>>, ns: string): Map<string, string> {
  const labels = new Map(known.get(ns) ?? [])
  labels.set(NAMESPACE_NAME_LABEL, ns)
  return labels
}

export function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k)
  if (list) list.push(v)
  else m.set(k, [v])
}

function rawPodIps(pod: Pod, extra: readonly string[]): unknown[] {
  const list: unknown[] = [...extra]
  if (pod.status?.podIP !== undefined) list.push(pod.status.podIP)
  if (Array.isArray(pod.status?.podIPs)) for (const p of pod.status.podIPs) list.push(p?.ip)
  return list
}

function podIps(pod: Pod, extra: readonly string[], problems: Problem[]): Record<Family, string[]> {
  const ips: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() }
  for (const raw of rawPodIps(pod, extra)) {
    if (raw === undefined || raw === '') continue
    const a = canonicalAddr(raw)
    if (a) ips[a.family].add(a.text)
    else problems.push({ object: `Pod ${podKey(namespaceOf(pod.metadata), pod.metadata.name)}`, message: `invalid pod IP ${JSON.stringify(raw)}`, effect: 'address left out of every set' })
  }
  return { 4: [...ips[4]].sort(compareText), 6: [...ips[6]].sort(compareText) }
}

/** "protocol ... Must be UDP, TCP, or SCTP. Defaults to TCP." Anything else names no port. */
export function protoOf(raw: unknown): Proto | null {
  if (raw === undefined || raw === null) return 'tcp'
  return raw === 'TCP' ? 'tcp' : raw === 'UDP' ? 'udp' : raw === 'SCTP' ? 'sctp' : null
}

function namedPorts(pod: Pod): NamedPort[] {
  const out: NamedPort[] = []
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c?.ports ?? []) {
      const proto = protoOf(p?.protocol)
      const port = p?.containerPort
      if (typeof p?.name !== 'string' || !proto || !Number.isInteger(port) || port < 1 || port > 65535) continue
      out.push({ name: p.name, proto, port })
    }
  }
  return out
}

function isPeerEligible(pod: Pod): boolean {
  const phase = pod.status?.phase
  return pod.spec?.hostNetwork !== true && phase !== 'Succeeded' && phase !== 'Failed'
}

/** Workload records carry IPs before the pod's status does; both count. */
export function workloadIps(snapshot: Snapshot): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const w of snapshot.workloads) {
    if (!w.namespace || !w.pod) continue
    const k = podKey(w.namespace, w.pod)
    out.set(k, [...(out.get(k) ?? []), ...(Array.isArray(w.ips) ? w.ips : [])])
  }
  return out
}

export function podInfo(pod: Pod, namespace: string, nsLabels: Map<string, string>, extra: readonly string[], problems: Problem[]): PodInfo {
  return {
    namespace,
    name: pod.metadata.name,
    labels: labelMap(pod.metadata.labels),
    nsLabels,
    ips: podIps(pod, extra, problems),
    namedPorts: namedPorts(pod),
    peerEligible: isPeerEligible(pod),
  }
}

function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a === b) return true
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

export function sameList<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => same(x, b[i])))
}

const samePort = (a: NamedPort, b: NamedPort): boolean => a.name === b.name && a.proto === b.proto && a.port === b.port

/** Equal content: everything the compiler reads from a pod (set membership, workload resolution) is the same. */
export function samePod(a: PodInfo, b: PodInfo): boolean {
  if (a === b) return true
  if (a.namespace !== b.namespace || a.name !== b.name || a.peerEligible !== b.peerEligible) return false
  if (!sameMap(a.labels, b.labels) || !sameMap(a.nsLabels, b.nsLabels)) return false
  const sameText = (x: string, y: string) => x === y
  return sameList(a.ips[4], b.ips[4], sameText) && sameList(a.ips[6], b.ips[6], sameText) && sameList(a.namedPorts, b.namedPorts, samePort)
}

export function indexed(pods: PodInfo[], byKey: Map<string, PodInfo[]>, nsLabels: Map<string, Map<string, string>>): Cluster {
  const cluster: Cluster = { pods, byKey, eligible: [], eligibleByNamespace: new Map(), eligibleByLabel: new Map(), nsLabels }
  for (const p of pods) {
    if (!p.peerEligible) continue
    cluster.eligible.push(p)
    push(cluster.eligibleByNamespace, p.namespace, p)
    for (const [k, v] of p.labels) {
      let byValue = cluster.eligibleByLabel.get(k)
      if (!byValue) cluster.eligibleByLabel.set(k, (byValue = new Map()))
      push(byValue, v, p)
    }
  }
  return cluster
}

/**
 * Peer-eligible pods that may match `sel` (a superset, never missing one): the
 * pods carrying the label of its most selective `In` or `Exists` requirement,
 * or `fallback` when it has none or that is smaller.
 */
export function candidates(cluster: Cluster, sel: Selector, fallback: PodInfo[]): PodInfo[] {
  let best = fallback
  for (const r of sel.reqs) {
    if (r.op !== 'In' && r.op !== 'Exists') continue
    const byValue = cluster.eligibleByLabel.get(r.key)
    let list: PodInfo[]
    if (!byValue) list = []
    else if (r.op === 'Exists') list = [...byValue.values()].flat()
    // A pod has one value per key, so the lists of distinct values are disjoint.
    else list = r.values.length === 1 ? (byValue.get(r.values[0]) ?? []) : r.values.flatMap((v) => byValue.get(v) ?? [])
    if (list.length < best.length) best = list
  }
  return best
}
