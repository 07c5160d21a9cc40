/*
 * Router: keeps the kernel's routes between nodes in step with the Node
 * objects the store holds.
 *
 * Model: sync(nodes) plans (plan.ts, pure) and applies (kernel.ts) when the
 * node list changed since the last successful apply, or when the last apply
 * is older than `resyncMs` (repairs a route someone deleted, notices a host
 * address that changed). The store hands out the same frozen list while no
 * Node changed, so most syncs (pod and policy changes) cost one comparison.
 * Invariants: a plan that holds writes nothing; a failed apply leaves `last`
 * as it was, so the next sync tries the whole plan again.
 * Concurrency: the agent calls sync from its runner, one at a time.
 */
import type { Logger } from '../../shared/log.ts'
import type { Problem } from '../dataplane/types.ts'
import type { Node } from '../model.ts'
import type { HostAddresses, RoutesApplied } from './kernel.ts'
import { planRoutes, type OverlayMode, type RoutePlan } from './plan.ts'

export interface RouteKernel {
  hostAddresses(): Promise<HostAddresses>
  apply(plan: RoutePlan, host: HostAddresses): Promise<RoutesApplied>
}

export interface RouterOptions {
  kernel: RouteKernel
  nodeName: string
  mode: OverlayMode
  log: Logger
  resyncMs?: number
  now?: () => number
}

export interface RouterStatus {
  mode: OverlayMode
  nodes: number
  routes: { dst: string; kind: string; via?: string }[]
  vxlanPeers: number
  hold: boolean
  problems: Problem[]
  lastApplyAt?: string
  lastError?: string
}

export class Router {
  private last?: RoutePlan
  private lastNodes?: readonly Node[]
  private lastApplyAt = -Infinity
  private problems: Problem[] = []
  private lastError?: string

  constructor(private readonly o: RouterOptions) {}

  async sync(nodes: readonly Node[]): Promise<void> {
    const now = this.o.now ?? Date.now
    const due = now() - this.lastApplyAt >= (this.o.resyncMs ?? 30_000)
    if (nodes === this.lastNodes && !due) return
    // a node with no Node objects ever seen (manifests mode) has nothing to route
    if (!nodes.length && !this.last) return
    try {
      const host = await this.o.kernel.hostAddresses()
      const plan = planRoutes({ self: this.o.nodeName, nodes, mode: this.o.mode, connected: host.connected, last: this.last })
      const applied = await this.o.kernel.apply(plan, host)
      this.report(plan, applied)
      this.last = plan
      this.lastNodes = nodes
      this.lastApplyAt = now()
      this.lastError = undefined
    } catch (e) {
      this.lastError = (e as Error).message
      throw e
    }
  }

  private report(plan: RoutePlan, applied: RoutesApplied): void {
    const problems = [...plan.problems, ...applied.problems]
    const before = new Set(this.problems.map((p) => JSON.stringify(p)))
    for (const p of problems) if (!before.has(JSON.stringify(p))) this.o.log.warn('routing problem', { ...p })
    this.problems = problems
    if (applied.added || applied.removed) this.o.log.info('routes between nodes programmed', { added: applied.added, removed: applied.removed, routes: plan.routes.length, vxlanPeers: plan.vxlan?.peers.length ?? 0 })
  }

  status(): RouterStatus {
    const plan = this.last
    return {
      mode: this.o.mode,
      nodes: this.lastNodes?.length ?? 0,
      routes: (plan?.routes ?? []).map((r) => ({ dst: r.dst, kind: r.kind, ...(r.kind !== 'blackhole' && { via: r.via }) })),
      vxlanPeers: plan?.vxlan?.peers.length ?? 0,
      hold: plan?.hold ?? false,
      problems: this.problems,
      ...(Number.isFinite(this.lastApplyAt) && { lastApplyAt: new Date(this.lastApplyAt).toISOString() }),
      ...(this.lastError && { lastError: this.lastError }),
    }
  }
}
