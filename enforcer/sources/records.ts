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
 * Concurrency: scans are synchronous (DirWatcher), so they never overlap.
 */
import { mkdirSync } from 'node:fs'
import { listRecords, recordFileName, workloadsDir, type WorkloadRecord } from '../../shared/record.ts'
import type { Logger } from '../../shared/log.ts'
import type { LocalWorkload } from '../model.ts'
import type { Store } from '../store.ts'
import { DirWatcher } from './dirwatch.ts'

export interface RecordSourceOptions {
  debounceMs?: number
  pollMs?: number
}

export class RecordSource {
  synced = false
  private readonly watcher: DirWatcher
  private readonly log: Logger

  constructor(
    private readonly stateDir: string,
    private readonly store: Store,
    log: Logger,
    opts: RecordSourceOptions = {},
  ) {
    this.log = log.child({ source: 'records' })
    this.watcher = new DirWatcher({ dir: workloadsDir(stateDir), scan: () => this.scan(), log: this.log, debounceMs: opts.debounceMs ?? 20, pollMs: opts.pollMs })
  }

  /** Creates the folder if needed, reads it and starts watching. */
  async start(): Promise<void> {
    mkdirSync(workloadsDir(this.stateDir), { recursive: true })
    this.watcher.start()
    this.synced = true
  }

  async rescan(): Promise<void> {
    this.watcher.rescan()
  }

  async stop(): Promise<void> {
    this.watcher.stop()
  }

  private scan(): void {
    const records = listRecords(this.stateDir, (file, err) => this.log.error('unreadable workload record skipped', { file, error: (err as Error)?.message }))
    const workloads: LocalWorkload[] = []
    for (const r of records) {
      const w = toWorkload(r)
      if (w) workloads.push(w)
      else this.log.error('malformed workload record skipped', { file: recordFileName(String(r?.containerId), String(r?.ifname)) })
    }
    this.store.setWorkloads(workloads)
  }
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
