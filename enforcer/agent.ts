// The node agent: sources → store → (coalesced) compile → one writer.
//
// Model: the store holds what the sources say; every effective change bumps
// store.generation. A sync compiles the snapshot of one generation and applies
// it; once the apply succeeds that generation is "programmed". Waiters (the
// plugin's ADD, `status --wait-synced`) name a generation and resolve when a
// sync at or past it has been applied.
//
// Invariants: nothing is written to the kernel before every source finished
// its initial sync (a half-known cluster would drop allowed traffic); nothing
// is flushed on start (the writer reconciles what the previous run left).
// Concurrency: the runner never runs two syncs at once; waiters are plain
// promises resolved from the sync's completion.
import type { Logger } from '../shared/log.ts'
import type { DesiredState, Problem } from './dataplane/types.ts'
import type { EnforcerConfig } from './model.ts'
import { Compiler } from './compile/index.ts'
import { Store } from './store.ts'
import { Runner } from './runner.ts'
import type { MetricsSink } from './metrics-deferred.ts'
import type { Node } from './model.ts'

/** Routes between nodes (network/router.ts): synced after each apply, never holding up the policy rules. */
export interface Routes {
  sync(nodes: readonly Node[]): Promise<void>
  status(): unknown
}

export interface Source {
  start(): Promise<void>
  rescan(): Promise<void>
  stop(): Promise<void>
  readonly synced: boolean
}

export interface Writer {
  apply(state: DesiredState): Promise<unknown>
  /** Forget what the writer believes is in the kernel: its next apply reads it (drift repair). */
  invalidate(): void
  /** Read the kernel ahead of the first apply (done while the sources load). */
  prefetch(): Promise<void>
  /** Read the kernel beside the applies; true if the read was kept for the next apply to diff against. */
  refresh(): Promise<boolean>
}

/** How often the kernel is re-read to repair drift (someone deleted a rule or a set member). */
export const DRIFT_CHECK_MS = 30_000
/** A drift read overlapped by an apply is tried again this much later, this many times in all. */
const DRIFT_RETRY_MS = 1000
const DRIFT_READ_TRIES = 3

export interface AgentDeps {
  store: Store
  sources: Source[]
  /** The records source, rescanned alone when the plugin asks about one interface. */
  records: Source
  writer: Writer
  routes?: Routes
  config: EnforcerConfig
  log: Logger
  metrics?: MetricsSink
  now?: () => number
}

export interface ApplyReport {
  generation: number
  at: string
  durationMs: number
  workloads: string[]
  problems: Problem[]
  error?: string
}

interface Waiter {
  ready: () => boolean
  resolve: (ok: boolean) => void
}

export class Agent {
  private applied: ApplyReport | undefined
  private lastError: string | undefined
  private programmed = new Set<string>()
  /** Set name → what it holds, from the last applied state (for `show`). */
  private setDescriptions: Record<string, string> = {}
  private waiters = new Set<Waiter>()
  readonly runner: Runner
  private started = false
  private lastKernelRead = 0
  private routing: Promise<void> = Promise.resolve()
  private routesFailing = false
  /** Remembers what unchanged policies and pods compiled to, so a sync costs what changed. */
  private readonly compiler: Compiler

  constructor(private readonly deps: AgentDeps) {
    this.compiler = new Compiler(deps.config)
    // A short quiet period: a burst still coalesces (triggers during a sync make
    // one more sync), and one change is not held back by most of its 50 ms budget.
    this.runner = new Runner({ run: () => this.sync(), minIntervalMs: 2, retryMs: 1000, maxDelayMs: 500, resyncMs: DRIFT_CHECK_MS })
  }

  async start(): Promise<void> {
    const { sources, store, log, writer } = this.deps
    const now = this.deps.now ?? Date.now
    // The kernel read of the first sync overlaps the sources' initial load; it
    // counts as the drift check's read. A failed prefetch only means the first
    // apply reads the kernel itself.
    const prefetch = writer.prefetch().then(
      () => void (this.lastKernelRead = now()),
      (e) => log.warn('reading the kernel ahead of the first sync failed; the first apply reads it', { err: (e as Error).message }),
    )
    await Promise.all([...sources.map((s) => s.start()), prefetch])
    log.info('sources synced', { generation: store.generation })
    store.on('change', () => this.runner.trigger())
    this.runner.start()
    this.runner.trigger()
    this.started = true
  }

  async stop(): Promise<void> {
    await this.runner.stop()
    await Promise.all(this.deps.sources.map((s) => s.stop()))
    for (const w of this.waiters) w.resolve(false)
    this.waiters.clear()
  }

