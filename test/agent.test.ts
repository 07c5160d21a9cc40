// The agent's contract with the plugin and with `status --wait-synced`:
// nothing is written before the sources are in sync, a waiter resolves only
// once its generation is in the kernel, a failed apply is retried, and an
// interface whose pod is unknown is never reported programmed.
import t from 'tap'
import { Agent, DRIFT_CHECK_MS, type Source, type Writer } from '../enforcer/agent.ts'
import { Store } from '../enforcer/store.ts'
import { DEFAULT_ENFORCER_CONFIG } from '../enforcer/model.ts'
import type { DesiredState } from '../enforcer/dataplane/types.ts'
import { nullLogger } from '../shared/log.ts'

class FakeSource implements Source {
  synced = false
  rescans = 0
  private release!: () => void
  private ready = new Promise<void>((r) => (this.release = r))
  constructor(private readonly onRescan: () => void = () => {}) {}
  start() {
    return this.ready.then(() => {
      this.synced = true
    })
  }
  finishInitialSync() {
    this.release()
  }
  async rescan() {
    this.rescans++
    this.onRescan()
  }
  async stop() {}
}

/** The writer's side of the agent: applies recorded, kernel reads answered as the test says. */
class FakeWriter implements Writer {
  applies: DesiredState[] = []
  invalidations = 0
  failNext = 0
  prefetches = 0
  refreshes = 0
  /** What prefetch does; by default the read succeeds. */
  prefetchWith = async () => {}
  /** What a drift read beside the applies does; by default it is kept. */
  refreshWith = async () => true
  invalidate() {
    this.invalidations++
  }
  prefetch() {
    this.prefetches++
    return this.prefetchWith()
  }
  refresh() {
    this.refreshes++
    return this.refreshWith()
  }
  async apply(s: DesiredState) {
    if (this.failNext > 0) {
      this.failNext--
      throw new Error('iptables-restore: simulated failure')
    }
    this.applies.push(s)
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms))

const ns = { metadata: { name: 'demo', labels: {} } }
const pod = (name: string) => ({ metadata: { name, namespace: 'demo', labels: { app: name } }, spec: { containers: [] } })
const workload = (name: string, iface: string, ip: string) => ({ hostIface: iface, namespace: 'demo', pod: name, ips: [ip] })

function setup(t: any, now?: () => number, writer = new FakeWriter()) {
  const store = new Store({ log: nullLogger })
  const cluster = new FakeSource()
  const records = new FakeSource()
  const agent = new Agent({ store, sources: [cluster, records], records, writer, config: DEFAULT_ENFORCER_CONFIG, log: nullLogger, now })
  t.teardown(() => agent.stop())
  return { store, cluster, records, writer, agent }
}

t.test('no kernel write before every source finished its initial sync', async (t) => {
  const { store, cluster, records, writer, agent } = setup(t)
  const started = agent.start()
  records.finishInitialSync()
  store.upsert('Namespace', ns)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(writer.applies.length, 0, 'cluster source still listing: nothing applied')
  cluster.finishInitialSync()
  await started
  t.ok(await agent.waitSynced(2000), 'synced after the initial sync')
  t.ok(writer.applies.length >= 1)
})

t.test('waitSynced rescans every source and waits for the generation it saw', async (t) => {
  const { store, cluster, records, writer, agent } = setup(t)
  cluster.finishInitialSync()
  records.finishInitialSync()
  await agent.start()
  await agent.waitSynced(2000)
  const before = cluster.rescans
  store.upsert('Namespace', ns)
  store.upsert('Pod', pod('web'))
  store.setWorkloads([workload('web', 'wren0000000001', '10.97.0.2')])
  t.ok(await agent.waitSynced(2000))
  t.equal(cluster.rescans, before + 1, 'the cluster source was rescanned')
  t.same(writer.applies.at(-1)!.workloads, ['wren0000000001'], 'the last apply carries the new workload')
})

t.test('waitProgrammed: true once the workload has chains, false for a pod nobody knows', async (t) => {
  const { store, cluster, records, agent } = setup(t)
  cluster.finishInitialSync()
  records.finishInitialSync()
  await agent.start()
  store.upsert('Namespace', ns)
  store.upsert('Pod', pod('web'))
  store.setWorkloads([workload('web', 'wren0000000001', '10.97.0.2'), workload('ghost', 'wren0000000002', '10.97.0.3')])
  t.equal(await agent.waitProgrammed('wren0000000001', 2000), true)
  t.equal(await agent.waitProgrammed('wren0000000002', 200), false, 'unknown pod: fail closed, never reported programmed')
  store.upsert('Pod', pod('ghost'))
  t.equal(await agent.waitProgrammed('wren0000000002', 2000), true, 'programmed once its pod is known')
})

