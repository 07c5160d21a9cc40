/*
 * SupervisedInformer: one @kubernetes/client-node list+watch informer for one
 * kind, kept alive and mirrored into the Store under origin 'kube'.
 *
 * Model: the client's ListWatch lists, then watches from the list's
 * resourceVersion; on a clean end of the stream it re-watches from the last
 * rv it saw; on 410 Gone (an ERROR event in the stream, or HTTP 410) it
 * relists. On any other error it calls its error callbacks and stops for
 * good: this wrapper restarts it after a backoff (doubling, capped, jittered),
 * reusing the same ListWatch so it resumes from its last rv and, when that is
 * too old, relists.
 * Index: every successful list is handed to store.replaceAll(kind, items,
 * 'kube') before the client reports it, so objects deleted while we were
 * disconnected disappear on the relist; watch events are store upserts and
 * removes. The store compares content, so the client's re-delivery of
 * unchanged objects (and its update events without the old object) cost
 * nothing.
 * Disconnection: `stats.disconnectedSince` is when the first error of a run
 * of errors happened (list or watch failed, or the stream broke); it is
 * cleared when the API answers again: a list succeeds, a watch is accepted
 * (HTTP 200: a quiet cluster sends no event for a long time, and this client
 * asks for no bookmarks), or a watch event arrives. Readiness reads it.
 * Invariants: `synced` is true once a list succeeded and stays true; nothing
 * is listed, watched or restarted after stop().
 * Shapes: watch events carry the API's JSON, but the generated list calls
 * return model classes whose property names may differ from the JSON ones
 * (an ingress rule's `from` is `_from`); list items are turned back into API
 * JSON (toApiJson) before anyone sees them.
 * Concurrency: single event loop. The client's Watch returns its abort handle
 * only once the response headers arrived, so a stop() during that window is
 * honoured by StoppableWatch aborting the late handle.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node'
import type { Logger } from '../../shared/log.ts'
import type { Store } from '../store.ts'
import type { Kind } from './objects.ts'

export const KUBE_ORIGIN = 'kube'

export interface InformerStats {
  lists: number
  events: number
  errors: number
  restarts: number
  lastError?: string
  /** Epoch ms of the first error since the API last answered; absent while connected. */
  disconnectedSince?: number
}

export interface SupervisedInformerOptions {
  kind: Kind
  path: string
  list: () => Promise<KubernetesListObject<KubernetesObject>>
  kubeConfig: KubeConfig
  store: Store
  log: Logger
  /** Drops (removes) objects the store need not hold, e.g. IP-less pods of other nodes. */
  relevant?: (obj: any) => boolean
  backoff?: { initialMs?: number; maxMs?: number }
  onSynced?: () => void
}

/**
 * The client's Watch, plus: a handle that arrives after stop() is aborted at
 * once, and `onAccepted` when the server took the watch. The client calls
 * `done` before returning only when the request failed (no 200); on a 200 it
 * returns first and calls `done` when the stream ends.
 */
class StoppableWatch extends Watch {
  stopped = false
  constructor(
    kc: KubeConfig,
    private readonly onEvent: () => void,
    private readonly onAccepted: () => void,
  ) {
    super(kc)
  }
  override async watch(path: string, query: any, cb: (phase: string, obj: any, watchObj?: any) => void, done: (err: any) => void): Promise<AbortController> {
    const counted = (phase: string, obj: any, watchObj?: any) => {
      this.onEvent()
      cb(phase, obj, watchObj)
    }
    let ended = false
    const controller = await super.watch(path, query, counted, (err) => {
      ended = true
      done(err)
    })
    if (this.stopped) controller.abort()
    else if (!ended) this.onAccepted()
    return controller
  }
}

export class SupervisedInformer {
  readonly stats: InformerStats = { lists: 0, events: 0, errors: 0, restarts: 0 }
  synced = false
  private readonly o: SupervisedInformerOptions
  private readonly watch: StoppableWatch
  private readonly informer: ListWatch<KubernetesObject>
  private readonly initialMs: number
  private readonly maxMs: number
  private backoffMs: number
  private restartTimer?: NodeJS.Timeout
  private stopped = false

  constructor(o: SupervisedInformerOptions) {
    this.o = o
    this.initialMs = o.backoff?.initialMs ?? 500
    this.maxMs = o.backoff?.maxMs ?? 30_000
    this.backoffMs = this.initialMs
    this.watch = new StoppableWatch(o.kubeConfig, () => this.onEvent(), () => this.connected())
    this.informer = new ListWatch(o.path, this.watch, () => this.list(), false)
    this.informer.on('add', (obj) => this.upsert(obj))
    this.informer.on('update', (obj) => this.upsert(obj))
    this.informer.on('delete', (obj) => this.remove(obj))
    this.informer.on('error', (err) => this.onError(err))
  }

