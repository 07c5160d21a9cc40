/*
 * A Kubernetes API server for tests, over plain HTTP, speaking the real
 * list/watch protocol to the real @kubernetes/client-node client.
 *
 * Model: one resourceVersion counter for everything (like etcd's revision);
 * per kind a map of current objects; a history of events (rv, kind, type,
 * object) since `compactedRv`. A list returns the current objects and the
 * current rv. A watch from rv N replays history after N, then streams new
 * events as newline-delimited JSON; N older than `compactedRv` gets the real
 * server's answer: HTTP 200, one ERROR event carrying a Status with code 410,
 * then the stream ends. No resourceVersion (or "0") means "from now",
 * preceded by a synthetic ADDED per current object.
 * Goals: let tests drive create/update/delete, expire history and cut watch
 * connections, and observe which requests the client made.
 * Invariants: resourceVersions strictly increase; every change bumps the rv
 * and stamps it on the object; a watcher sees events in rv order, once.
 * Concurrency: single event loop; constructor does no I/O, start() listens.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { KubeConfig } from '@kubernetes/client-node'

export type ApiKind = 'Namespace' | 'Pod' | 'NetworkPolicy' | 'Node'
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface Resource {
  prefix: string
  plural: string
  apiVersion: string
  namespaced: boolean
}

const RESOURCES: Record<ApiKind, Resource> = {
  Namespace: { prefix: '/api/v1', plural: 'namespaces', apiVersion: 'v1', namespaced: false },
  Pod: { prefix: '/api/v1', plural: 'pods', apiVersion: 'v1', namespaced: true },
  NetworkPolicy: { prefix: '/apis/networking.k8s.io/v1', plural: 'networkpolicies', apiVersion: 'networking.k8s.io/v1', namespaced: true },
  Node: { prefix: '/api/v1', plural: 'nodes', apiVersion: 'v1', namespaced: false },
}

interface HistoryEvent {
  rv: number
  kind: ApiKind
  type: EventType
  object: any
}

interface Watcher {
  kind: ApiKind
  namespace?: string
  res: ServerResponse
  timers: NodeJS.Timeout[]
}

export interface RequestLog {
  kind: ApiKind
  verb: 'list' | 'watch' | 'get'
  query: Record<string, string>
}

export interface TestApiServerOptions {
  /** How often a watch that allowed bookmarks gets one. */
  bookmarkIntervalMs?: number
  /** Address to listen on (default 127.0.0.1); multi-node tests use the host's underlay address. */
  host?: string
}

export class TestApiServer {
  readonly requests: RequestLog[] = []
  private server?: Server
  private rv = 100
  private compactedRv = 0
  private history: HistoryEvent[] = []
  private readonly objects = new Map<ApiKind, Map<string, any>>()
  private readonly watchers = new Set<Watcher>()
  private failures: { count: number; code: number } = { count: 0, code: 500 }
  private held?: (() => void)[]
  private readonly bookmarkIntervalMs: number
  private readonly host: string

