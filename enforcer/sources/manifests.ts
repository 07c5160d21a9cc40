/*
 * ManifestSource: Namespaces, Pods and NetworkPolicies from a folder of YAML
 * or JSON files, for nodes without a cluster. Written to the Store under
 * origin 'manifests'.
 *
 * Model: per file, the objects of its last good load. A scan lists every
 * `*.yaml|*.yml|*.json` (dotfiles skipped, so a ConfigMap mount's `..data`
 * machinery is invisible), several documents per file (`---`), `kind: List`
 * items expanded; other kinds are ignored (debug log).
 * Cost: a scan re-parses only files that changed. A file whose stamp (device,
 * inode, size, mtime and ctime in ns) is the one of its last read is taken as
 * unchanged; a changed stamp means a re-read, and a re-parse only when the
 * bytes differ (sha1), and then only of its documents whose text is new. A
 * file changed (ctime) just before it was read may change again within the
 * same timestamp tick, so it is re-read (not re-parsed, if equal) on the next
 * scan whatever its stamp. Only objects of re-parsed documents and of deleted
 * ones are pushed into the store; a scan where nothing changed touches it not
 * at all.
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
import { createHash } from 'node:crypto'
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, statSync, type BigIntStats } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from '../../shared/log.ts'
import type { Store } from '../store.ts'
import { DirWatcher, FolderSource } from './dirwatch.ts'
import { describe, isNamespaced, KINDS, normalize, objectKey, type Kind, type KubeObject } from './objects.ts'
import { parseDocuments, parsePiece, splitDocuments } from './yamldocs.ts'

export const MANIFEST_ORIGIN = 'manifests'

const API_VERSIONS: Record<Kind, string> = { Namespace: 'v1', Pod: 'v1', NetworkPolicy: 'networking.k8s.io/v1', Node: 'v1' }
const EXTENSIONS = /\.(ya?ml|json)$/
/** A file changed this shortly before it was read is read again next scan (coarse or lagging timestamps). */
const RACY_NS = 2_000_000_000n
/** Past this many objects changed in one file, its definitions are recomputed from scratch. */
const PATCH_LIMIT = 16

interface Loaded {
  kind: Kind
  key: string
  obj: KubeObject
}

/** One file as last read, and what it yielded. */
interface FileState {
  /** Identity and timestamps on disk; undefined when unreadable (retried every scan). */
  stamp?: string
  /** Modified so shortly before the read that the stamp alone cannot vouch for it. */
  racy: boolean
  digest: string
  loaded: Loaded[]
  problems: string[]
  /** Per document text (see splitDocuments), what it yielded, when that was free of problems. */
  pieces?: Map<string, Piece>
}

interface Piece {
  docs: number
  loaded: Loaded[]
}

export interface ManifestProblem {
  file: string
  message: string
}

/** What scans cost so far, in files. */
export interface ManifestStats {
  scans: number
  /** Files whose text was parsed (their unchanged documents were not). */
  parsed: number
  /** Documents parsed. */
  documents: number
  /** Files read again whose bytes had not changed. */
  unchanged: number
  /** Files taken as they were from their stamp alone. */
  skipped: number
}

export interface ManifestSourceOptions {
  debounceMs?: number
  pollMs?: number
}

export class ManifestSource extends FolderSource {
  private files = new Map<string, FileState>()
  /** What each kind's keys were last pushed to the store as. */
  private published = new Map<Kind, Map<string, KubeObject>>(KINDS.map((k) => [k, new Map()]))
  /** Per kind, key → the files defining it, each with its (last) definition there and how many it has. */
  private definitions = new Map<Kind, Map<string, Definition[]>>(KINDS.map((k) => [k, new Map()]))
  private problemList: ManifestProblem[] = []
  private readonly counters: ManifestStats = { scans: 0, parsed: 0, documents: 0, unchanged: 0, skipped: 0 }
  protected readonly watcher: DirWatcher
  private readonly log: Logger

  constructor(
    private readonly dir: string,
    private readonly store: Store,
    log: Logger,
    opts: ManifestSourceOptions = {},
  ) {
    super()
    this.log = log.child({ source: 'manifests' })
    this.watcher = new DirWatcher({ dir, scan: () => this.scan(), log: this.log, ...opts })
  }

  /** What the last scan could not load, for status output. */
  problems(): ManifestProblem[] {
    return [...this.problemList]
  }

