/*
 * Runner: turns a stream of "something changed" triggers into runs of one
 * async function (the agent's compile + apply).
 *
 * Model: `dirty` says a trigger arrived that no started run has seen. A dirty
 * runner has one timer armed for the next run, due at
 *     min(now + minIntervalMs, firstTrigger + maxDelayMs)     (debounce, capped)
 * but never before lastRunEnd + minIntervalMs, and after a failure never before
 * the retry time (retryMs doubling per consecutive failure, up to maxRetryMs).
 * After a successful run, a resync run is due resyncMs later unless something
 * else ran first.
 * Goals: a burst of triggers is one run; a steady stream cannot postpone a run
 * past maxDelayMs; a failed run is retried (with backoff) without anyone
 * triggering again; callers can await "a run that started after now succeeded".
 * Invariants: never two runs at once; a trigger during a run causes another run
 * after it; nothing runs before start() or after stop().
 * Concurrency: single event loop; timers are injected so tests drive time.
 */
import { nullLogger, type Logger } from '../shared/log.ts'

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  now(): number
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
}

export type RunReason = 'change' | 'retry' | 'resync'

export interface RunInfo {
  /** 1 for the first run, then increasing. */
  seq: number
  reason: RunReason
}

export interface RunnerOptions {
  run: (info: RunInfo) => Promise<void>
  /** Quiet period that coalesces a burst; also the minimum gap between runs. */
  minIntervalMs?: number
  /** Longest a pending trigger waits, however many follow it. */
  maxDelayMs?: number
  /** Wait after the first failure; doubles per consecutive failure up to maxRetryMs. */
  retryMs?: number
  maxRetryMs?: number
  /** Periodic full run after this long without one; 0 disables. */
  resyncMs?: number
  timers?: Timers
  log?: Logger
}

export interface RunnerStats {
  runs: number
  failures: number
  consecutiveFailures: number
  lastError?: string
  lastSuccessAt?: number
  pending: boolean
  running: boolean
}

interface Waiter {
  afterSeq: number
  resolve: () => void
  reject: (e: Error) => void
}

export class Runner {
  private readonly o: Required<Omit<RunnerOptions, 'log' | 'timers'>>
  private readonly timers: Timers
  private readonly log: Logger
  private started = false
  private stopped = false
  private dirty = false
  private reason: RunReason = 'change'
  private firstDirtyAt = 0
  private lastEnd = Number.NEGATIVE_INFINITY
  private retryAt = 0
  private timer: unknown
  private resyncTimer: unknown
  private running?: Promise<void>
  private seqStarted = 0
  private waiters: Waiter[] = []
  private idleWaiters: Waiter[] = []
  private readonly s: RunnerStats = { runs: 0, failures: 0, consecutiveFailures: 0, pending: false, running: false }

  constructor(opts: RunnerOptions) {
    this.o = {
      run: opts.run,
      minIntervalMs: opts.minIntervalMs ?? 20,
      maxDelayMs: opts.maxDelayMs ?? 1000,
      retryMs: opts.retryMs ?? 1000,
      maxRetryMs: opts.maxRetryMs ?? 30_000,
      resyncMs: opts.resyncMs ?? 0,
    }
    this.timers = opts.timers ?? realTimers
    this.log = opts.log ?? nullLogger
  }

  /** Enables runs; triggers that arrived before are honoured now. */
  start(): void {
    if (this.started || this.stopped) return
    this.started = true
    this.schedule()
    this.armResync()
  }

  /** Something changed: a run will follow. */
  trigger(reason: RunReason = 'change'): void {
    if (this.stopped) return
    if (!this.dirty) {
      this.dirty = true
      this.reason = reason
      this.firstDirtyAt = this.timers.now()
    }
    this.schedule()
  }

  /** Resolves when a run that starts after this call has succeeded. Does not trigger. */
  applied(): Promise<void> {
    return this.wait(this.waiters, this.seqStarted)
  }

