// The cluster of each compile, built from the last one's.
//
// Model: a pod object seen before, deep-frozen (identity.ts), yields the same
// PodInfo object; a new object equal in content to its pod's previous version
// is swapped for that version. So an unchanged pod is the identical PodInfo
// from one compile to the next, and the pods that changed (what the member
// cache needs, members.ts) are found by identity, comparing content only for
// the objects that are new.
// When the snapshot differs from the last one only in a few pod objects (the
// store keeps every unchanged object and list), the last cluster is patched:
// its pod lists are walked by identity and only the pods that differ are
// derived, compared and moved in the indexes. Anything else (namespaces or
// workloads changed, unfrozen objects, input out of key order, many edits) is
// a full build.
// Invariant: the cluster built has the content a fresh build of the same
// snapshot has, whatever was built before; list orders that no output
// depends on (the order of label values in an index) may differ.
import type { Problem } from '../dataplane/types.ts'
import type { Pod, Snapshot } from '../model.ts'
import { indexed, namespaceLabels, namespaceOf, nsLabelsFor, podInfo, podKey, push, sameList, samePod, workloadIps, type Cluster, type PodInfo } from './cluster.ts'
import type { PodChange } from './members.ts'
import { deepFrozen } from '../../shared/frozen.ts'
import { IdentityMemo } from './identity.ts'
import { compareText } from './selector.ts'

/** What one pod object yields: its PodInfo (for the record IPs in `extra`) and the problems deriving it found. */
interface Derived {
  key: string
  extra: string
  info: PodInfo
  problems: Problem[]
}

export interface ClusterUpdate {
  cluster: Cluster
  /** Pods that differ from the previous build's; 'all' on the first build. */
  changed: PodChange[] | 'all'
}

/** The last build, and what patching it needs. */
interface Last {
  snapshot: Snapshot
  cluster: Cluster
  /** Every pod object and list was deep-frozen: the snapshot's pods can be compared by identity. */
  frozen: boolean
  /** Named pods only, in strict key order (no duplicates): a walk by key can align two snapshots. */
  ordered: boolean
  extra: Map<string, string[]>
  problems: Map<string, Problem[]>
  podsPerNamespace: Map<string, number>
}

/** Past this many pod edits a full build is about as cheap as patching. */
const PATCH_LIMIT = 200
/** Past a few hundred changed pods, recomputing every set is cheaper than testing each against every set. */
const CHANGED_LIMIT = 500

const keyOfInfo = (p: PodInfo): string => podKey(p.namespace, p.name)

