/*
 * RecordSource: the local workloads, from the workload records the CNI
 * plugin writes under <stateDir>/workloads (shared/record.ts).
 *
 * Model: each scan lists every complete record (temp files are not `.json`,
 * so a record being written is never seen half-done) and hands the whole set
 * to store.setWorkloads, which ignores a scan that changed nothing.
 * A record that does not parse or lacks hostIface/ips is logged by file and
 * skipped: its interface then stays unknown to the dataplane, which drops it
 * (fail closed).
 * Cost: a record whose stamp (device, inode, size, mtime and ctime in ns) is
 * the one of its last read is not read again (the plugin replaces a record by
 * rename, so a new one is a new inode); one changed within the last two
 * seconds is read again whatever its stamp (coarse timestamps). A scan in
 * which no record changed, came or went does not touch the store.
 * Concurrency: scans are synchronous (DirWatcher), so they never overlap.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, type BigIntStats } from 'node:fs'
import { join } from 'node:path'
import { recordFileName, workloadsDir, type WorkloadRecord } from '../../shared/record.ts'
import type { Logger } from '../../shared/log.ts'
import type { LocalWorkload } from '../model.ts'
import type { Store } from '../store.ts'
import { DirWatcher, FolderSource } from './dirwatch.ts'

export interface RecordSourceOptions {
  debounceMs?: number
  pollMs?: number
}

export class RecordSource extends FolderSource {
  protected readonly watcher: DirWatcher
  private readonly log: Logger
  /** Record file → what its last read found. */
  private known = new Map<string, Known>()

  constructor(
    private readonly stateDir: string,
    private readonly store: Store,
    log: Logger,
    opts: RecordSourceOptions = {},
  ) {
    super()
    this.log = log.child({ source: 'records' })
    this.watcher = new DirWatcher({ dir: workloadsDir(stateDir), scan: () => this.scan(), log: this.log, debounceMs: opts.debounceMs ?? 20, pollMs: opts.pollMs })
  }

  /** Creates the folder if needed, reads it and starts watching. */
  override async start(): Promise<void> {
    mkdirSync(workloadsDir(this.stateDir), { recursive: true })
    await super.start()
  }

  private scan(): void {
    const dir = workloadsDir(this.stateDir)
    let files: string[]
    try {
      files = readdirSync(dir)
    } catch (e: any) {
      if (e?.code !== 'ENOENT') throw e
      files = []
    }
    const next = new Map<string, Known>()
    let changed = false
    for (const f of files) {
      if (!f.endsWith('.json')) continue
      const known = this.read(join(dir, f), f, this.known.get(f))
      if (!known) continue
      next.set(f, known)
      if (known !== this.known.get(f)) changed = true
    }
    if (next.size !== this.known.size) changed = true
    this.known = next
    if (!changed) return
    const workloads: LocalWorkload[] = []
    for (const k of next.values()) {
      const w = toWorkload(k.record)
      if (w) workloads.push(w)
      else this.log.error('malformed workload record skipped', { file: recordFileName(String(k.record?.containerId), String(k.record?.ifname)) })
    }
    this.store.setWorkloads(workloads)
  }

  /** One record: as last read while its stamp vouches for it, else read now; undefined when gone or unreadable (reported). */
  private read(path: string, file: string, before: Known | undefined): Known | undefined {
    try {
      const st = statSync(path, { bigint: true, throwIfNoEntry: false })
      if (!st) return undefined
      const stamp = stampOf(st)
      if (before?.stamp === stamp && !before.racy) return before
      const record = JSON.parse(readFileSync(path, 'utf8'))
      // a write within the same timestamp tick as this read could leave the stamp unchanged
      return { stamp, racy: BigInt(Date.now()) * 1_000_000n - st.ctimeNs < RACY_NS, record }
    } catch (e: any) {
      if (e?.code === 'ENOENT') return undefined
      this.log.error('unreadable workload record skipped', { file, error: e?.message })
      return undefined
    }
  }
}

/** A record file changed this shortly before it was read is read again on the next scan. */
const RACY_NS = 2_000_000_000n

interface Known {
  stamp: string
  racy: boolean
  record: WorkloadRecord
}

function stampOf(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
}

export function toWorkload(r: WorkloadRecord): LocalWorkload | undefined {
  if (!r || typeof r !== 'object') return undefined
  if (typeof r.hostIface !== 'string' || !r.hostIface) return undefined
  if (!Array.isArray(r.ips) || !r.ips.every((ip) => typeof ip === 'string')) return undefined
  const w: LocalWorkload = { hostIface: r.hostIface, ips: [...r.ips] }
  if (typeof r.namespace === 'string' && r.namespace) w.namespace = r.namespace
  if (typeof r.pod === 'string' && r.pod) w.pod = r.pod
  return w
}
