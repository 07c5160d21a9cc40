/*
 * Store: everything the enforcer knows, as plain data.
 *
 * Model: per kind (Namespace, Pod, NetworkPolicy, Node) a map key → {object,
 * canonical JSON (computed when the key is first written again), origin},
 * where origin names the source that last wrote it ('kube', 'manifests', ...),
 * plus the list of local workloads read from the plugin's records.
 * Goals: sources push whatever they see; the store turns that into "did
 * anything that policy reads change", counted by `generation`, and a
 * `snapshot()` for the compiler.
 * Invariants: every stored object passed normalize() (bad objects are logged
 * and refused, never stored, never thrown); `generation` increments exactly
 * once per effective change (once per batch()); an upsert whose canonical JSON
 * equals the stored one is not a change. Stored objects and workloads are
 * deep-frozen. Snapshots are cached per generation, and their per-kind lists
 * until that kind (or, for pods, the workloads) changes, so unchanged lists
 * keep their identity from one snapshot to the next; so does every object
 * that did not change (a pod with IPs filled in from its workload record is
 * the same object while the pod and those IPs are), which is what the
 * compiler's per-object memory relies on. The key order of a kind is
 * re-sorted only when keys come or go.
 * Concurrency: synchronous, single-threaded; 'change' is emitted synchronously
 * after the change (or at the end of the outermost batch()).
 */
import { EventEmitter } from 'node:events'
import { nullLogger, type Logger } from '../shared/log.ts'
import type { LocalWorkload, Namespace, NetworkPolicy, Node, Pod, Snapshot } from './model.ts'
import { canonical, describe, KINDS, normalize, objectKey, type Kind, type KubeObject } from './sources/objects.ts'
import { stableJson } from '../shared/stable-json.ts'
import { deepFreeze } from '../shared/frozen.ts'

export type { Kind, KubeObject } from './sources/objects.ts'

interface Entry {
  obj: KubeObject
  /** canonical(obj), once something compared against it. */
  canon?: string
  origin: string
}

export interface StoreOptions {
  log?: Logger
  /** This node's name: its pods stay in the snapshot even before they have an IP. */
  nodeName?: string
}

export class Store extends EventEmitter {
  private readonly log: Logger
  private readonly nodeName?: string
  private readonly maps = new Map<Kind, Map<string, Entry>>(KINDS.map((k) => [k, new Map()]))
  /** Frozen: handed out as is. */
  private workloads: LocalWorkload[] = Object.freeze([]) as unknown as LocalWorkload[]
  private workloadsCanon = '[]'
  private gen = 0
  private batchDepth = 0
  private changedInBatch = false
  private cache?: { gen: number; snap: Snapshot }
  /** Keys per kind in order; dropped when a key comes or goes. */
  private order = new Map<Kind, string[]>()
  /**
   * Frozen, key-ordered objects per kind, with the keys whose object changed
   * since (patched in place of a copy while the key order stands), or 'all'.
   */
  private sorted = new Map<Kind, { list: readonly KubeObject[]; stale: Set<string> | 'all' }>()
  /** Position of each key in `order`, per kind; built when first needed. */
  private positions = new Map<Kind, Map<string, number>>()
  /** The pods list built from `from`: per position of `from`, the pod as the snapshot has it (null: left out). */
  private podsCache?: { from: readonly KubeObject[]; workloads: LocalWorkload[]; slots: (Pod | null)[]; pods: readonly Pod[] }
  /** Stored pod → that pod with its record IPs filled in, and those IPs. */
  private filled = new WeakMap<Pod, { ips: string; pod: Pod }>()

  constructor(opts: StoreOptions = {}) {
    super()
    this.log = opts.log ?? nullLogger
    this.nodeName = opts.nodeName
  }

  /** Increments on every effective change. */
  get generation(): number {
    return this.gen
  }

  /** Adds or replaces one object; false when refused or identical to what is stored. */
  upsert(kind: Kind, obj: unknown, origin = 'api'): boolean {
    return this.put(kind, obj, origin)?.changed ?? false
  }

  /** Removes one object (with `origin`: only if that origin wrote it); false when it was not there. */
  remove(kind: Kind, namespace: string | undefined, name: string, origin?: string): boolean {
    if (!this.maps.has(kind)) {
      this.log.error(`refusing to remove ${kind} ${namespace ?? ''}/${name}: unknown kind`)
      return false
    }
    const map = this.map(kind)
    const key = objectKey(kind, namespace, name)
    if (origin !== undefined && map.get(key)?.origin !== origin) return false
    if (!map.delete(key)) return false
    this.changed(kind, true)
    return true
  }