/** Index of the first pod in `list` (in key order) whose key is not below `key`. */
function lowerBound(list: PodInfo[], key: string): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareText(keyOfInfo(list[mid]), key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function removeFrom<K>(m: Map<K, PodInfo[]>, k: K, p: PodInfo): void {
  const list = m.get(k)!
  list.splice(lowerBound(list, keyOfInfo(p)), 1)
  if (list.length === 0) m.delete(k)
}

function insertInto<K>(m: Map<K, PodInfo[]>, k: K, p: PodInfo): void {
  const list = m.get(k)
  if (list) list.splice(lowerBound(list, keyOfInfo(p)), 0, p)
  else m.set(k, [p])
}

export class ClusterBuilder {
  private readonly derived = new IdentityMemo<Pod, Derived>()
  /** Each namespace's label map, reused while its content is unchanged. */
  private nsLabels = new Map<string, { text: string; labels: Map<string, string> }>()
  private last: Last | undefined

  build(snapshot: Snapshot, problems: Problem[]): ClusterUpdate {
    const update = this.patch(snapshot) ?? this.full(snapshot)
    for (const found of this.last!.problems.values()) problems.push(...found)
    return update
  }

  private full(snapshot: Snapshot): ClusterUpdate {
    const last = this.last
    const nsKnown = namespaceLabels(snapshot)
    const extra = workloadIps(snapshot)
    const nsLabels = new Map<string, { text: string; labels: Map<string, string> }>()
    const entries: Derived[] = []
    let frozen = Object.isFrozen(snapshot.pods) && deepFrozen(snapshot.namespaces) && deepFrozen(snapshot.workloads)
    let ordered = true
    for (const pod of snapshot.pods) {
      if (typeof pod?.metadata?.name !== 'string') {
        ordered = false
        continue
      }
      const namespace = namespaceOf(pod.metadata)
      let nsl = nsLabels.get(namespace)
      if (!nsl) nsLabels.set(namespace, (nsl = this.namespaceLabels(namespace, nsKnown)))
      const d = this.derive(pod, namespace, nsl.labels, extra)
      if (!d.frozen) frozen = false
      entries.push(d.derived)
    }
    this.nsLabels = nsLabels
    // Sources hand pods in key order (the store does): sort only when they are not.
    for (let i = 1; i < entries.length && ordered; i++) ordered = compareText(entries[i - 1].key, entries[i].key) < 0
    if (!ordered) entries.sort((a, b) => compareText(a.key, b.key))
    const byKey = new Map<string, PodInfo[]>()
    for (const d of entries) push(byKey, d.key, d.info)
    const changed = last ? this.diff(last.cluster.byKey, byKey, entries) : 'all'
    const pods: PodInfo[] = []
    for (const list of byKey.values()) pods.push(...list)
    const cluster = indexed(pods, byKey, new Map([...nsLabels].map(([ns, { labels }]) => [ns, labels])))
    const found = new Map<string, Problem[]>()
    for (const d of entries) if (d.problems.length > 0) found.set(d.key, [...(found.get(d.key) ?? []), ...d.problems])
    const podsPerNamespace = new Map<string, number>()
    for (const p of pods) podsPerNamespace.set(p.namespace, (podsPerNamespace.get(p.namespace) ?? 0) + 1)
    this.last = { snapshot, cluster, frozen, ordered, extra, problems: found, podsPerNamespace }
    return { cluster, changed }
  }

  private namespaceLabels(namespace: string, nsKnown: Map<string, Map<string, string>>): { text: string; labels: Map<string, string> } {
    const labels = nsLabelsFor(nsKnown, namespace)
    const text = JSON.stringify([...labels])
    const prev = this.nsLabels.get(namespace)
    return prev?.text === text ? prev : { text, labels }
  }

  /** The pod's Derived, from the memo while the object and its record IPs are unchanged; `frozen` when the memo keeps it. */
  private derive(pod: Pod, namespace: string, nsLabels: Map<string, string>, extra: Map<string, string[]>): { derived: Derived; frozen: boolean } {
    let d = this.derived.get(pod)
    const key = d?.key ?? podKey(namespace, pod.metadata.name)
    const ips = extra.get(key)
    const extraText = ips ? JSON.stringify(ips) : ''
    if (d && d.extra === extraText) {
      if (d.info.nsLabels !== nsLabels) d.info = { ...d.info, nsLabels }
      return { derived: d, frozen: true }
    }
    const problems: Problem[] = []
    d = { key, extra: extraText, info: podInfo(pod, namespace, nsLabels, ips ?? [], problems), problems }
    return { derived: d, frozen: this.derived.set(pod, d) }
  }

  /**
   * Pods of `next` that differ from `prev`, both versions. A new PodInfo equal
   * in content to the previous one is swapped for it (in `next` and in its
   * Derived), so the pod stays unchanged by identity from now on.
   */
  private diff(prev: Map<string, PodInfo[]>, next: Map<string, PodInfo[]>, entries: Derived[]): PodChange[] | 'all' {
    const changed: PodChange[] = []
    const swapped = new Map<PodInfo, PodInfo>()
    for (const [key, list] of next) {
      const old = prev.get(key)
      if (old === undefined) changed.push(...list.map((after) => ({ after })))
      else if (!sameList(old, list, samePod)) {
        // One pod per key is the norm: a version pair. Duplicates under one key are compared as gone and new.
        if (old.length === 1 && list.length === 1) changed.push({ before: old[0], after: list[0] })
        else changed.push(...list.map((after) => ({ after })), ...old.map((before) => ({ before })))
      } else if (list.some((p, i) => p !== old[i])) {
        list.forEach((p, i) => swapped.set(p, old[i]))
        next.set(key, old)
      }
    }
    for (const [key, old] of prev) if (!next.has(key)) changed.push(...old.map((before) => ({ before })))
    if (swapped.size > 0) for (const d of entries) d.info = swapped.get(d.info) ?? d.info
    return changed.length > CHANGED_LIMIT ? 'all' : changed
  }

  /** The last cluster, patched for the few pod objects that differ; undefined when a full build is needed. */
  private patch(snapshot: Snapshot): ClusterUpdate | undefined {
    const last = this.last
    if (!last?.frozen || !last.ordered || snapshot.namespaces !== last.snapshot.namespaces || snapshot.workloads !== last.snapshot.workloads) return undefined
    if (!Object.isFrozen(snapshot.pods)) return undefined
    const edits = this.edits(last.snapshot.pods, snapshot.pods)
    if (!edits) return undefined
    let nsKnown: Map<string, Map<string, string>> | undefined
    const next = new Map<string, Derived>()
    for (const pod of edits.added) {
      const namespace = namespaceOf(pod.metadata)
      let nsl = this.nsLabels.get(namespace)
      if (!nsl) this.nsLabels.set(namespace, (nsl = this.namespaceLabels(namespace, (nsKnown ??= namespaceLabels(snapshot)))))
      const d = this.derive(pod, namespace, nsl.labels, last.extra)
      if (!d.frozen) return undefined
      next.set(d.derived.key, d.derived)
    }
    const changed: PodChange[] = []
    const keys = new Set([...edits.removedKeys, ...next.keys()])
    for (const key of keys) {
      const old = last.cluster.byKey.get(key)?.[0]
      const d = next.get(key)
      if (old && d && samePod(old, d.info)) d.info = old
      else {
        if (old) this.remove(last, old)
        if (d) this.insert(last, d.info)
        changed.push({ before: old, after: d?.info })
      }
      if (d?.problems.length) last.problems.set(key, d.problems)
      else last.problems.delete(key)
    }
    last.snapshot = snapshot
    return { cluster: last.cluster, changed: changed.length > CHANGED_LIMIT ? 'all' : changed }
  }

  /**
   * The pod objects of `next` not in `prev` and the keys of those of `prev`
   * not in `next`, by a walk in key order; undefined when `next` is not in
   * strict key order where it differs, or differs in too many pods.
   */
  private edits(prev: readonly Pod[], next: readonly Pod[]): { added: Pod[]; removedKeys: string[] } | undefined {
    const added: Pod[] = []
    const removedKeys: string[] = []
    const keyOf = (pod: Pod | undefined): string | undefined => {
      if (pod === undefined) return undefined
      const d = this.derived.get(pod)
      if (d) return d.key
      return typeof pod?.metadata?.name === 'string' ? podKey(namespaceOf(pod.metadata), pod.metadata.name) : undefined
    }
    let i = 0
    let j = 0
    while (i < prev.length || j < next.length) {
      if (i < prev.length && j < next.length && prev[i] === next[j]) {
        i++
        j++
        continue
      }
      if (added.length + removedKeys.length > PATCH_LIMIT) return undefined
      const pk = i < prev.length ? this.derived.get(prev[i])!.key : undefined
      if (j >= next.length) {
        removedKeys.push(pk!)
        i++
        continue
      }
      const nk = keyOf(next[j])
      // An edited position must sit in strict key order between its neighbours.
      const before = j > 0 ? keyOf(next[j - 1]) : undefined
      const after = keyOf(next[j + 1])
      if (nk === undefined || (before !== undefined && compareText(before, nk) >= 0) || (j + 1 < next.length && (after === undefined || compareText(nk, after) >= 0))) return undefined
      if (pk !== undefined && pk === nk) {
        removedKeys.push(pk)
        i++
      } else if (pk !== undefined && compareText(pk, nk) < 0) {
        removedKeys.push(pk)
        i++
        continue
      }
      added.push(next[j])
      j++
    }
    return { added, removedKeys }
  }

  private remove(last: Last, p: PodInfo): void {
    const { cluster } = last
    const key = keyOfInfo(p)
    cluster.byKey.delete(key)
    cluster.pods.splice(lowerBound(cluster.pods, key), 1)
    const left = last.podsPerNamespace.get(p.namespace)! - 1
    if (left > 0) last.podsPerNamespace.set(p.namespace, left)
    else {
      last.podsPerNamespace.delete(p.namespace)
      cluster.nsLabels.delete(p.namespace)
      this.nsLabels.delete(p.namespace)
    }
    if (!p.peerEligible) return
    cluster.eligible.splice(lowerBound(cluster.eligible, key), 1)
    removeFrom(cluster.eligibleByNamespace, p.namespace, p)
    for (const [k, v] of p.labels) {
      const byValue = cluster.eligibleByLabel.get(k)!
      removeFrom(byValue, v, p)
      if (byValue.size === 0) cluster.eligibleByLabel.delete(k)
    }
  }

  private insert(last: Last, p: PodInfo): void {
    const { cluster } = last
    const key = keyOfInfo(p)
    cluster.byKey.set(key, [p])
    cluster.pods.splice(lowerBound(cluster.pods, key), 0, p)
    last.podsPerNamespace.set(p.namespace, (last.podsPerNamespace.get(p.namespace) ?? 0) + 1)
    if (!cluster.nsLabels.has(p.namespace)) cluster.nsLabels.set(p.namespace, p.nsLabels)
    if (!p.peerEligible) return
    cluster.eligible.splice(lowerBound(cluster.eligible, key), 0, p)
    insertInto(cluster.eligibleByNamespace, p.namespace, p)
    for (const [k, v] of p.labels) {
      let byValue = cluster.eligibleByLabel.get(k)
      if (!byValue) cluster.eligibleByLabel.set(k, (byValue = new Map()))
      insertInto(byValue, v, p)
    }
  }
}
