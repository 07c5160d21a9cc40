// KubeSource against the in-repo API server, with the real
// @kubernetes/client-node client: initial sync, events, reconnects, relist on
// 410 Gone, restarts after errors.
import t, { type Test } from 'tap'
import { TestApiServer } from '../e2e/lib/apiserver.ts'
import { KubeSource } from '../enforcer/sources/kube.ts'
import { Store } from '../enforcer/store.ts'
import { createLogger, type Logger } from '../shared/log.ts'

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function captureLog(): { log: Logger; lines: any[] } {
  const lines: any[] = []
  return { log: createLogger((l) => lines.push(JSON.parse(l)), 'debug'), lines }
}

const ns = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels } })
const pod = (namespace: string, name: string, ip?: string, nodeName = 'node-a') => ({
  metadata: { namespace, name, labels: { app: name } },
  spec: { nodeName, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }] },
  status: ip ? { phase: 'Running', podIP: ip, podIPs: [{ ip }] } : { phase: 'Pending' },
})
const policy = (namespace: string, name: string, app = 'web') => ({
  metadata: { namespace, name },
  spec: { podSelector: { matchLabels: { app } }, policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 80 }] }] },
})

async function setup(t: Test, opts: { nodeName?: string } = {}) {
  const api = new TestApiServer({ bookmarkIntervalMs: 50 })
  await api.start()
  t.teardown(() => api.close())
  const { log, lines } = captureLog()
  const store = new Store({ log, nodeName: opts.nodeName })
  const source = new KubeSource({ kubeConfig: api.kubeConfig(), store, log, nodeName: opts.nodeName, backoff: { initialMs: 20, maxMs: 100 } })
  t.teardown(() => source.stop())
  return { api, store, source, lines }
}

t.test('initial list: synced, objects normalised into the store', async (t) => {
  const { api, store, source } = await setup(t)
  api.create('Namespace', ns('prod', { team: 'a' }))
  api.create('Pod', pod('prod', 'web', '10.0.0.5'))
  api.create('NetworkPolicy', policy('prod', 'allow-web'))
  t.equal(source.synced, false)
  await source.start()
  t.equal(source.synced, true)
  t.same(store.get('Namespace', undefined, 'prod')?.metadata.labels, { team: 'a' })
  const p = store.get('Pod', 'prod', 'web')!
  t.same(p.status, { phase: 'Running', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }] })
  t.same(p.spec?.containers, [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }])
  t.notOk('creationTimestamp' in p.metadata, 'only the fields policy reads')
  t.ok(p.metadata.uid && p.metadata.resourceVersion)
  t.same(store.get('NetworkPolicy', 'prod', 'allow-web')?.spec, policy('prod', 'allow-web').spec, 'ipBlock.except survives the client')
  t.equal(Object.getPrototypeOf(p), Object.prototype, 'plain objects, not client classes')
  t.same(source.stats().Pod.lists, 1)
})

t.test('rescan is a barrier: the store holds what the API server holds, while watch events are held back', async (t) => {
  const { api, store, source } = await setup(t)
  api.create('Pod', pod('prod', 'old', '10.0.0.7'))
  await source.start()
  await waitFor('a watch per kind', () => api.watchCount() === 4)
  api.holdWatches()
  api.create('NetworkPolicy', policy('prod', 'late'))
  api.update('Pod', { ...pod('prod', 'old', '10.0.0.7'), metadata: { namespace: 'prod', name: 'old', labels: { app: 'changed' } } })
  api.create('Pod', pod('prod', 'new', '10.0.0.8'))
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(store.get('NetworkPolicy', 'prod', 'late'), 'no event has arrived')
  await source.rescan()
  t.ok(store.get('NetworkPolicy', 'prod', 'late'), 'a created policy is there after rescan')
  t.same(store.get('Pod', 'prod', 'old')?.metadata.labels, { app: 'changed' }, 'an update too')
  t.ok(store.get('Pod', 'prod', 'new'), 'and a new pod')
  api.delete('Pod', { metadata: { namespace: 'prod', name: 'old' } })
  await source.rescan()
  t.notOk(store.get('Pod', 'prod', 'old'), 'a deletion too')
  api.releaseWatches()
  // the held events arrive in order, oldest first; the last one leaves the newest state
  await waitFor('the deletion event', () => source.stats().Pod.events >= 3)
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(store.get('Pod', 'prod', 'old'), 'the stream ends where the lists were')
  t.ok(store.get('Pod', 'prod', 'new'))
  t.ok(store.get('NetworkPolicy', 'prod', 'late'))
})

t.test('create, update and delete events reach the store', async (t) => {
  const { api, store, source } = await setup(t)
  await source.start()
  const gen = store.generation
  api.create('Namespace', ns('dev'))
  api.create('Pod', pod('dev', 'api', '10.0.0.9'))
  await waitFor('pod added', () => !!store.get('Pod', 'dev', 'api'))
  const updated = pod('dev', 'api', '10.0.0.10')
  api.update('Pod', updated)
  await waitFor('pod IP updated', () => store.get('Pod', 'dev', 'api')?.status?.podIP === '10.0.0.10')
  api.create('NetworkPolicy', policy('dev', 'p1'))
  await waitFor('policy added', () => !!store.get('NetworkPolicy', 'dev', 'p1'))
  api.delete('NetworkPolicy', policy('dev', 'p1'))
  api.delete('Pod', updated)
  await waitFor('deletes', () => !store.get('NetworkPolicy', 'dev', 'p1') && !store.get('Pod', 'dev', 'api'))
  t.ok(store.get('Namespace', undefined, 'dev'))
  t.ok(store.generation > gen)
  t.ok(source.stats().Pod.events >= 3)
})

