// Runner behaviour under a fake clock: coalescing, max delay, retry with
// backoff, resync, no overlap, and the applied()/sync()/whenIdle() waits.
import t, { type Test } from 'tap'
import { Runner, type RunInfo, type Timers } from '../enforcer/runner.ts'

/** A manual clock: advance() fires due timers in order, letting promises settle between them. */
class FakeClock implements Timers {
  private t = 0
  private seq = 0
  private timers = new Map<number, { due: number; fn: () => void }>()
  now = () => this.t
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.seq
    this.timers.set(id, { due: this.t + ms, fn })
    return id
  }
  clearTimeout = (h: unknown) => {
    this.timers.delete(h as number)
  }
  pending(): number {
    return this.timers.size
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      await settle()
      const next = [...this.timers.entries()].filter(([, x]) => x.due <= end).sort((a, b) => a[1].due - b[1].due || a[0] - b[0])[0]
      if (!next) break
      this.timers.delete(next[0])
      this.t = next[1].due
      next[1].fn()
    }
    this.t = end
    await settle()
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

/** A run function that records calls and can be told to fail or to hang. */
function recorder(clock: FakeClock) {
  const calls: { at: number; info: RunInfo }[] = []
  let failuresLeft = 0
  let active = 0
  let maxActive = 0
  let hold: Promise<void> | undefined
  const run = async (info: RunInfo) => {
    calls.push({ at: clock.now(), info })
    active++
    maxActive = Math.max(maxActive, active)
    try {
      if (hold) await hold
      if (failuresLeft > 0) {
        failuresLeft--
        throw new Error('dataplane busy')
      }
    } finally {
      active--
    }
  }
  return {
    run,
    calls,
    failNext: (n: number) => (failuresLeft = n),
    holdWith: (p: Promise<void> | undefined) => (hold = p),
    maxActive: () => maxActive,
  }
}

function setup(t: Test, opts: Partial<ConstructorParameters<typeof Runner>[0]> = {}) {
  const clock = new FakeClock()
  const rec = recorder(clock)
  const runner = new Runner({ run: rec.run, minIntervalMs: 20, maxDelayMs: 200, retryMs: 1000, maxRetryMs: 4000, timers: clock, ...opts })
  t.teardown(() => runner.stop().catch(() => {}))
  return { clock, rec, runner }
}

t.test('constructor arms nothing; nothing runs before start()', async (t) => {
  const { clock, rec, runner } = setup(t, { resyncMs: 1000 })
  t.equal(clock.pending(), 0)
  runner.trigger()
  await clock.advance(5000)
  t.equal(rec.calls.length, 0)
  runner.start()
  await clock.advance(20)
  t.equal(rec.calls.length, 1, 'trigger before start is honoured at start')
})

t.test('a burst of 100 triggers is one run, after the quiet period', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  for (let i = 0; i < 100; i++) runner.trigger()
  await clock.advance(19)
  t.equal(rec.calls.length, 0, 'not before minInterval')
  await clock.advance(1)
  t.equal(rec.calls.length, 1)
  await clock.advance(10_000)
  t.equal(rec.calls.length, 1, 'no further run without trigger')
  t.same(rec.calls[0].info, { seq: 1, reason: 'change' })
})

t.test('a steady stream cannot postpone past maxDelay', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  for (let i = 0; i < 50; i++) {
    runner.trigger()
    await clock.advance(10) // always inside the quiet period
  }
  // 500ms of triggers every 10ms: runs at 200 and then every ~200ms, not zero times
  t.ok(rec.calls.length >= 2, `ran ${rec.calls.length} times`)
  t.equal(rec.calls[0].at, 200, 'first run at firstTrigger + maxDelay')
})

t.test('runs are spaced by minInterval after the previous one ended', async (t) => {
  const { clock, rec, runner } = setup(t, { minIntervalMs: 50, maxDelayMs: 50 })
  runner.start()
  runner.trigger()
  await clock.advance(50)
  t.equal(rec.calls.length, 1)
  runner.trigger()
  await clock.advance(49)
  t.equal(rec.calls.length, 1)
  await clock.advance(1)
  t.equal(rec.calls.length, 2)
})

