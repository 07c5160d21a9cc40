// The benchmark's manifests folder: the synthetic cluster as a few multi-document
// YAML files. Each object's YAML is rendered once and kept, so an edit re-renders
// one object and rewrites its file atomically (temp file + rename, which the
// agent's folder watch and rescan see as one change).
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { type Obj, podObj, type SynthCluster } from './synth.ts'

interface Entry {
  file: string
  yaml: string
}

export class ManifestFolder {
  private readonly entries = new Map<string, Entry>()
  private readonly files = new Map<string, string[]>()

  constructor(
    readonly dir: string,
    private readonly nodeName: string,
  ) {}

  /** Lays the cluster out: namespaces, pods in chunks, policies in chunks, the connection pair. */
  static layout(dir: string, nodeName: string, c: SynthCluster, podsPerFile = 500, policiesPerFile = 200): ManifestFolder {
    const m = new ManifestFolder(dir, nodeName)
    for (const ns of c.namespaces) m.put('namespaces.yaml', ns)
    m.put('namespaces.yaml', c.conn.namespace)
    c.pods.forEach((p, i) => m.put(`pods-${String(Math.floor(i / podsPerFile)).padStart(2, '0')}.yaml`, podObj(p, nodeName)))
    c.policies.forEach((p, i) => m.put(`policies-${String(Math.floor(i / policiesPerFile)).padStart(2, '0')}.yaml`, p))
    for (const p of [c.conn.server, c.conn.client]) m.put('conn.yaml', podObj(p, nodeName))
    return m
  }

  static key(o: Obj): string {
    return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`
  }

  /** Adds or replaces an object (in memory; `write` puts files on disk). */
  put(file: string, o: Obj): string {
    const key = ManifestFolder.key(o)
    const had = this.entries.get(key)
    if (had && had.file !== file) throw new Error(`${key} already lives in ${had.file}`)
    if (!had) this.files.set(file, [...(this.files.get(file) ?? []), key])
    this.entries.set(key, { file, yaml: stringify(o) })
    return file
  }

  /** Replaces a known object and rewrites its file; returns the file. */
  update(o: Obj): string {
    const had = this.entries.get(ManifestFolder.key(o))
    if (!had) throw new Error(`${ManifestFolder.key(o)} is not in the folder`)
    this.put(had.file, o)
    this.write(had.file)
    return had.file
  }

  /** Removes a whole file and its objects. */
  drop(file: string): void {
    for (const key of this.files.get(file) ?? []) this.entries.delete(key)
    this.files.delete(file)
    rmSync(join(this.dir, file), { force: true })
  }

  write(file: string): void {
    const keys = this.files.get(file)
    if (!keys) throw new Error(`no file ${file}`)
    const text = keys.map((k) => this.entries.get(k)!.yaml).join('---\n')
    const tmp = join(this.dir, `.${file}.tmp`)
    writeFileSync(tmp, text)
    renameSync(tmp, join(this.dir, file))
  }

  writeAll(): void {
    for (const file of this.files.keys()) this.write(file)
  }

  fileNames(): string[] {
    return [...this.files.keys()]
  }

  /** Objects and bytes on disk, for the report. */
  size(): { files: number; objects: number; bytes: number } {
    let bytes = 0
    for (const e of this.entries.values()) bytes += e.yaml.length + 4
    return { files: this.files.size, objects: this.entries.size, bytes }
  }
}