t.test('an update that changes nothing policy reads is not a change', async (t) => {
  const { api, store, source } = await setup(t)
  const created = api.create('Pod', pod('default', 'db', '10.0.0.3'))
  await source.start()
  const gen = store.generation
  api.update('Pod', { ...created, metadata: { ...created.metadata, annotations: { touched: 'yes' } } })
  api.create('Namespace', ns('marker'))
  await waitFor('marker', () => !!store.get('Namespace', undefined, 'marker'))
  t.equal(store.generation, gen + 1, 'only the namespace counted')
})

t.test('dropped watches reconnect from the last resourceVersion, no relist', async (t) => {
  const { api, store, source } = await setup(t)
  await source.start()
  await waitFor('a watch per kind', () => api.watchCount() === 4)
  t.equal(api.dropWatches(), 4)
  api.create('Pod', pod('default', 'after-drop', '10.0.0.7'))
  await waitFor('event after reconnect', () => !!store.get('Pod', 'default', 'after-drop'))
  const podRequests = api.requests.filter((r) => r.kind === 'Pod')
  t.equal(podRequests.filter((r) => r.verb === 'list').length, 1, 'no relist needed')
  t.ok(podRequests.filter((r) => r.verb === 'watch').length >= 2)
  t.equal(source.stats().Pod.restarts, 0, 'a clean end of stream is not an error')
})

t.test('abruptly cut watches: the supervisor restarts the informer', async (t) => {
  const { api, store, source } = await setup(t)
  await source.start()
  await waitFor('a watch per kind', () => api.watchCount() === 4)
  api.dropWatches({ abrupt: true })
  api.create('NetworkPolicy', policy('default', 'after-cut'))
  await waitFor('event after restart', () => !!store.get('NetworkPolicy', 'default', 'after-cut'))
  const s = source.stats().NetworkPolicy
  t.ok(s.errors >= 1 && s.restarts >= 1, `errors ${s.errors}, restarts ${s.restarts}`)
})

t.test('history expired while disconnected: 410 → relist, and the store converges', async (t) => {
  const { api, store, source } = await setup(t)
  api.create('Namespace', ns('prod'))
  const gone = api.create('Pod', pod('prod', 'gone', '10.0.0.1'))
  api.create('Pod', pod('prod', 'stays', '10.0.0.2'))
  api.create('NetworkPolicy', policy('prod', 'old'))
  await source.start()
  await waitFor('a watch per kind', () => api.watchCount() === 4)
  // The stream ends, and while the client reconnects, things change and the
  // server compacts its history past the client's resourceVersion.
  api.dropWatches()
  api.delete('Pod', gone)
  api.delete('NetworkPolicy', policy('prod', 'old'))
  api.create('NetworkPolicy', policy('prod', 'new'))
  api.expireHistory()
  await waitFor('converged', () => !store.get('Pod', 'prod', 'gone') && !store.get('NetworkPolicy', 'prod', 'old') && !!store.get('NetworkPolicy', 'prod', 'new'))
  t.ok(store.get('Pod', 'prod', 'stays'))
  t.ok(source.stats().Pod.lists >= 2, 'pods relisted')
  t.equal(source.stats().Pod.restarts, 0, '410 is handled by relisting, not by the error path')
})

t.test('API errors: start() waits through failed lists, counting errors and restarts', async (t) => {
  const { api, source, store } = await setup(t)
  api.create('Namespace', ns('x'))
  api.failNext(4, 500)
  await source.start()
  t.equal(source.synced, true)
  t.ok(store.get('Namespace', undefined, 'x'))
  const total = Object.values(source.stats()).reduce((n, s) => n + s.errors, 0)
  const restarts = Object.values(source.stats()).reduce((n, s) => n + s.restarts, 0)
  t.equal(total, 4)
  t.equal(restarts, 4)
})

t.test('pods of other nodes without an IP are not kept; this node\'s are', async (t) => {
  const { api, store, source } = await setup(t, { nodeName: 'node-a' })
  api.create('Pod', pod('default', 'mine-pending', undefined, 'node-a'))
  const theirs = api.create('Pod', pod('default', 'theirs-pending', undefined, 'node-b'))
  api.create('Pod', pod('default', 'theirs-running', '10.0.1.1', 'node-b'))
  await source.start()
  t.ok(store.get('Pod', 'default', 'mine-pending'))
  t.notOk(store.get('Pod', 'default', 'theirs-pending'))
  t.ok(store.get('Pod', 'default', 'theirs-running'))
  api.update('Pod', { ...theirs, status: { phase: 'Running', podIP: '10.0.1.2' } })
  await waitFor('kept once it has an IP', () => !!store.get('Pod', 'default', 'theirs-pending'))
})

t.test('stop() before the initial sync rejects start() and leaves no watch open', async (t) => {
  const { api, source } = await setup(t)
  api.failNext(1000, 503)
  const started = source.start()
  await waitFor('some failures', () => api.requests.length >= 3)
  await source.stop()
  await t.rejects(started, /stopped before the initial sync/)
  const n = api.requests.length
  await new Promise((r) => setTimeout(r, 150))
  t.equal(api.requests.length, n, 'no requests after stop')
  t.equal(api.watchCount(), 0)
})