t.test('never two runs at once; a trigger during a run causes one more run', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  let release!: () => void
  rec.holdWith(new Promise<void>((r) => (release = r)))
  runner.trigger()
  await clock.advance(20)
  t.equal(rec.calls.length, 1)
  for (let i = 0; i < 10; i++) runner.trigger()
  await clock.advance(1000)
  t.equal(rec.calls.length, 1, 'held run blocks the next')
  rec.holdWith(undefined)
  release()
  await clock.advance(20)
  t.equal(rec.calls.length, 2)
  t.equal(rec.maxActive(), 1)
})

t.test('a failed run is retried after retryMs, doubling up to maxRetryMs', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  rec.failNext(4)
  runner.trigger()
  await clock.advance(20)
  await clock.advance(999)
  t.equal(rec.calls.length, 1, 'no retry before retryMs')
  await clock.advance(1)
  t.equal(rec.calls.length, 2)
  t.equal(rec.calls[1].info.reason, 'retry')
  await clock.advance(2000)
  t.equal(rec.calls.length, 3, 'second retry after 2000')
  await clock.advance(4000)
  t.equal(rec.calls.length, 4, 'third after 4000')
  await clock.advance(4000)
  t.equal(rec.calls.length, 5, 'capped at maxRetryMs')
  t.equal(runner.stats().consecutiveFailures, 0, 'fifth succeeded')
  t.equal(runner.stats().failures, 4)
  await clock.advance(60_000)
  t.equal(rec.calls.length, 5, 'no more runs once it succeeded')
})

t.test('triggers during a failure backoff do not hammer the failing run', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  rec.failNext(1)
  runner.trigger()
  await clock.advance(20)
  for (let i = 0; i < 20; i++) {
    runner.trigger()
    await clock.advance(25)
  }
  t.equal(rec.calls.length, 1, 'waits for the retry time')
  await clock.advance(500)
  t.equal(rec.calls.length, 2)
})

t.test('resync runs periodically when nothing else runs', async (t) => {
  const { clock, rec, runner } = setup(t, { resyncMs: 1000 })
  runner.start()
  await clock.advance(1020)
  t.equal(rec.calls.length, 1)
  t.equal(rec.calls[0].info.reason, 'resync')
  await clock.advance(500)
  runner.trigger()
  await clock.advance(20)
  t.equal(rec.calls.length, 2)
  await clock.advance(999)
  t.equal(rec.calls.length, 2, 'a change run postpones the resync')
  await clock.advance(21)
  t.equal(rec.calls.length, 3)
  t.equal(rec.calls[2].info.reason, 'resync')
})

t.test('applied() waits for a run that started after the call', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  let release!: () => void
  rec.holdWith(new Promise<void>((r) => (release = r)))
  runner.trigger()
  await clock.advance(20) // run 1 in flight
  let done = false
  const p = runner.applied().then(() => (done = true))
  rec.holdWith(undefined)
  release()
  await clock.advance(0)
  t.equal(done, false, 'the run in flight at call time does not count')
  runner.trigger()
  rec.failNext(1)
  await clock.advance(20)
  t.equal(done, false, 'a failed run does not count')
  await clock.advance(1000)
  await p
  t.equal(done, true)
  t.equal(rec.calls.length, 3)
})

t.test('sync() triggers and resolves after that run; whenIdle() after the queue drains', async (t) => {
  const { clock, rec, runner } = setup(t)
  runner.start()
  await runner.whenIdle()
  let synced = false
  let idle = false
  runner.sync().then(() => (synced = true))
  runner.whenIdle().then(() => (idle = true))
  await clock.advance(19)
  t.equal(synced || idle, false)
  await clock.advance(1)
  t.equal(synced, true)
  t.equal(idle, true)
  t.equal(rec.calls.length, 1)
})

t.test('stop() rejects waiters, cancels timers and waits for the run in flight', async (t) => {
  const { clock, rec, runner } = setup(t, { resyncMs: 1000 })
  runner.start()
  let release!: () => void
  rec.holdWith(new Promise<void>((r) => (release = r)))
  runner.trigger()
  await clock.advance(20)
  const waiting = runner.applied()
  let stopped = false
  const s = runner.stop().then(() => (stopped = true))
  await t.rejects(waiting, /runner stopped/)
  await clock.advance(0)
  t.equal(stopped, false, 'waits for the run in flight')
  release()
  await s
  t.equal(clock.pending(), 0, 'no timer left')
  runner.trigger()
  await clock.advance(10_000)
  t.equal(rec.calls.length, 1)
  await t.rejects(runner.applied(), /runner stopped/)
})
