// RecordSource on a real temp state folder, with records written the way the
// plugin writes them (shared/record.ts).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { RecordSource } from '../enforcer/sources/records.ts'
import { Store } from '../enforcer/store.ts'
import { createLogger } from '../shared/log.ts'
import { removeRecord, workloadsDir, writeRecord, type WorkloadRecord } from '../shared/record.ts'

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function record(id: string, pod: string, ips: string[]): WorkloadRecord {
  return { containerId: id, ifname: 'eth0', network: 'wren', namespace: 'prod', pod, podUid: `uid-${id}`, netns: `/var/run/netns/${id}`, hostIface: `wren${id.padEnd(11, '0')}`, ips, mac: '02:00:00:00:00:01', created: new Date().toISOString() }
}

async function setup(t: Test) {
  const stateDir = mkdtempSync(join(tmpdir(), 'wren-records-'))
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }))
  const lines: any[] = []
  const log = createLogger((l) => lines.push(JSON.parse(l)), 'debug')
  const store = new Store({ log })
  const source = new RecordSource(stateDir, store, log, { debounceMs: 10, pollMs: 0 })
  t.teardown(() => source.stop())
  return { stateDir, store, source, lines }
}

t.test('creates the folder and starts empty', async (t) => {
  const { stateDir, source, store } = await setup(t)
  t.notOk(existsSync(workloadsDir(stateDir)))
  await source.start()
  t.ok(existsSync(workloadsDir(stateDir)))
  t.equal(source.synced, true)
  t.same(store.snapshot().workloads, [])
})

t.test('records written and removed by the plugin become workloads', async (t) => {
  const { stateDir, source, store } = await setup(t)
  writeRecord(stateDir, record('aaa', 'web', ['10.0.0.5', 'fd00::5']))
  await source.start()
  t.same(store.snapshot().workloads, [{ hostIface: 'wrenaaa00000000', namespace: 'prod', pod: 'web', ips: ['10.0.0.5', 'fd00::5'] }])
  writeRecord(stateDir, record('bbb', 'db', ['10.0.0.6']))
  await waitFor('second record', () => store.snapshot().workloads.length === 2)
  removeRecord(stateDir, 'aaa', 'eth0')
  await waitFor('removal', () => store.snapshot().workloads.length === 1)
  t.equal(store.snapshot().workloads[0].pod, 'db')
})

t.test('rescan() sees a record at once, without waiting for the watch', async (t) => {
  const { stateDir, source, store } = await setup(t)
  await source.start()
  writeRecord(stateDir, record('ccc', 'api', ['10.0.0.7']))
  await source.rescan()
  t.equal(store.snapshot().workloads.length, 1)
})

t.test('temp files are ignored; corrupt or malformed records are logged, not fatal', async (t) => {
  const { stateDir, source, store, lines } = await setup(t)
  await source.start()
  const dir = workloadsDir(stateDir)
  writeFileSync(join(dir, 'ddd_eth0.json.123.tmp'), '{"half":')
  writeFileSync(join(dir, 'eee_eth0.json'), '{ not json')
  writeFileSync(join(dir, 'fff_eth0.json'), JSON.stringify({ containerId: 'fff', ifname: 'eth0', ips: 'nope' }))
  writeRecord(stateDir, record('ggg', 'ok', ['10.0.0.8']))
  await source.rescan()
  t.same(store.snapshot().workloads.map((w) => w.pod), ['ok'])
  t.ok(lines.some((l) => l.level === 'error' && l.file === 'eee_eth0.json'), 'unparsable record named')
  t.ok(lines.some((l) => l.level === 'error' && l.file === 'fff_eth0.json'), 'malformed record named')
  t.notOk(lines.some((l) => String(l.file).includes('.tmp')), 'temp file never read')
})

t.test('a rescan that finds nothing new is not a change', async (t) => {
  const { stateDir, source, store } = await setup(t)
  writeRecord(stateDir, record('hhh', 'x', ['10.0.0.9']))
  await source.start()
  const gen = store.generation
  writeRecord(stateDir, { ...record('hhh', 'x', ['10.0.0.9']), created: 'later' })
  await source.rescan()
  t.equal(store.generation, gen)
})

t.test('the pod IP comes from the record when the pod has none (manifest pods)', async (t) => {
  const { stateDir, source, store } = await setup(t)
  store.upsert('Pod', { metadata: { name: 'web', namespace: 'prod', labels: { app: 'web' } }, spec: {} }, 'manifests')
  t.same(store.snapshot().pods, [], 'no IP, not on this node: not in the snapshot')
  writeRecord(stateDir, record('iii', 'web', ['10.0.0.10']))
  await source.start()
  const pods = store.snapshot().pods
  t.equal(pods.length, 1)
  t.same(pods[0].status, { podIP: '10.0.0.10', podIPs: [{ ip: '10.0.0.10' }] })
})