  /** One compile + apply of the current snapshot. Throws so the runner retries. */
  private async sync(): Promise<void> {
    const { store, writer, log } = this.deps
    const now = this.deps.now ?? Date.now
    const generation = store.generation
    const t0 = now()
    // The kernel read (~100-200 ms at 10k rules) belongs to the periodic drift
    // check, not to the sync carrying a change: it starts once this sync is
    // applied and runs beside later ones; a sync after it repairs what drifted.
    const driftDue = t0 - this.lastKernelRead >= DRIFT_CHECK_MS
    if (driftDue) this.lastKernelRead = t0
    const snapshot = store.snapshot()
    const desired = this.compiler.compile(snapshot)
    try {
      await writer.apply(desired)
    } catch (e) {
      this.lastError = (e as Error).message
      this.deps.metrics?.failed()
      log.error('apply failed; will retry', { generation, err: this.lastError })
      throw e
    }
    this.lastError = undefined
    this.programmed = new Set(desired.workloads)
    this.setDescriptions = Object.fromEntries([...desired.v4.sets, ...desired.v6.sets].map((s) => [s.name, s.comment]))
    this.applied = { generation, at: new Date().toISOString(), durationMs: now() - t0, workloads: desired.workloads, problems: desired.problems }
    log.debug('applied', { generation, ms: this.applied.durationMs, workloads: desired.workloads.length })
    this.wake()
    if (driftDue) this.checkDrift()
    this.syncRoutes(snapshot.nodes ?? [])
    // bookkeeping after the waiters are answered: counting the store walks every object
    this.deps.metrics?.applied(generation, this.applied.durationMs / 1000, desired.workloads.length, desired.problems.length)
    this.deps.metrics?.storeCounts(store.counts())
    for (const p of desired.problems) log.warn('policy problem', { ...p })
  }

  /**
   * Routes follow the policy rules rather than gate them: a pod's ADD waits
   * for its chains, not for routes to other nodes. And they come after them on
   * purpose: a new node's range must be in the pod-range set before its route
   * exists, or the first packets to its pods would be masqueraded (their
   * receiver's policy would judge the node's address, not the pod's). A failed
   * route apply is retried by another sync a little later.
   */
  private syncRoutes(nodes: readonly Node[]): void {
    const routes = this.deps.routes
    if (!routes) return
    this.routing = this.routing.then(() => routes.sync(nodes)).then(
      () => void (this.routesFailing = false),
      (e) => {
        if (!this.routesFailing) this.deps.log.error('programming routes between nodes failed; will retry', { err: (e as Error).message })
        this.routesFailing = true
        setTimeout(() => this.runner.trigger('resync'), 1000).unref()
      },
    )
  }

  /**
   * One drift check. A read overlapped by an apply is not kept, so it is tried
   * again a little later; after a few tries (changes keep coming) the next
   * sync reads the kernel itself.
   */
  private checkDrift(attempt = 1): void {
    const { writer, log } = this.deps
    const readInNextSync = () => {
      writer.invalidate()
      this.runner.trigger('resync')
    }
    writer.refresh().then(
      (kept) => {
        if (kept) this.runner.trigger('resync')
        else if (attempt < DRIFT_READ_TRIES) setTimeout(() => this.checkDrift(attempt + 1), DRIFT_RETRY_MS).unref()
        else readInNextSync()
      },
      (e) => {
        log.warn('reading the kernel for the drift check failed; the next sync reads it', { err: (e as Error).message })
        readInNextSync()
      },
    )
  }

  private wake(): void {
    for (const w of this.waiters) {
      if (w.ready()) {
        this.waiters.delete(w)
        w.resolve(true)
      }
    }
  }

  /**
   * Resolves once `ready` holds after some sync. Nothing is triggered here: a
   * generation newer than the applied one has already triggered a sync through
   * the store's change event, and an applied one needs none (a sync per status
   * call would recompile the whole cluster for nothing).
   */
  private waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const waiter: Waiter = { ready, resolve: () => {} }
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        resolve(false)
      }, timeoutMs)
      waiter.resolve = (ok) => {
        clearTimeout(timer)
        resolve(ok)
      }
      this.waiters.add(waiter)
    })
  }

  private appliedAtLeast(generation: number): boolean {
    return this.applied !== undefined && this.applied.generation >= generation
  }

  /** Resolves true once every change present in the sources now is in the kernel. */
  async waitSynced(timeoutMs: number): Promise<boolean> {
    await Promise.all(this.deps.sources.map((s) => s.rescan()))
    const target = this.deps.store.generation
    const ok = await this.waitFor(() => this.appliedAtLeast(target), timeoutMs)
    // the routes that sync started are part of "synced" (a Node change is proven by its routes)
    if (ok) await this.routing
    return ok
  }

  /** Resolves true once the interface's chains are in the kernel (the plugin's ADD waits on this). */
  async waitProgrammed(iface: string, timeoutMs: number): Promise<boolean> {
    await this.deps.records.rescan()
    const target = this.deps.store.generation
    return this.waitFor(() => this.appliedAtLeast(target) && this.programmed.has(iface), timeoutMs)
  }

  /** Resolves once a sync has been applied (false if the agent stops first). */
  whenApplied(): Promise<boolean> {
    return this.waitFor(() => this.applied !== undefined, 2 ** 31 - 1)
  }

  /** What each set of the applied state holds, in words. */
  describeSets(): Record<string, string> {
    return this.setDescriptions
  }

  status(): Record<string, unknown> {
    return {
      started: this.started,
      generation: this.deps.store.generation,
      synced: this.deps.sources.every((s) => s.synced) && this.appliedAtLeast(this.deps.store.generation),
      known: this.deps.store.counts(),
      runner: this.runner.stats(),
      lastApply: this.applied,
      lastError: this.lastError,
      ...(this.deps.routes && { routes: this.deps.routes.status() }),
    }
  }
}