  /** trigger() then applied(): "is the state as of now programmed". */
  sync(): Promise<void> {
    const p = this.applied()
    this.trigger()
    return p
  }

  /** Resolves once nothing is pending or running (immediately if so now). */
  whenIdle(): Promise<void> {
    if (!this.dirty && !this.running) return Promise.resolve()
    return this.wait(this.idleWaiters, 0)
  }

  stats(): RunnerStats {
    return { ...this.s, pending: this.dirty, running: !!this.running }
  }

  /** Cancels timers and waiters, and waits for a run in progress to end. */
  async stop(): Promise<void> {
    this.stopped = true
    this.timers.clearTimeout(this.timer)
    this.timers.clearTimeout(this.resyncTimer)
    const err = new Error('runner stopped')
    for (const w of [...this.waiters.splice(0), ...this.idleWaiters.splice(0)]) w.reject(err)
    await this.running
  }

  private wait(list: Waiter[], afterSeq: number): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('runner stopped'))
    return new Promise((resolve, reject) => list.push({ afterSeq, resolve, reject }))
  }

  private schedule(): void {
    if (!this.started || this.stopped || this.running || !this.dirty) return
    const now = this.timers.now()
    let due = Math.min(now + this.o.minIntervalMs, this.firstDirtyAt + this.o.maxDelayMs)
    due = Math.max(due, this.lastEnd + this.o.minIntervalMs, this.retryAt)
    this.timers.clearTimeout(this.timer)
    this.timer = this.timers.setTimeout(() => this.fire(), Math.max(0, due - now))
  }

  private fire(): void {
    this.timer = undefined
    if (this.stopped || this.running || !this.dirty) return
    this.dirty = false
    const info: RunInfo = { seq: ++this.seqStarted, reason: this.reason }
    this.running = this.execute(info)
  }

  private async execute(info: RunInfo): Promise<void> {
    this.timers.clearTimeout(this.resyncTimer)
    this.s.runs++
    try {
      await this.o.run(info)
      this.succeeded(info)
    } catch (e) {
      this.failed(info, e)
    } finally {
      this.lastEnd = this.timers.now()
      this.running = undefined
      this.armResync()
      this.schedule()
      if (!this.dirty) this.settle(this.idleWaiters, () => true)
    }
  }

  private succeeded(info: RunInfo): void {
    if (this.s.consecutiveFailures) this.log.info('run succeeded after failures', { failures: this.s.consecutiveFailures })
    this.s.consecutiveFailures = 0
    this.s.lastSuccessAt = this.timers.now()
    this.retryAt = 0
    this.settle(this.waiters, (w) => info.seq > w.afterSeq)
  }

  private failed(info: RunInfo, e: unknown): void {
    this.s.failures++
    this.s.consecutiveFailures++
    this.s.lastError = (e as Error)?.message ?? String(e)
    const delay = Math.min(this.o.retryMs * 2 ** (this.s.consecutiveFailures - 1), this.o.maxRetryMs)
    this.retryAt = this.timers.now() + delay
    this.log.error('run failed, will retry', { seq: info.seq, reason: info.reason, retryInMs: delay, error: e })
    if (!this.dirty) {
      this.dirty = true
      this.firstDirtyAt = this.timers.now()
    }
    this.reason = 'retry'
  }

  private armResync(): void {
    this.timers.clearTimeout(this.resyncTimer)
    this.resyncTimer = undefined
    if (!this.started || this.stopped || this.o.resyncMs <= 0 || this.s.consecutiveFailures > 0) return
    this.resyncTimer = this.timers.setTimeout(() => this.trigger('resync'), this.o.resyncMs)
  }

  private settle(list: Waiter[], done: (w: Waiter) => boolean): void {
    for (let i = list.length - 1; i >= 0; i--) {
      if (done(list[i])) list.splice(i, 1)[0].resolve()
    }
  }
}