  stats(): ManifestStats {
    return { ...this.counters }
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
    this.counters.scans++
    const next = new Map<string, FileState>()
    const changed = new Map<string, { before: Loaded[]; after: Loaded[] }>()
    for (const name of names.filter((n) => !n.startsWith('.') && EXTENSIONS.test(n)).sort()) {
      const before = this.files.get(name)
      const state = this.loadFile(name, before)
      if (state) next.set(name, state)
      if (state?.loaded !== before?.loaded) changed.set(name, { before: before?.loaded ?? [], after: state?.loaded ?? [] })
    }
    for (const [name, before] of this.files) if (!next.has(name)) changed.set(name, { before: before.loaded, after: [] })
    this.files = next
    this.problemList = [...next].flatMap(([file, s]) => s.problems.map((message) => ({ file, message })))
    if (changed.size) this.publish(changed)
  }

  /** A file's state now; undefined when it is gone (or a folder). */
  private loadFile(name: string, before: FileState | undefined): FileState | undefined {
    const path = join(this.dir, name)
    let stat: BigIntStats | undefined
    try {
      stat = statSync(path, { bigint: true, throwIfNoEntry: false })
    } catch {
      // unreadable metadata: the read below reports it
    }
    if (stat?.isDirectory()) return undefined
    if (stat && before?.stamp === stampOf(stat) && !before.racy) {
      this.counters.skipped++
      return before
    }
    let bytes: Buffer
    try {
      const fd = openSync(path, 'r')
      try {
        stat = fstatSync(fd, { bigint: true })
        bytes = readFileSync(fd)
      } finally {
        closeSync(fd)
      }
    } catch (e: any) {
      if (e?.code === 'ENOENT' || e?.code === 'EISDIR') return undefined
      return this.keep(name, before, `cannot read: ${e?.message}`, { racy: false, digest: '' })
    }
    const stamp = stampOf(stat)
    // ctime, not mtime: any write sets it to the present, and utimes cannot set it back
    const racy = BigInt(Date.now()) * 1_000_000n - stat.ctimeNs < RACY_NS
    const digest = createHash('sha1').update(bytes).digest('base64')
    if (before?.digest === digest) {
      this.counters.unchanged++
      return { ...before, stamp, racy }
    }
    this.counters.parsed++
    return this.parseFile(name, bytes.toString('utf8'), before, { stamp, racy, digest })
  }

  private parseFile(name: string, text: string, before: FileState | undefined, read: Pick<FileState, 'stamp' | 'racy' | 'digest'>): FileState {
    const previous = before?.loaded ?? []
    const pieces = splitDocuments(text)
    const byPiece = pieces && this.loadPieces(name, pieces, before?.pieces, previous)
    if (byPiece) return { ...read, ...byPiece }
    const parsed = parseDocuments(text)
    if (!parsed.ok) return this.keep(name, before, parsed.message, read)
    this.counters.documents += parsed.docs.length
    const problems: string[] = []
    const loaded = parsed.docs.flatMap((doc, i) => this.loadDocument(name, i, doc, previous, (m) => void problems.push(m)))
    return { ...read, loaded, problems }
  }

  /**
   * A file document by document, reusing what an unchanged document (same
   * text) yielded last time; undefined when a document does not parse, so the
   * whole file gets the reference parse and its error message.
   */
  private loadPieces(name: string, pieces: string[], cache: Map<string, Piece> | undefined, previous: Loaded[]): Pick<FileState, 'loaded' | 'problems' | 'pieces'> | undefined {
    const next = new Map<string, Piece>()
    const loaded: Loaded[] = []
    const problems: string[] = []
    let doc = 0
    for (const text of pieces) {
      let piece = cache?.get(text) ?? next.get(text)
      if (!piece) {
        const docs = parsePiece(text)
        if (!docs) return undefined
        this.counters.documents += docs.length
        const before = problems.length
        const got = docs.flatMap((d, i) => this.loadDocument(name, doc + i, d, previous, (m) => void problems.push(m)))
        piece = { docs: docs.length, loaded: got }
        if (problems.length > before) {
          // refusals name the document's place and may keep an earlier version: not reusable
          loaded.push(...got)
          doc += docs.length
          continue
        }
      }
      next.set(text, piece)
      loaded.push(...piece.loaded)
      doc += piece.docs
    }
    return { loaded, problems, pieces: next }
  }

  /** The objects of one document (several for a `kind: List`). */
  private loadDocument(name: string, doc: number, value: unknown, previous: Loaded[], problem: (msg: string) => undefined): Loaded[] {
    const out: Loaded[] = []
    for (const item of expandLists(value)) {
      const r = this.loadObject(name, doc, item, previous, problem)
      if (r) out.push(r)
    }
    return out
  }

