/*
 * DirWatcher: runs a (synchronous) scan of a folder whenever it may have
 * changed.
 *
 * Model: fs.watch on the folder feeds a debounce timer (debounceMs) that
 * runs scan(); a poll timer (pollMs) runs it too, as a safety net for events
 * fs.watch misses and to re-establish the watch when the folder was missing
 * or replaced. rescan() scans at once, for callers that need "what is on disk
 * now" without waiting for an event.
 * Invariants: scan() is synchronous, so two scans never overlap; nothing is
 * watched or scheduled before start() or after stop(); a throwing scan is
 * logged, never fatal.
 */
import { watch, type FSWatcher } from 'node:fs'
import type { Logger } from '../../shared/log.ts'

export interface DirWatcherOptions {
  dir: string
  scan: () => void
  log: Logger
  debounceMs?: number
  /** 0 disables polling. */
  pollMs?: number
}

export class DirWatcher {
  private readonly o: Required<DirWatcherOptions>
  private watcher?: FSWatcher
  private debounce?: NodeJS.Timeout
  private poll?: NodeJS.Timeout
  private running = false

  constructor(o: DirWatcherOptions) {
    this.o = { debounceMs: 100, pollMs: 30_000, ...o }
  }

  /** Watches the folder and runs the first scan. */
  start(): void {
    this.running = true
    this.rescan()
    if (this.o.pollMs > 0) {
      this.poll = setInterval(() => this.rescan(), this.o.pollMs)
      this.poll.unref()
    }
  }

  /** Scans now (and re-establishes the watch if it was lost). */
  rescan(): void {
    clearTimeout(this.debounce)
    this.debounce = undefined
    if (!this.running) return
    this.ensureWatch()
    try {
      this.o.scan()
    } catch (e) {
      this.o.log.error('scan failed', { dir: this.o.dir, error: e })
    }
  }

  stop(): void {
    this.running = false
    clearTimeout(this.debounce)
    clearInterval(this.poll)
    this.watcher?.close()
    this.watcher = undefined
  }

  private ensureWatch(): void {
    if (this.watcher) return
    try {
      this.watcher = watch(this.o.dir, { persistent: false }, () => this.changed())
      this.watcher.on('error', (e) => {
        this.o.log.warn('folder watch lost, will re-establish', { dir: this.o.dir, error: e })
        this.watcher?.close()
        this.watcher = undefined
        this.changed()
      })
    } catch (e: any) {
      this.o.log.warn('cannot watch folder, relying on polling', { dir: this.o.dir, error: e?.message })
    }
  }

  private changed(): void {
    if (!this.running) return
    clearTimeout(this.debounce)
    this.debounce = setTimeout(() => this.rescan(), this.o.debounceMs)
  }
}

/**
 * A source whose knowledge is the files of one folder: start() reads it and
 * starts watching, rescan() reads it again now (a change present when the
 * caller asks is seen without waiting for fs.watch), stop() stops watching.
 */
export abstract class FolderSource {
  synced = false
  protected abstract readonly watcher: DirWatcher

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
}
