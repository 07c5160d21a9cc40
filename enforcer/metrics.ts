// Prometheus metrics of the agent (prom-client). Served on the control socket
// at /metrics and, with --metrics-port, on TCP for a scraper.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { MetricsSink } from './metrics-deferred.ts'

export class AgentMetrics implements MetricsSink {
  readonly registry = new Registry()
  private readonly applies = new Counter({ name: 'wren_applies_total', help: 'Dataplane applies by result', labelNames: ['result'], registers: [this.registry] })
  private readonly duration = new Histogram({
    name: 'wren_apply_duration_seconds',
    help: 'Compile + apply time of one sync',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })
  private readonly workloads = new Gauge({ name: 'wren_workloads_programmed', help: 'Local workloads whose chains are in the kernel', registers: [this.registry] })
  private readonly problems = new Gauge({ name: 'wren_policy_problems', help: 'Objects wren cannot honour (their pods are isolated)', registers: [this.registry] })
  private readonly generation = new Gauge({ name: 'wren_applied_generation', help: 'Store generation last programmed', registers: [this.registry] })
  readonly objects = new Gauge({ name: 'wren_store_objects', help: 'Objects known, by kind', labelNames: ['kind'], registers: [this.registry] })

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'wren_' })
  }

  applied(generation: number, seconds: number, workloads: number, problems: number): void {
    this.applies.inc({ result: 'ok' })
    this.duration.observe(seconds)
    this.workloads.set(workloads)
    this.problems.set(problems)
    this.generation.set(generation)
  }

  failed(): void {
    this.applies.inc({ result: 'error' })
  }

  storeCounts(counts: Record<string, number>): void {
    for (const [kind, n] of Object.entries(counts)) if (!kind.includes('/')) this.objects.set({ kind }, n)
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }
}