  constructor(opts: TestApiServerOptions = {}) {
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000
    this.host = opts.host ?? '127.0.0.1'
    for (const k of Object.keys(RESOURCES) as ApiKind[]) this.objects.set(k, new Map())
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, this.host, resolve))
  }

  get url(): string {
    const a = this.server?.address() as AddressInfo | null
    if (!a) throw new Error('api server not started')
    return `http://${this.host}:${a.port}`
  }

  /** A KubeConfig for the real client, pointing here. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig()
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
      currentContext: 'test',
    })
    return kc
  }

  get resourceVersion(): string {
    return String(this.rv)
  }

  create(kind: ApiKind, obj: any): any {
    const key = this.key(kind, obj)
    if (this.bucket(kind).has(key)) throw new Error(`${kind} ${key} already exists`)
    const stored = structuredClone(obj)
    stored.metadata = { uid: randomUUID(), creationTimestamp: new Date().toISOString(), ...stored.metadata }
    if (RESOURCES[kind].namespaced) stored.metadata.namespace ??= 'default'
    return this.commit(kind, key, stored, 'ADDED')
  }

  update(kind: ApiKind, obj: any): any {
    const key = this.key(kind, obj)
    const old = this.bucket(kind).get(key)
    if (!old) throw new Error(`${kind} ${key} not found`)
    const stored = structuredClone(obj)
    stored.metadata = { ...stored.metadata, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp, namespace: old.metadata.namespace }
    return this.commit(kind, key, stored, 'MODIFIED')
  }

  delete(kind: ApiKind, obj: { metadata: { name: string; namespace?: string } }): any {
    const key = this.key(kind, obj)
    const old = this.bucket(kind).get(key)
    if (!old) throw new Error(`${kind} ${key} not found`)
    return this.commit(kind, key, structuredClone(old), 'DELETED')
  }

  /** The stored object (a copy), or undefined. */
  read(kind: ApiKind, name: string, namespace?: string): any {
    const obj = this.bucket(kind).get(this.key(kind, { metadata: { name, namespace } }))
    return obj && structuredClone(obj)
  }

  /** Forgets all history: a watch from any rv before now gets 410 Gone. */
  expireHistory(): void {
    this.history = []
    this.compactedRv = this.rv
  }

  /** Ends every watch stream (cleanly, or by destroying the socket when `abrupt`). */
  dropWatches(opts: { abrupt?: boolean } = {}): number {
    const n = this.watchers.size
    for (const w of [...this.watchers]) (opts.abrupt ? w.res.destroy() : w.res.end())
    return n
  }

  /** Watch events of changes from now on wait (in order) until releaseWatches(): a slow watch stream. */
  holdWatches(): void {
    this.held ??= []
  }

  releaseWatches(): void {
    const held = this.held ?? []
    this.held = undefined
    for (const deliver of held) deliver()
  }

  /** The next `count` requests are answered with a Status of `code`. */
  failNext(count: number, code = 500): void {
    this.failures = { count, code }
  }

  watchCount(): number {
    return this.watchers.size
  }

  async close(): Promise<void> {
    this.dropWatches({ abrupt: true })
    const s = this.server
    if (!s) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => resolve()))
    this.server = undefined
  }

  private bucket(kind: ApiKind): Map<string, any> {
    return this.objects.get(kind)!
  }

  private key(kind: ApiKind, obj: any): string {
    const name = obj?.metadata?.name
    if (!name) throw new Error(`${kind} without metadata.name`)
    return RESOURCES[kind].namespaced ? `${obj.metadata.namespace ?? 'default'}/${name}` : name
  }

  private commit(kind: ApiKind, key: string, obj: any, type: EventType): any {
    obj.kind = kind
    obj.apiVersion = RESOURCES[kind].apiVersion
    obj.metadata.resourceVersion = String(++this.rv)
    if (type === 'DELETED') this.bucket(kind).delete(key)
    else this.bucket(kind).set(key, obj)
    const ev: HistoryEvent = { rv: this.rv, kind, type, object: obj }
    this.history.push(ev)
    const deliver = () => {
      for (const w of this.watchers) if (matches(w, ev)) send(w.res, ev.type, ev.object)
    }
    if (this.held) this.held.push(deliver)
    else deliver()
    return structuredClone(obj)
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x')
    const route = this.route(url.pathname)
    if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', `${req.method} is not supported here`)
    if (!route) return status(res, 404, 'NotFound', `no resource at ${url.pathname}`)
    const query = Object.fromEntries(url.searchParams)
    const verb = route.name !== undefined ? 'get' : query.watch === 'true' || query.watch === '1' ? 'watch' : 'list'
    this.requests.push({ kind: route.kind, verb, query })
    if (this.failures.count > 0) {
      this.failures.count--
      return status(res, this.failures.code, 'InternalError', 'injected failure')
    }
    if (verb === 'get') return this.get(res, route.kind, route.name!, route.namespace)
    if (verb === 'list') return this.list(res, route.kind, route.namespace)
    this.watch(res, route.kind, route.namespace, query)
  }

  private route(path: string): { kind: ApiKind; namespace?: string; name?: string } | undefined {
    for (const [kind, r] of Object.entries(RESOURCES) as [ApiKind, Resource][]) {
      if (path === `${r.prefix}/${r.plural}`) return { kind }
      // one object: /api/v1/nodes/NAME, /api/v1/namespaces/NS/pods/NAME
      const one = path.slice(r.prefix.length).match(r.namespaced ? /^\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)$/ : /^()\/([^/]+)\/([^/]+)$/)
      if (path.startsWith(r.prefix) && one && one[2] === r.plural) return { kind, namespace: r.namespaced ? decodeURIComponent(one[1]) : undefined, name: decodeURIComponent(one[3]) }
      const m = r.namespaced && path.startsWith(`${r.prefix}/namespaces/`) && path.slice(r.prefix.length).match(/^\/namespaces\/([^/]+)\/([^/]+)$/)
      if (m && m[2] === r.plural) return { kind, namespace: decodeURIComponent(m[1]) }
    }
    return undefined
  }

  private current(kind: ApiKind, namespace?: string): any[] {
    return [...this.bucket(kind).values()].filter((o) => !namespace || o.metadata.namespace === namespace)
  }

  private get(res: ServerResponse, kind: ApiKind, name: string, namespace?: string): void {
    const obj = this.bucket(kind).get(RESOURCES[kind].namespaced ? `${namespace}/${name}` : name)
    if (!obj) return status(res, 404, 'NotFound', `${RESOURCES[kind].plural} "${name}" not found`)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(obj))
  }

  private list(res: ServerResponse, kind: ApiKind, namespace?: string): void {
    // As the real server does, list items carry no kind/apiVersion of their own.
    const items = this.current(kind, namespace).map(({ kind: _k, apiVersion: _a, ...rest }) => rest)
    const body = { kind: `${kind}List`, apiVersion: RESOURCES[kind].apiVersion, metadata: { resourceVersion: String(this.rv) }, items }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  private watch(res: ServerResponse, kind: ApiKind, namespace: string | undefined, query: Record<string, string>): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    res.flushHeaders()
    const from = query.resourceVersion
    if (from !== undefined && from !== '' && from !== '0') {
      const n = Number(from)
      if (!Number.isInteger(n) || n < this.compactedRv) {
        const s = statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`)
        send(res, 'ERROR', s)
        res.end()
        return
      }
      const w: Watcher = { kind, namespace, res, timers: [] }
      for (const ev of this.history) if (ev.rv > n && matches(w, ev)) send(res, ev.type, ev.object)
    } else {
      for (const o of this.current(kind, namespace)) send(res, 'ADDED', o)
    }
    this.addWatcher(res, kind, namespace, query)
  }

  private addWatcher(res: ServerResponse, kind: ApiKind, namespace: string | undefined, query: Record<string, string>): void {
    const w: Watcher = { kind, namespace, res, timers: [] }
    const timeout = Number(query.timeoutSeconds)
    if (timeout > 0) w.timers.push(setTimeout(() => res.end(), timeout * 1000))
    if (query.allowWatchBookmarks === 'true') {
      const bookmark = () => send(res, 'BOOKMARK', { kind, apiVersion: RESOURCES[kind].apiVersion, metadata: { resourceVersion: String(this.rv) } })
      w.timers.push(setInterval(bookmark, this.bookmarkIntervalMs))
    }
    this.watchers.add(w)
    res.on('close', () => {
      this.watchers.delete(w)
      for (const t of w.timers) clearTimeout(t)
    })
  }
}

function matches(w: { kind: ApiKind; namespace?: string }, ev: HistoryEvent): boolean {
  return ev.kind === w.kind && (!w.namespace || ev.object.metadata.namespace === w.namespace)
}

function send(res: ServerResponse, type: string, object: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type, object }) + '\n')
}

function statusBody(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' })
  res.end(JSON.stringify(statusBody(code, reason, message)))
}
