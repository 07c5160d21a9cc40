/*
 * ManifestSource: Namespaces, Pods and NetworkPolicies from a folder of YAML
 * or JSON files, for nodes without a cluster. Written to the Store under
 * origin 'manifests'; each scan replaces that origin's content.
 *
 * Model: per file, the objects of its last good load. A scan re-reads every
 * `*.yaml|*.yml|*.json` (dotfiles skipped, so a ConfigMap mount's `..data`
 * machinery is invisible), several documents per file (`---`), `kind: List`
 * items expanded; other kinds are ignored (debug log).
 * Fail safe, by decision: a file that does not parse (in any of its
 * documents) keeps the objects it had at its last good load, and the error
 * (file, YAML message with line) is logged and listed in problems(). Dropping
 * them would silently lift a namespace's isolation because someone saved a
 * half-written file. An object with a bad shape is refused with an error
 * naming file and object; if that file loaded the same object before, the
 * previous version is kept, for the same reason. A deleted file's objects go.
 * The same object in two files: the later file (by name) wins, with a warning.
 * Concurrency: scans are synchronous (DirWatcher), so they never overlap.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import type { Logger } from '../../shared/log.ts'
import type { Store } from '../store.ts'
import { DirWatcher } from './dirwatch.ts'
import { describe, isNamespaced, KINDS, normalize, objectKey, type Kind, type KubeObject } from './objects.ts'

export const MANIFEST_ORIGIN = 'manifests'

const API_VERSIONS: Record<Kind, string> = { Namespace: 'v1', Pod: 'v1', NetworkPolicy: 'networking.k8s.io/v1' }
const EXTENSIONS = /\.(ya?ml|json)$/

interface Loaded {
  kind: Kind
  key: string
  obj: KubeObject
}

export interface ManifestProblem {
  file: string
  message: string
}

export interface ManifestSourceOptions {
  debounceMs?: number
  pollMs?: number
}

export class ManifestSource {
  synced = false
  private files = new Map<string, Loaded[]>()
  private problemList: ManifestProblem[] = []
  private readonly watcher: DirWatcher
  private readonly log: Logger

  constructor(
    private readonly dir: string,
    private readonly store: Store,
    log: Logger,
    opts: ManifestSourceOptions = {},
  ) {
    this.log = log.child({ source: 'manifests' })
    this.watcher = new DirWatcher({ dir, scan: () => this.scan(), log: this.log, ...opts })
  }

  /** Loads the folder and starts watching it. */
  async start(): Promise<void> {
    this.watcher.start()
    this.synced = true
  }

  async rescan(): Promise<void> {
    this.watcher.rescan()
  }

  async stop(): Promise<void> {
    this.watcher.stop()
  }

  /** What the last scan could not load, for status output. */
  problems(): ManifestProblem[] {
    return [...this.problemList]
  }

  private scan(): void {
    let names: string[]
    try {
      names = readdirSync(this.dir)
    } catch (e: any) {
      if (e?.code !== 'ENOENT') {
        this.log.error('cannot read manifest folder; keeping what was loaded', { dir: this.dir, error: e?.message })
        return
      }
      this.log.warn('manifest folder does not exist', { dir: this.dir })
      names = []
    }
    const problems: ManifestProblem[] = []
    const next = new Map<string, Loaded[]>()
    for (const name of names.filter((n) => !n.startsWith('.') && EXTENSIONS.test(n)).sort()) {
      next.set(name, this.loadFile(name, (message) => void problems.push({ file: name, message })))
    }
    this.files = next
    this.problemList = problems
    this.publish()
  }

  /** A file's objects, or (fail safe) those of its last good load. */
  private loadFile(name: string, problem: (msg: string) => undefined): Loaded[] {
    const previous = this.files.get(name) ?? []
    let text: string
    try {
      text = readFileSync(join(this.dir, name), 'utf8')
    } catch (e: any) {
      if (e?.code === 'ENOENT' || e?.code === 'EISDIR') return []
      return this.keep(name, previous, `cannot read: ${e?.message}`, problem)
    }
    const docs = parseAllDocuments(text)
    const broken = docs.flatMap((d) => d.errors)
    if (broken.length) return this.keep(name, previous, broken[0].message.trim(), problem)
    const out: Loaded[] = []
    docs.forEach((doc, i) => {
      for (const item of expandLists(doc.toJS())) {
        const r = this.loadObject(name, i, item, previous, problem)
        if (r) out.push(r)
      }
    })
    return out
  }

  private keep(name: string, previous: Loaded[], message: string, problem: (msg: string) => undefined): Loaded[] {
    this.log.error('manifest file not loaded; keeping its previously loaded objects', { file: name, error: message, kept: previous.length })
    problem(message)
    return previous
  }

  /** One object; undefined when ignored or refused (refusals reported to `problem`). */
  private loadObject(file: string, doc: number, item: unknown, previous: Loaded[], problem: (msg: string) => undefined): Loaded | undefined {
    if (item === null || item === undefined) return undefined
    if (typeof item !== 'object' || Array.isArray(item)) return problem(this.refuse(file, `document ${doc + 1}`, 'not an object', undefined))
    const o = item as Record<string, any>
    const kind = o.kind as Kind
    if (!KINDS.includes(kind)) {
      this.log.debug('ignoring object of another kind', { file, kind: o.kind, apiVersion: o.apiVersion })
      return undefined
    }
    const what = describe(kind, o)
    if (o.apiVersion !== API_VERSIONS[kind]) {
      return problem(this.refuse(file, what, `apiVersion ${JSON.stringify(o.apiVersion)}, expected ${API_VERSIONS[kind]}`, undefined))
    }
    const withNs = isNamespaced(kind) && o.metadata && typeof o.metadata === 'object' && o.metadata.namespace == null ? { ...o, metadata: { ...o.metadata, namespace: 'default' } } : o
    const r = normalize(kind, withNs)
    if (r.ok) return { kind, key: objectKey(kind, r.obj.metadata.namespace, r.obj.metadata.name), obj: r.obj }
    const meta = withNs.metadata ?? {}
    const key = typeof meta.name === 'string' ? objectKey(kind, meta.namespace, meta.name) : undefined
    const before = previous.find((p) => p.kind === kind && p.key === key)
    problem(this.refuse(file, what, r.errors.join('; '), before))
    return before
  }

  private refuse(file: string, what: string, why: string, kept: Loaded | undefined): string {
    const message = `${what}: ${why}`
    this.log.error(`manifest object refused${kept ? '; keeping its previous version' : ''}`, { file, object: what, error: why })
    return message
  }

  private publish(): void {
    const byKind = new Map<Kind, Map<string, KubeObject>>(KINDS.map((k) => [k, new Map()]))
    for (const [file, loaded] of this.files) {
      for (const l of loaded) {
        const m = byKind.get(l.kind)!
        if (m.has(l.key)) this.log.warn('object defined in several files; the later file wins', { file, object: `${l.kind} ${l.key}` })
        m.set(l.key, l.obj)
      }
    }
    this.store.batch(() => {
      for (const [kind, m] of byKind) this.store.replaceAll(kind, [...m.values()], MANIFEST_ORIGIN)
    })
  }
}

/** A document's objects: itself, or the items of a `kind: List`. */
function expandLists(v: unknown): unknown[] {
  const o = v as any
  if (o && typeof o === 'object' && o.kind === 'List' && Array.isArray(o.items)) return o.items.flatMap(expandLists)
  return [v]
}