  /** Fail safe: the file's previous objects, with the problem logged and listed. */
  private keep(name: string, before: FileState | undefined, message: string, read: Pick<FileState, 'stamp' | 'racy' | 'digest'>): FileState {
    const loaded = before?.loaded ?? []
    this.log.error('manifest file not loaded; keeping its previously loaded objects', { file: name, error: message, kept: loaded.length })
    return { ...read, loaded, problems: [message] }
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

  /**
   * Pushes what differs from the last publish: objects of re-parsed files
   * (the store then decides whether policy-relevant content changed) and
   * objects no file defines any more. Only objects the changed files define
   * (or defined) are looked at. One store change at most.
   */
  private publish(changed: Map<string, { before: Loaded[]; after: Loaded[] }>): void {
    const touched = new Map<Kind, Set<string>>(KINDS.map((k) => [k, new Set()]))
    for (const [file, { before, after }] of changed) {
      if (this.patchDefinitions(file, before, after, touched)) continue
      for (const l of before) {
        this.setDefinition(l.kind, l.key, file, undefined)
        touched.get(l.kind)!.add(l.key)
      }
      const counts = new Map<Loaded['kind'], Map<string, number>>()
      for (const l of after) {
        let byKey = counts.get(l.kind)
        if (!byKey) counts.set(l.kind, (byKey = new Map()))
        // within one file too, the later definition wins
        const count = (byKey.get(l.key) ?? 0) + 1
        byKey.set(l.key, count)
        this.setDefinition(l.kind, l.key, file, { file, obj: l.obj, count })
        touched.get(l.kind)!.add(l.key)
      }
    }
    this.store.batch(() => {
      for (const [kind, keys] of touched) {
        const published = this.published.get(kind)!
        for (const key of keys) {
          const winner = this.winner(kind, key)
          const before = published.get(key)
          if (winner === undefined) {
            if (!before) continue
            published.delete(key)
            this.store.remove(kind, before.metadata.namespace, before.metadata.name, MANIFEST_ORIGIN)
          } else if (winner !== before) {
            published.set(key, winner)
            this.store.upsert(kind, winner, MANIFEST_ORIGIN)
          }
        }
      }
    })
  }

  /** Replaces (or with undefined, drops) `file`'s definition of an object. */
  private setDefinition(kind: Kind, key: string, file: string, def: Definition | undefined): void {
    const byKey = this.definitions.get(kind)!
    const defs = (byKey.get(key) ?? []).filter((d) => d.file !== file)
    if (def) defs.push(def)
    if (defs.length) byKey.set(key, defs)
    else byKey.delete(key)
  }

  /**
   * A file whose documents mostly yielded the very same Loaded objects as
   * before (only edited documents are parsed again): its definitions of the
   * few objects that differ, worked out from its whole list. False when too
   * much changed for this to pay.
   */
  private patchDefinitions(file: string, before: Loaded[], after: Loaded[], touched: Map<Kind, Set<string>>): boolean {
    if (before.length === 0) return false
    const had = new Set(before)
    const has = new Set(after)
    const differ = [...before.filter((l) => !has.has(l)), ...after.filter((l) => !had.has(l))]
    if (differ.length > PATCH_LIMIT) return false
    for (const { kind, key } of differ) {
      const mine = after.filter((l) => l.kind === kind && l.key === key)
      this.setDefinition(kind, key, file, mine.length ? { file, obj: mine[mine.length - 1].obj, count: mine.length } : undefined)
      touched.get(kind)!.add(key)
    }
    return true
  }

  /** The object of the later file (by name) defining it; warns when several definitions exist. */
  private winner(kind: Kind, key: string): KubeObject | undefined {
    const defs = this.definitions.get(kind)!.get(key)
    if (!defs) return undefined
    let last = defs[0]
    let count = 0
    for (const d of defs) {
      count += d.count
      if (d.file > last.file) last = d
    }
    if (count > 1) this.log.warn('object defined in several files; the later file wins', { file: last.file, object: `${kind} ${key}` })
    return last.obj
  }
}

/** One file's definition of an object: the last one in it, and how many it has. */
interface Definition {
  file: string
  obj: KubeObject
  count: number
}

function stampOf(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
}

/** A document's objects: itself, or the items of a `kind: List`. */
function expandLists(v: unknown): unknown[] {
  const o = v as any
  if (o && typeof o === 'object' && o.kind === 'List' && Array.isArray(o.items)) return o.items.flatMap(expandLists)
  return [v]
}
