// The one writer to the kernel.
//
// Model: desired state in, (actual state → plan → restores) out. Actual state
// is wren's own chains, hooks and sets only (everything under the owner prefix),
// read with `iptables-save -t TABLE` per table and family and `ipset save`, or
// taken from a cache of what the last successful apply left.
//
// Goals: after apply() resolves the kernel matches the desired state; an apply
// that changes nothing writes nothing; a change rewrites only the chains and set
// members it touches; a restarted agent (no cache) reconciles without flushing.
//
// Invariants: no rule references a set or chain that does not exist (sets are
// created first and destroyed last; references are checked before any write);
// no chain is half-written (whole-chain replacement inside one atomic
// iptables-restore per table); nothing outside the owner prefix is written,
// except wren's hook rules in built-in chains.
//
// Cache: the kernel is read when there is no cache, after any failure, and when
// the last read is older than `resyncMs` (0 = read on every apply). In between, the
// diff runs against the cache, so a policy change costs only its own writes.
//
// Errors: a desired state that fails validation (a compiler bug) throws a
// RenderError/MemberError before anything is written; a failed read or write
// throws DataplaneError naming the phase and the exact input, after logging it,
// and drops the cache so the runner's retry starts from a fresh read.
//
// Concurrency: apply, cleanup and status calls run one at a time, in order;
// refresh() reads beside them and keeps its read only if none ran meanwhile.
// Other writers (kube-proxy) are kept apart by the xtables lock (--wait).
import { OWNER_PREFIX } from '../../shared/names.ts'
import { type Exec, ExecError, execOk } from '../../shared/exec.ts'
import type { Logger } from '../../shared/log.ts'
import { type Backend, type BackendMode, RESTORE_ARGS, detectBackend } from './backend.ts'
import { type KernelSet, type KernelTable, parseIpsetSave, parseSave } from './kernel.ts'
import { type ActualState, type Plan, type PlanStats, type TableWrite, makePlan } from './plan.ts'
import { type Prepared, PrepareMemo, prepare } from './prepare.ts'
import { cleanupAll, countStatus, type KernelStatus } from './inventory.ts'
import type { DesiredState, Family, Table } from './types.ts'
import { DEFAULT_ENFORCER_CONFIG } from '../model.ts'

/** maxelem when none is given: the agent's default (--set-max-elem). */
export const DEFAULT_MAXELEM = DEFAULT_ENFORCER_CONFIG.setMaxElem
/**
 * Reading 10,000 rules back through iptables-nft-save takes ~250 ms, more than
 * a policy change may cost, so applies within this long of the last read trust
 * the cache; the agent's periodic apply then repairs drift.
 */
export const DEFAULT_RESYNC_MS = 10_000
/** Tables read on every kernel read even when the desired state does not use them, so leftovers are found. */
const ALWAYS_READ: readonly Table[] = ['filter', 'raw']

export interface DataplaneOptions {
  exec: Exec
  log: Logger
  /** 'nft' | 'legacy' to skip detection, or a ready Backend. Default: detect. */
  backend?: BackendMode | 'auto' | Backend
  /** maxelem of every set wren creates. */
  setMaxElem?: number
  /** Re-read the kernel when the last read is this old (drift repair). 0: read on every apply. Default DEFAULT_RESYNC_MS. */
  resyncMs?: number
  /** Prefix of everything this writer owns; must start with `wren`. */
  owner?: string
  now?: () => number
}

export interface ApplyResult extends PlanStats {
  /** Whether the kernel was read (false: diffed against the cache). */
  read: boolean
  /** Restore commands run (0 for a no-op). */
  restores: number
  /** Validating and rendering the desired state (and detecting the backend on first use). */
  prepareMs: number
  /** Reading the kernel (0 when the cache was used). */
  readMs: number
  writeMs: number
  totalMs: number
}

/** A failed apply: which step, and the exact input it tried. The cache is dropped; retrying is safe. */
export class DataplaneError extends Error {
  constructor(
    readonly phase: string,
    readonly input: string | undefined,
    override readonly cause: unknown,
  ) {
    super(`dataplane ${phase} failed: ${(cause as Error)?.message ?? String(cause)}`)
  }
}

export class Dataplane {
  private backend: Backend | undefined
  private cache: { state: ActualState; readAt: number } | undefined
  private queue: Promise<unknown> = Promise.resolve()
  /** Whether an apply, cleanup or status runs, and how many ever started: refresh() checks both. */
  private running = false
  private started = 0
  private readonly memo = new PrepareMemo()
  private readonly maxelem: number
  private readonly owner: string
  private readonly now: () => number

