/*
 * Health: what the kubelet's probes ask the agent.
 *
 * Model: liveness is about the event loop. A heartbeat timer is due every
 * `heartbeatMs`; a tick later than that by more than `stallMs` is a stall,
 * and the agent reports not-live for `stallWindowMs` after it. A loop blocked
 * right now cannot answer at all (the probe times out, which the kubelet
 * counts as a failure); the window makes a loop that keeps stalling between
 * probes visible too. Readiness: the first sync is in the kernel, and no
 * source has been unable to reach the API for longer than `readyGraceMs`.
 * Goals: a restart only for an agent that is stuck (a slow sync or an API
 * outage is no reason to restart: the kernel keeps the last programmed
 * rules); not-ready, with the reason in the body, while the node's rules may
 * be stale, which is also what holds back a rolling update.
 * Invariants: answers are computed from injected checks and the clock only;
 * constructor starts nothing, start() arms the heartbeat, stop() disarms it.
 * Concurrency: single event loop; the heartbeat timer is unref'd.
 */
import type { Server } from 'node:http'
import { http } from '../shared/node-http.ts'
import { realTimers, type Timers } from './runner.ts'

export interface Disconnection {
  /** e.g. the informer's kind: "Pod". */
  source: string
  /** Epoch ms of the first failure since the API last answered. */
  since: number
  error?: string
}

export interface HealthOptions {
  /** True once the first sync has been applied to the kernel. */
  programmed: () => boolean
  /** Sources that cannot reach the API now. */
  disconnected: () => Disconnection[]
  readyGraceMs: number
  heartbeatMs?: number
  stallMs?: number
  stallWindowMs?: number
  timers?: Timers
}

export interface Liveness {
  live: boolean
  /** Longest heartbeat delay seen in the last window. */
  maxLoopLagMs: number
  reason?: string
}

export interface Readiness {
  ready: boolean
  /** Why not ready, one line each; empty when ready. */
  reasons: string[]
  /** Sources disconnected now, including those still within the grace period. */
  disconnected: { source: string; since: string; forMs: number; error?: string }[]
}

const HEARTBEAT_MS = 500
/** Far above the longest synchronous stretch of a sync (list + cold sync of 10,000 realistic pods takes 2-2.7 s in all), far below the probe's patience. */
const STALL_MS = 5000
const STALL_WINDOW_MS = 15_000

export class Health {
  private readonly timers: Timers
  private readonly heartbeatMs: number
  private readonly stallMs: number
  private readonly windowMs: number
  private timer: unknown
  private lastTick = 0
  /** Heartbeat delays above nothing, newest last, kept for one window: [at, lagMs]. */
  private lags: [number, number][] = []

  constructor(private readonly o: HealthOptions) {
    this.timers = o.timers ?? realTimers
    this.heartbeatMs = o.heartbeatMs ?? HEARTBEAT_MS
    this.stallMs = o.stallMs ?? STALL_MS
    this.windowMs = o.stallWindowMs ?? STALL_WINDOW_MS
  }

  start(): void {
    this.lastTick = this.timers.now()
    this.arm()
  }

  stop(): void {
    this.timers.clearTimeout(this.timer)
    this.timer = undefined
  }

  private arm(): void {
    const t = this.timers.setTimeout(() => this.tick(), this.heartbeatMs) as { unref?: () => void }
    t?.unref?.()
    this.timer = t
  }

  private tick(): void {
    const now = this.timers.now()
    const lag = now - this.lastTick - this.heartbeatMs
    if (lag > 0) this.lags.push([now, lag])
    this.forget(now)
    this.lastTick = now
    this.arm()
  }

  private forget(now: number): void {
    while (this.lags.length && now - this.lags[0]![0] > this.windowMs) this.lags.shift()
  }

  liveness(): Liveness {
    const now = this.timers.now()
    this.forget(now)
    // the tick that is late right now (a handler can run before the overdue timer does)
    const current = this.timer === undefined ? 0 : Math.max(0, now - this.lastTick - this.heartbeatMs)
    const maxLoopLagMs = Math.max(current, ...this.lags.map(([, lag]) => lag))
    if (maxLoopLagMs <= this.stallMs) return { live: true, maxLoopLagMs }
    return { live: false, maxLoopLagMs, reason: `the event loop stalled ${maxLoopLagMs} ms (more than ${this.stallMs} ms) in the last ${this.windowMs / 1000} s` }
  }

  readiness(): Readiness {
    const now = this.timers.now()
    const reasons: string[] = []
    if (!this.o.programmed()) reasons.push('the first sync is not programmed yet')
    const disconnected = this.o.disconnected().map((d) => ({ source: d.source, since: new Date(d.since).toISOString(), forMs: now - d.since, ...(d.error !== undefined && { error: d.error }) }))
    for (const d of disconnected) {
      if (d.forMs > this.o.readyGraceMs) reasons.push(`${d.source}: no answer from the API for ${Math.round(d.forMs / 1000)} s (grace ${this.o.readyGraceMs / 1000} s)${d.error ? `: ${d.error}` : ''}`)
    }
    return { ready: reasons.length === 0, reasons, disconnected }
  }
}

/** The answer to a /healthz or /readyz request, or undefined for another path. */
export function healthAnswer(health: Health, path: string): { code: number; body: Liveness | Readiness } | undefined {
  if (path === '/healthz') {
    const l = health.liveness()
    return { code: l.live ? 200 : 503, body: l }
  }
  if (path === '/readyz') {
    const r = health.readiness()
    return { code: r.ready ? 200 : 503, body: r }
  }
  return undefined
}

/**
 * /healthz and /readyz on TCP for the kubelet. Bound to 127.0.0.1: the agent
 * runs on the host network, where the kubelet's probe (host: 127.0.0.1)
 * reaches it and nothing off the node can.
 */
export async function serveHealth(health: Health, port: number, host = '127.0.0.1'): Promise<Server> {
  const server = http.createServer((req, res) => {
    const answer = req.method === 'GET' || req.method === 'HEAD' ? healthAnswer(health, new URL(req.url ?? '/', 'http://agent').pathname) : undefined
    if (!answer) return res.writeHead(404, { 'content-type': 'text/plain' }).end('only /healthz and /readyz here\n')
    res.writeHead(answer.code, { 'content-type': 'application/json' })
    res.end(JSON.stringify(answer.body) + '\n')
  })
  await new Promise<void>((resolve, reject) =>
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot serve health on ${host}:${port} (--health-port): ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`))).listen(port, host, () => resolve()),
  )
  return server
}