  /**
   * A full list of `kind` from one origin: upserts every object and removes that
   * origin's objects missing from `objs`. Emits at most one change.
   */
  replaceAll(kind: Kind, objs: readonly unknown[], origin: string): boolean {
    return this.batch(() => {
      const before = this.gen
      const seen = new Set<string>()
      for (const o of objs) {
        const r = this.put(kind, o, origin)
        if (r) seen.add(r.key)
      }
      for (const [key, e] of this.map(kind)) {
        if (e.origin === origin && !seen.has(key)) {
          this.map(kind).delete(key)
          this.changed(kind, true)
        }
      }
      return this.gen !== before
    })
  }

  /** Replaces the local workloads; malformed entries are logged and skipped. */
  setWorkloads(ws: readonly LocalWorkload[]): boolean {
    const good = ws.filter((w) => {
      const ok = typeof w?.hostIface === 'string' && w.hostIface !== '' && Array.isArray(w.ips) && w.ips.every((ip) => typeof ip === 'string')
      if (!ok) this.log.error('refusing malformed local workload', { workload: w })
      return ok
    })
    const list = good
      .map((w) => {
        const copy: LocalWorkload = { hostIface: w.hostIface, ips: [...w.ips] }
        if (w.namespace) copy.namespace = w.namespace
        if (w.pod) copy.pod = w.pod
        return deepFreeze(copy)
      })
      .sort((a, b) => (a.hostIface < b.hostIface ? -1 : a.hostIface > b.hostIface ? 1 : 0))
    const canon = stableJson(list)
    if (canon === this.workloadsCanon) return false
    this.workloads = Object.freeze(list) as LocalWorkload[]
    this.workloadsCanon = canon
    this.changed()
    return true
  }

  /** Runs `fn`, emitting a single 'change' at the end if anything changed. */
  batch<T>(fn: () => T): T {
    this.batchDepth++
    try {
      return fn()
    } finally {
      if (--this.batchDepth === 0 && this.changedInBatch) {
        this.changedInBatch = false
        this.emit('change', this.gen)
      }
    }
  }

  get(kind: 'Pod', namespace: string, name: string): Pod | undefined
  get(kind: 'NetworkPolicy', namespace: string, name: string): NetworkPolicy | undefined
  get(kind: 'Namespace', namespace: undefined, name: string): Namespace | undefined
  get(kind: Kind, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.map(kind).get(objectKey(kind, namespace, name))?.obj
  }

  /** Every stored object of `kind`, in key order. */
  list(kind: Kind): KubeObject[] {
    const map = this.map(kind)
    let keys = this.order.get(kind)
    if (!keys) this.order.set(kind, (keys = [...map.keys()].sort()))
    return keys.map((k) => map.get(k)!.obj)
  }

  /** Object counts by kind and by origin, for status output. */
  counts(): Record<string, number> {
    const out: Record<string, number> = { workloads: this.workloads.length }
    for (const [kind, map] of this.maps) {
      out[kind] = map.size
      for (const e of map.values()) out[`${kind}/${e.origin}`] = (out[`${kind}/${e.origin}`] ?? 0) + 1
    }
    return out
  }

  /**
   * What the compiler needs. Pods without IPs take those of their workload
   * record (same namespace/name); pods that still have no IP are kept only when
   * scheduled on this node. Pods in phase Succeeded or Failed are left out:
   * their IPs may already belong to another pod. Shared and frozen: do not mutate.
   */
  snapshot(): Snapshot {
    if (this.cache?.gen === this.gen) return this.cache.snap
    const snap: Snapshot = Object.freeze({
      namespaces: this.sortedList('Namespace') as Namespace[],
      pods: this.snapshotPods() as Pod[],
      policies: this.sortedList('NetworkPolicy') as NetworkPolicy[],
      workloads: this.workloads,
      nodes: this.sortedList('Node') as Node[],
    })
    this.cache = { gen: this.gen, snap }
    return snap
  }

