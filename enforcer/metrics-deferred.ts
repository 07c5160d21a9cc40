// The agent's metrics, with prom-client loaded only after the first apply: it
// costs ~50 ms of start-up (crypto, inspect, OpenTelemetry) that would
// otherwise come before the first rule is in the kernel. Until then the agent's
// calls are queued (a handful: the first sync's) and replayed in order.
import type { AgentMetrics } from './metrics.ts'

/** What the agent reports; AgentMetrics (prom-client) implements it. */
export interface MetricsSink {
  applied(generation: number, seconds: number, workloads: number, problems: number): void
  failed(): void
  storeCounts(counts: Record<string, number>): void
}

export class DeferredMetrics implements MetricsSink {
  private real: AgentMetrics | undefined
  private queued: ((m: AgentMetrics) => void)[] = []
  private loading: Promise<AgentMetrics> | undefined

  /** Loads prom-client and replays what was queued; idempotent. */
  load(): Promise<AgentMetrics> {
    return (this.loading ??= import('./metrics.ts').then(({ AgentMetrics }) => {
      const m = new AgentMetrics()
      for (const call of this.queued) call(m)
      this.queued = []
      this.real = m
      return m
    }))
  }

  applied(generation: number, seconds: number, workloads: number, problems: number): void {
    this.call((m) => m.applied(generation, seconds, workloads, problems))
  }

  failed(): void {
    this.call((m) => m.failed())
  }

  storeCounts(counts: Record<string, number>): void {
    this.call((m) => m.storeCounts(counts))
  }

  /** The exposition text; loads the metrics first if nothing has yet. */
  async text(): Promise<string> {
    return (await this.load()).text()
  }

  private call(f: (m: AgentMetrics) => void): void {
    if (this.real) f(this.real)
    else this.queued.push(f)
  }
}