t.test('a failed apply is retried and waiters resolve after the retry', async (t) => {
  const { store, cluster, records, writer, agent } = setup(t)
  cluster.finishInitialSync()
  records.finishInitialSync()
  await agent.start()
  await agent.waitSynced(2000)
  writer.failNext = 1
  store.upsert('Namespace', ns)
  const t0 = Date.now()
  t.ok(await agent.waitSynced(5000), 'synced despite one failure')
  t.ok(Date.now() - t0 >= 900, 'the retry came after the retry interval')
  t.match(agent.status(), { synced: true, lastError: undefined })
})

t.test('the kernel is re-read by the periodic drift check, not by every sync', async (t) => {
  let clock = 1_000_000
  const { store, cluster, records, writer, agent } = setup(t, () => clock)
  cluster.finishInitialSync()
  records.finishInitialSync()
  await agent.start()
  await agent.waitSynced(2000)
  store.upsert('Namespace', ns)
  await agent.waitSynced(2000)
  await agent.runner.whenIdle()
  t.equal(writer.refreshes, 0, "the read ahead of the first sync counts as the drift check's; edits diff against the cache")
  clock += DRIFT_CHECK_MS
  store.upsert('Pod', pod('web'))
  await agent.waitSynced(2000)
  await agent.runner.whenIdle()
  t.equal(writer.refreshes, 1, 'the drift interval passed: one read, after the sync carrying the change')
  t.equal(writer.invalidations, 0, 'a kept read: no sync reads the kernel itself')
  t.equal(writer.applies.length, 4, 'initial, edit, change, the sync repairing drift')
})

t.test('a drift read beside the syncs holds up no change; kept, a sync after it repairs drift', async (t) => {
  let clock = 1_000_000
  const { store, cluster, records, writer, agent } = setup(t, () => clock)
  const reads: ((kept: boolean) => void)[] = []
  writer.refreshWith = () => new Promise<boolean>((resolve) => reads.push(resolve))
  cluster.finishInitialSync()
  records.finishInitialSync()
  await agent.start()
  await agent.waitSynced(2000)
  clock += DRIFT_CHECK_MS
  store.upsert('Namespace', ns)
  await agent.waitSynced(2000)
  t.equal(reads.length, 1, 'the drift read starts once the sync that found it due is applied')
  store.upsert('Pod', pod('web'))
  t.ok(await agent.waitSynced(2000), 'a change is applied while the read is still out')
  const applied = writer.applies.length
  reads.shift()!(true)
  await delay(20)
  await agent.runner.whenIdle()
  t.equal(writer.applies.length, applied + 1, 'a kept read: one more sync diffs against it')
  t.equal(writer.invalidations, 0, 'no sync read the kernel itself')

  clock += DRIFT_CHECK_MS
  store.upsert('Pod', pod('db'))
  await agent.waitSynced(2000)
  for (let i = 1; i <= 3; i++) {
    for (let w = 0; w < 200 && !reads.length; w++) await delay(10)
    t.equal(reads.length, 1, `read ${i} of the drift check`)
    reads.shift()!(false) // an apply overlapped it: not kept
  }
  await delay(20)
  await agent.runner.whenIdle()
  t.equal(writer.invalidations, 1, 'three reads overlapped by applies: the next sync reads the kernel itself')
  t.equal(reads.length, 0, 'and no more reads are started')
})

t.test('a writer that reads the kernel while the sources load is not made to read it again', async (t) => {
  for (const fails of [false, true]) {
    let sourcesDone = false
    const read = async () => {
      t.notOk(sourcesDone, 'the prefetch starts before the sources finish')
      if (fails) throw new Error('iptables-nft-save: simulated failure')
    }
    const { cluster, records, writer, agent } = setup(t)
    writer.prefetchWith = read
    const started = agent.start()
    setTimeout(() => {
      sourcesDone = true
      cluster.finishInitialSync()
      records.finishInitialSync()
    }, 20)
    await started
    t.ok(await agent.waitSynced(2000), 'synced')
    t.equal(writer.prefetches, 1, 'prefetched once')
    await agent.runner.whenIdle()
    t.equal(writer.refreshes, fails ? 1 : 0, fails ? 'a failed prefetch: the drift check reads the kernel right after the first sync' : "the prefetched read counts as the drift check's")
    await agent.stop()
  }
})