  private snapshotPods(): readonly Pod[] {
    const from = this.sortedList('Pod') as readonly Pod[]
    const last = this.podsCache
    if (last?.from === from && last.workloads === this.workloads) return last.pods
    // same workloads and same keys in the same order: only positions holding another object need work
    const patch = last?.workloads === this.workloads && last.from.length === from.length && this.samePodOrder(last.from as readonly Pod[], from)
    let ipsByPod: Map<string, string[]> | undefined
    const slots: (Pod | null)[] = new Array(from.length)
    for (let i = 0; i < from.length; i++) {
      const p = from[i]
      if (patch && last!.from[i] === p) {
        slots[i] = last!.slots[i]
        continue
      }
      if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') {
        slots[i] = null
        continue
      }
      const filled = this.withRecordIPs(p, (ipsByPod ??= this.recordIPs()).get(`${p.metadata.namespace}/${p.metadata.name}`))
      slots[i] = hasIPs(filled) || (this.nodeName !== undefined && p.spec?.nodeName === this.nodeName) ? filled : null
    }
    const pods = slots.filter((p): p is Pod => p !== null)
    this.podsCache = { from, workloads: this.workloads, slots, pods: Object.freeze(pods) }
    return this.podsCache.pods
  }

  /** Whether two pod lists of equal length hold the same keys in order (the key order has not been rebuilt in between). */
  private samePodOrder(a: readonly Pod[], b: readonly Pod[]): boolean {
    for (let i = 0; i < a.length; i++) {
      if (a[i] === b[i]) continue
      if (a[i].metadata.name !== b[i].metadata.name || a[i].metadata.namespace !== b[i].metadata.namespace) return false
    }
    return true
  }

  private recordIPs(): Map<string, string[]> {
    const ipsByPod = new Map<string, string[]>()
    for (const w of this.workloads) {
      if (!w.namespace || !w.pod) continue
      const k = `${w.namespace}/${w.pod}`
      ipsByPod.set(k, [...new Set([...(ipsByPod.get(k) ?? []), ...w.ips])])
    }
    return ipsByPod
  }

  /** `p` with the IPs of its workload record when it has none of its own; the same object while `p` and those IPs are. */
  private withRecordIPs(p: Pod, ips: string[] | undefined): Pod {
    if (hasIPs(p) || !ips?.length) return p
    const text = JSON.stringify(ips)
    const cached = this.filled.get(p)
    if (cached?.ips === text) return cached.pod
    const pod = deepFreeze({ ...p, status: { ...p.status, podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } })
    this.filled.set(p, { ips: text, pod })
    return pod
  }

  private sortedList(kind: Kind): readonly KubeObject[] {
    const s = this.sorted.get(kind)
    if (s && s.stale !== 'all' && s.stale.size === 0) return s.list
    let list: readonly KubeObject[]
    if (s && s.stale !== 'all' && this.order.has(kind)) {
      // same keys in the same order: the last list, with the changed objects swapped in
      const map = this.map(kind)
      const at = this.positionsOf(kind)
      const copy = s.list.slice()
      for (const key of s.stale) copy[at.get(key)!] = map.get(key)!.obj
      list = Object.freeze(copy)
    } else {
      list = Object.freeze(this.list(kind))
    }
    this.sorted.set(kind, { list, stale: new Set() })
    return list
  }

  private positionsOf(kind: Kind): Map<string, number> {
    let at = this.positions.get(kind)
    if (!at) this.positions.set(kind, (at = new Map(this.order.get(kind)!.map((k, i) => [k, i]))))
    return at
  }

  private map(kind: Kind): Map<string, Entry> {
    const m = this.maps.get(kind)
    if (!m) throw new Error(`unknown kind ${kind}`)
    return m
  }

  /** Normalises and stores one object; undefined (and a logged error) when refused. */
  private put(kind: Kind, obj: unknown, origin: string): { key: string; changed: boolean } | undefined {
    const r = normalize(kind, obj)
    if (!r.ok) {
      this.log.error(`refusing ${describe(kind, obj)}`, { kind, origin, errors: r.errors })
      return undefined
    }
    const map = this.map(kind)
    const key = objectKey(kind, r.obj.metadata.namespace, r.obj.metadata.name)
    const old = map.get(key)
    // computed only once the key is written again: a cold load of 5,000 pods skips it
    const canon = old ? canonical(r.obj) : undefined
    if (old && (old.canon ??= canonical(old.obj)) === canon) {
      // same content for policy: the stored object stays, so snapshots (and what
      // the compiler memoised by identity) keep it; only the writer is recorded
      old.origin = origin
      return { key, changed: false }
    }
    map.set(key, { obj: deepFreeze(r.obj), canon, origin })
    this.changed(kind, !old, key)
    return { key, changed: true }
  }

  /** One effective change; `membership` when a key of `kind` came or went, else `key` whose object changed. */
  private changed(kind?: Kind, membership = false, key?: string): void {
    const s = kind && this.sorted.get(kind)
    if (s) {
      if (membership || key === undefined) s.stale = 'all'
      else if (s.stale !== 'all') s.stale.add(key)
    }
    if (kind && membership) {
      this.order.delete(kind)
      this.positions.delete(kind)
    }
    this.gen++
    if (this.batchDepth > 0) this.changedInBatch = true
    else this.emit('change', this.gen)
  }
}

function hasIPs(p: Pod): boolean {
  return !!p.status?.podIP || !!p.status?.podIPs?.length
}