  get kind(): Kind {
    return this.o.kind
  }

  start(): void {
    this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.watch.stopped = true
    clearTimeout(this.restartTimer)
    await this.informer.stop()
  }

  private run(): void {
    if (this.stopped) return
    this.informer.start().catch((e) => this.onError(e))
  }

  /**
   * A barrier: lists now and applies the list as a relist does, so the store
   * holds at least what the API server holds at this moment, even while watch
   * events are still on their way. An event older than the list that arrives
   * afterwards shows an older version again for as long as the ordered stream
   * takes to reach the newest, a state the store had passed through anyway.
   */
  async catchUp(): Promise<void> {
    if (this.stopped) return
    const res = await this.o.list()
    if (!this.stopped) this.apply(res)
  }

  private async list(): Promise<KubernetesListObject<KubernetesObject>> {
    if (this.stopped) throw new Error('informer stopped')
    const res = await this.o.list()
    if (this.stopped) throw new Error('informer stopped')
    const items = this.apply(res)
    this.backoffMs = this.initialMs
    this.connected()
    if (!this.synced) {
      this.synced = true
      this.o.log.info('initial list done', { kind: this.o.kind, count: items.length })
      this.o.onSynced?.()
    }
    return { ...res, items }
  }

  /** A list's items, as API JSON and relevant, replace the kind's objects in the store. */
  private apply(res: KubernetesListObject<KubernetesObject>): KubernetesObject[] {
    this.stats.lists++
    const items = (res.items ?? []).map((o) => toApiJson(o)).filter((o) => this.relevant(o))
    this.o.store.replaceAll(this.o.kind, items, KUBE_ORIGIN)
    return items
  }

  private relevant(obj: any): boolean {
    return this.o.relevant ? this.o.relevant(obj) : true
  }

  private upsert(obj: any): void {
    if (this.stopped) return
    if (this.relevant(obj)) this.o.store.upsert(this.o.kind, obj, KUBE_ORIGIN)
    else this.remove(obj)
  }

  private remove(obj: any): void {
    if (this.stopped) return
    const name = obj?.metadata?.name
    if (typeof name === 'string') this.o.store.remove(this.o.kind, obj.metadata.namespace ?? undefined, name)
  }

  private onEvent(): void {
    this.stats.events++
    this.backoffMs = this.initialMs
    this.connected()
  }

  /** The API answered: a list, an accepted watch or an event. */
  private connected(): void {
    if (this.stats.disconnectedSince === undefined) return
    this.o.log.info('informer reached the API again', { kind: this.o.kind, afterMs: Date.now() - this.stats.disconnectedSince })
    delete this.stats.disconnectedSince
  }

  private onError(err: unknown): void {
    if (this.stopped) return
    this.stats.errors++
    this.stats.lastError = describeError(err)
    this.stats.disconnectedSince ??= Date.now()
    if (this.restartTimer) return
    const delay = Math.round(this.backoffMs * (0.8 + Math.random() * 0.4))
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxMs)
    this.o.log.warn('informer failed, restarting', { kind: this.o.kind, error: this.stats.lastError, inMs: delay })
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined
      if (this.stopped) return
      this.stats.restarts++
      this.run()
    }, delay)
  }
}

function describeError(err: unknown): string {
  const e = err as any
  const code = e?.statusCode ?? e?.code
  return `${e?.message ?? String(e)}${code !== undefined ? ` (${code})` : ''}`
}

/**
 * A generated model instance back to the API's JSON: each class lists its
 * attributes with their JSON names (getAttributeTypeMap), Dates become
 * RFC 3339 strings, plain values are copied as they are.
 */
export function toApiJson(v: unknown): any {
  if (Array.isArray(v)) return v.map(toApiJson)
  if (v instanceof Date) return v.toISOString()
  if (typeof v !== 'object' || v === null) return v
  const map = (v.constructor as any)?.getAttributeTypeMap?.() as { name: string; baseName: string }[] | undefined
  const out: Record<string, unknown> = {}
  if (map) {
    for (const a of map) if ((v as any)[a.name] !== undefined) out[a.baseName] = toApiJson((v as any)[a.name])
  } else {
    for (const [k, x] of Object.entries(v)) out[k] = toApiJson(x)
  }
  return out
}