  constructor(private readonly opts: DataplaneOptions) {
    this.maxelem = opts.setMaxElem ?? DEFAULT_MAXELEM
    this.owner = opts.owner ?? OWNER_PREFIX
    if (!this.owner.startsWith(OWNER_PREFIX)) throw new Error(`owner prefix ${this.owner} must start with ${OWNER_PREFIX}`)
    this.now = opts.now ?? (() => performance.now())
  }

  apply(state: DesiredState): Promise<ApplyResult> {
    return this.serial(() => this.applyNow(state))
  }

  /** Removes every chain, hook and set under the owner prefix, in both families. */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      this.cache = undefined
      await cleanupAll(this.opts.exec, await this.getBackend(), this.owner, this.opts.log)
    })
  }

  status(): Promise<KernelStatus> {
    return this.serial(async () => countStatus(this.opts.exec, await this.getBackend(), this.owner))
  }

  /**
   * Detects the backend and reads the kernel now, so a starting agent does it
   * while its sources load rather than after. The read becomes the cache of the
   * first apply (trusted for resyncMs like any read; the drift check repairs
   * what changes in between).
   */
  prefetch(): Promise<void> {
    return this.serial(async () => {
      const readAt = this.now()
      const state = await this.read(await this.getBackend(), tablesToRead(undefined, undefined))
      this.cache = { state, readAt }
    })
  }

  /** Forget the cache: the next apply reads the kernel. */
  invalidate(): void {
    this.cache = undefined
  }

  /**
   * Reads the kernel without holding up applies: the read becomes the cache
   * only if no apply, cleanup or status ran while it was taken (it could have
   * seen their writes half done). Resolves whether it did. The next apply then
   * diffs against it and repairs any drift, at the cost of its own writes.
   */
  async refresh(): Promise<boolean> {
    if (this.running || !this.backend) return false
    const started = this.started
    const readAt = this.now()
    const state = await this.read(this.backend, tablesToRead(undefined, this.cache?.state))
    if (started !== this.started || this.running) return false
    this.cache = { state, readAt }
    return true
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const counted = async () => {
      this.running = true
      this.started++
      try {
        return await fn()
      } finally {
        this.running = false
      }
    }
    const run = this.queue.then(counted, counted)
    this.queue = run.catch(() => {})
    return run
  }

  private async getBackend(): Promise<Backend> {
    const b = this.opts.backend
    if (!this.backend) this.backend = typeof b === 'object' ? b : await detectBackend(this.opts.exec, this.opts.log, b)
    return this.backend
  }

  private async applyNow(state: DesiredState): Promise<ApplyResult> {
    const t0 = this.now()
    const backend = await this.getBackend()
    const desired = prepare(state, this.maxelem, this.owner, this.memo) // throws before any write on a compiler bug
    const tp = this.now()
    const fresh = !this.cache || t0 - this.cache.readAt >= (this.opts.resyncMs ?? DEFAULT_RESYNC_MS)
    const readAt = fresh ? t0 : this.cache!.readAt
    let actual: ActualState
    try {
      actual = fresh ? await this.read(backend, tablesToRead(desired, this.cache?.state)) : this.cache!.state
    } catch (e) {
      this.cache = undefined
      throw e instanceof DataplaneError ? e : new DataplaneError('read', undefined, e)
    }
    const t1 = this.now()
    const plan = makePlan(desired, actual, this.maxelem)
    this.cache = undefined // until the writes below are known to have landed
    const restores = await this.write(backend, plan)
    this.cache = { state: expectedState(desired, actual, this.maxelem), readAt }
    const t2 = this.now()
    const result: ApplyResult = { ...plan.stats, read: fresh, restores, prepareMs: tp - t0, readMs: t1 - tp, writeMs: t2 - t1, totalMs: t2 - t0 }
    if (restores) this.opts.log.info('dataplane applied', { ...result })
    else this.opts.log.debug('dataplane unchanged', { read: fresh, totalMs: result.totalMs })
    return result
  }

  /** Reads wren's objects: `save -t TABLE` per family and table, and `ipset save`, all at once. */
  private async read(backend: Backend, tables: Table[]): Promise<ActualState> {
    const { exec } = this.opts
    const jobs: Promise<[Family, Map<string, KernelTable>]>[] = []
    for (const family of [4, 6] as const)
      for (const t of tables)
        jobs.push(execOk(exec, backend.save(family), ['-t', t]).then((out) => [family, parseSave(out, this.owner)]))
    const [parts, ipsetOut] = await Promise.all([Promise.all(jobs), execOk(exec, 'ipset', ['save'])])
    const state: ActualState = { tables: new Map([[4, new Map()], [6, new Map()]]), sets: parseIpsetSave(ipsetOut, this.owner) }
    for (const [family, parsed] of parts) for (const [t, kt] of parsed) state.tables.get(family)!.set(t as Table, kt)
    return state
  }

  /**
   * Runs the plan's phases in order; the first failure stops the apply and
   * names its input. Within a phase the two families are independent rulesets,
   * so each family's tables go in one restore and the families run side by side
   * (legacy iptables serialises them on the xtables lock anyway).
   */
  private async write(backend: Backend, plan: Plan): Promise<number> {
    let n = 0
    const run = async (phase: string, cmd: string, args: readonly string[], input: string) => {
      n++
      try {
        await execOk(this.opts.exec, cmd, args, { input, timeoutMs: 60_000 })
      } catch (e) {
        const stderr = e instanceof ExecError ? e.result.stderr : undefined
        this.opts.log.error('dataplane write failed', { phase, cmd, args, stderr, input })
        throw new DataplaneError(phase, input, e)
      }
    }
    const perFamily = (pick: (tw: TableWrite) => string | undefined, what: string) =>
      settleAll(
        ([4, 6] as const).map((family) => {
          const writes = plan.tables.filter((tw) => tw.family === family && pick(tw))
          if (!writes.length) return undefined
          const phase = `v${family} ${writes.map((tw) => tw.table).join('+')}${what}`
          return run(phase, backend.restore(family), RESTORE_ARGS, writes.map(pick).join(''))
        }),
      )
    if (plan.sets) await run('sets', 'ipset', ['restore'], plan.sets)
    await perFamily((tw) => tw.write, '')
    await perFamily((tw) => tw.remove, ' stale chains')
    if (plan.destroySets) await run('stale sets', 'ipset', ['restore'], plan.destroySets)
    return n
  }
}

