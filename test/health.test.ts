// Health: liveness from the event loop's heartbeat, readiness from the first
// sync and the sources' disconnections (fake clock); and the informers'
// "disconnected since" against the in-repo API server with the real client.
import t from 'tap'
import { Health, healthAnswer, type Disconnection } from '../enforcer/health.ts'
import type { Timers } from '../enforcer/runner.ts'
import { TestApiServer } from '../e2e/lib/apiserver.ts'
import { KubeSource } from '../enforcer/sources/kube.ts'
import { Store } from '../enforcer/store.ts'
import { nullLogger } from '../shared/log.ts'

/** A clock that moves only when told; due timers fire in order as it passes them. */
function fakeTimers() {
  let now = 1_000_000
  let seq = 0
  const due = new Map<number, { at: number; fn: () => void }>()
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => (due.set(++seq, { at: now + ms, fn }), seq),
    clearTimeout: (h) => void due.delete(h as number),
  }
  /** Time passes with the loop free: every timer fires when due. */
  const advance = (ms: number) => {
    const end = now + ms
    for (;;) {
      const next = [...due.entries()].sort((a, b) => a[1].at - b[1].at).find(([, d]) => d.at <= end)
      if (!next) break
      due.delete(next[0])
      now = Math.max(now, next[1].at)
      next[1].fn()
    }
    now = end
  }
  /** Time passes with the loop blocked: nothing fires until it ends. */
  const block = (ms: number) => void (now += ms)
  return { timers, advance, block }
}

function setup(o: { programmed?: boolean; disconnected?: Disconnection[] } = {}) {
  const clock = fakeTimers()
  const state = { programmed: o.programmed ?? true, disconnected: o.disconnected ?? [] }
  const health = new Health({ programmed: () => state.programmed, disconnected: () => state.disconnected, readyGraceMs: 60_000, timers: clock.timers })
  health.start()
  return { health, state, ...clock }
}

t.test('liveness: live while the heartbeat keeps time; a stall past 5 s fails it for 15 s', async (t) => {
  const { health, advance, block } = setup()
  advance(10_000)
  t.match(health.liveness(), { live: true, maxLoopLagMs: 0 })
  // a tick is due every 500 ms: blocked 3 s right after one, the next runs 2.5 s late
  block(3000)
  advance(600)
  t.equal(health.liveness().live, true, 'a 3 s stretch is no stall')
  t.equal(health.liveness().maxLoopLagMs, 2500)
  block(7000)
  const l = health.liveness()
  t.equal(l.live, false, 'asked before the overdue tick ran: the stall counts already')
  t.match(l.reason, /stalled 6600 ms \(more than 5000 ms\)/)
  advance(1000)
  t.equal(health.liveness().live, false, 'still within the window after the stall')
  advance(15_000)
  t.equal(health.liveness().live, true, 'the window has passed')
})

t.test('liveness: stop() disarms the heartbeat', async (t) => {
  const { health, advance } = setup()
  health.stop()
  advance(60_000)
  t.equal(health.liveness().live, true, 'a stopped heartbeat is not a stall')
})

t.test('readiness: the first sync, then disconnections past the grace period, each with its reason', async (t) => {
  const { health, state, advance } = setup({ programmed: false })
  t.same(health.readiness(), { ready: false, reasons: ['the first sync is not programmed yet'], disconnected: [] })
  state.programmed = true
  t.same(health.readiness(), { ready: true, reasons: [], disconnected: [] })
  const since = 1_000_000
  state.disconnected = [{ source: 'Pod', since, error: 'connect ECONNREFUSED 127.0.0.1:6443' }]
  advance(59_000)
  const within = health.readiness()
  t.equal(within.ready, true, 'within the grace period')
  t.match(within.disconnected, [{ source: 'Pod', since: new Date(since).toISOString(), forMs: 59_000 }])
  advance(2000)
  const past = health.readiness()
  t.equal(past.ready, false)
  t.same(past.reasons, ['Pod: no answer from the API for 61 s (grace 60 s): connect ECONNREFUSED 127.0.0.1:6443'])
  state.disconnected = []
  t.equal(health.readiness().ready, true, 'back once the source answers again')
})

t.test('healthAnswer: codes and paths', async (t) => {
  const { health, state } = setup({ programmed: false })
  t.equal(healthAnswer(health, '/healthz')?.code, 200)
  t.equal(healthAnswer(health, '/readyz')?.code, 503)
  state.programmed = true
  t.equal(healthAnswer(health, '/readyz')?.code, 200)
  t.equal(healthAnswer(health, '/status'), undefined)
})

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('informers: disconnected from the first error of a run, cleared when a watch is accepted (no event needed)', async (t) => {
  const api = new TestApiServer()
  await api.start()
  t.teardown(() => api.close())
  const source = new KubeSource({ kubeConfig: api.kubeConfig(), store: new Store({ log: nullLogger }), log: nullLogger, backoff: { initialMs: 20, maxMs: 100 } })
  t.teardown(() => source.stop())
  await source.start()
  const kinds = Object.keys(source.stats()).length
  await waitFor('every watch', () => api.watchCount() === kinds)
  t.same(source.disconnected(), [])
  // every re-watch fails until told otherwise: each kind goes disconnected once, and stays so across its retries
  api.failNext(1_000_000, 503)
  const before = Date.now()
  api.dropWatches({ abrupt: true })
  await waitFor('every kind disconnected', () => source.disconnected().length === kinds)
  const first = source.disconnected()
  for (const d of first) {
    t.ok(d.since >= before && d.since <= Date.now(), `${d.source}: since the first error`)
    t.ok(d.error, `${d.source}: with the last error`)
  }
  await waitFor('a second error per kind', () => Object.values(source.stats()).every((s) => s.errors >= 2))
  t.same(
    source.disconnected().map((d) => d.since),
    first.map((d) => d.since),
    'later errors of the same run keep the first time',
  )
  // the API answers again: the watches are accepted on a quiet server (no event, no bookmark)
  api.failNext(0)
  await waitFor('every kind connected again', () => source.disconnected().length === 0)
  t.equal(api.watchCount(), kinds)
  for (const s of Object.values(source.stats())) t.equal(s.disconnectedSince, undefined)
})