/** Waits for every job, then throws the first failure (so no restore is still running when the apply fails). */
async function settleAll(jobs: (Promise<void> | undefined)[]): Promise<void> {
  const results = await Promise.allSettled(jobs)
  const failed = results.find((r) => r.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
}

/**
 * filter and raw always; nat (masquerade) when the desired state uses it, when
 * the last read found wren's chains or hooks there, and on a read without a
 * cache (start-up, after an invalidate), so a leftover of an earlier run is
 * found. Otherwise nat is not read: on a kube-proxy node it holds thousands of
 * rules that are not ours.
 */
function tablesToRead(desired: Prepared | undefined, cached: ActualState | undefined): Table[] {
  const tables = new Set<Table>(ALWAYS_READ)
  if (!cached) tables.add('nat')
  for (const byTable of desired?.families.values() ?? []) for (const t of byTable.keys()) tables.add(t)
  for (const byTable of cached?.tables.values() ?? []) for (const [t, kt] of byTable) if (ALWAYS_READ.includes(t) || kt.chains.size || kt.foreign.size) tables.add(t)
  return [...tables]
}

/** What the kernel holds after a successful apply of `desired` onto `actual`: the next apply's cache. */
function expectedState(desired: Prepared, actual: ActualState, maxelem: number): ActualState {
  const sets = new Map<string, KernelSet>()
  for (const [name, ps] of desired.sets) sets.set(name, { type: ps.set.type, family: ps.set.family, maxelem, members: ps.members })
  const tables = new Map<Family, Map<Table, KernelTable>>()
  for (const family of [4, 6] as const) {
    const out = new Map<Table, KernelTable>()
    const want = desired.families.get(family)!
    const have = actual.tables.get(family) ?? new Map<Table, KernelTable>()
    for (const t of new Set([...want.keys(), ...have.keys()])) {
      const kt: KernelTable = { chains: new Map(), foreign: new Map() }
      const w = want.get(t)
      for (const [name, rc] of w?.chains ?? []) kt.chains.set(name, rc.hashes)
      for (const chain of new Set([...(w?.hooks.keys() ?? []), ...(have.get(t)?.foreign.keys() ?? [])])) {
        const hooks = (w?.hooks.get(chain) ?? []).map((h) => ({ spec: h.spec, ours: true, hash: h.hash }))
        const others = (have.get(t)?.foreign.get(chain) ?? []).filter((r) => !r.ours)
        if (hooks.length) kt.foreign.set(chain, [...hooks, ...others])
      }
      out.set(t, kt)
    }
    tables.set(family, out)
  }
  return { tables, sets }
}
