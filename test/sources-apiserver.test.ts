// The in-repo API server's protocol, checked over raw HTTP: list shape, watch
// replay from a resourceVersion, 410 in the stream, bookmarks, timeouts,
// namespaced paths, errors.
import t, { type Test } from 'tap'
import { TestApiServer } from '../e2e/lib/apiserver.ts'

async function setup(t: Test) {
  const api = new TestApiServer({ bookmarkIntervalMs: 30 })
  await api.start()
  t.teardown(() => api.close())
  return api
}

/** Reads watch events until `n` arrived or the stream ended. */
async function readEvents(url: string, n: number, signal?: AbortSignal): Promise<{ events: any[]; ended: boolean }> {
  const res = await fetch(url, { signal })
  const reader = res.body!.getReader()
  const events: any[] = []
  let buf = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return { events, ended: true }
    buf += new TextDecoder().decode(value)
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
    if (events.length >= n) {
      await reader.cancel()
      return { events, ended: false }
    }
  }
}

t.test('list: kind, resourceVersion, items without kind; namespaced paths', async (t) => {
  const api = await setup(t)
  api.create('Pod', { metadata: { name: 'a', namespace: 'x' } })
  api.create('Pod', { metadata: { name: 'b' } })
  const all = await (await fetch(`${api.url}/api/v1/pods`)).json()
  t.equal(all.kind, 'PodList')
  t.equal(all.apiVersion, 'v1')
  t.equal(all.metadata.resourceVersion, api.resourceVersion)
  t.same(all.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`), ['x/a', 'default/b'])
  t.notOk('kind' in all.items[0])
  t.ok(all.items[0].metadata.uid)
  const inX = await (await fetch(`${api.url}/api/v1/namespaces/x/pods`)).json()
  t.same(inX.items.map((p: any) => p.metadata.name), ['a'])
  const nps = await (await fetch(`${api.url}/apis/networking.k8s.io/v1/networkpolicies`)).json()
  t.equal(nps.kind, 'NetworkPolicyList')
  const missing = await fetch(`${api.url}/api/v1/secrets`)
  t.equal(missing.status, 404)
  t.equal((await missing.json()).kind, 'Status')
})

t.test('resourceVersions increase on every change and are stamped on objects', async (t) => {
  const api = await setup(t)
  const a = api.create('Namespace', { metadata: { name: 'a' } })
  const b = api.update('Namespace', { metadata: { name: 'a', labels: { x: 'y' } } })
  const c = api.delete('Namespace', { metadata: { name: 'a' } })
  t.ok(Number(a.metadata.resourceVersion) < Number(b.metadata.resourceVersion))
  t.ok(Number(b.metadata.resourceVersion) < Number(c.metadata.resourceVersion))
  t.equal(c.metadata.resourceVersion, api.resourceVersion)
  t.equal(b.metadata.uid, a.metadata.uid)
  t.throws(() => api.update('Namespace', { metadata: { name: 'a' } }), /not found/)
  t.throws(() => api.create('Pod', { metadata: {} }), /without metadata\.name/)
})

t.test('watch replays history after the given resourceVersion, then streams', async (t) => {
  const api = await setup(t)
  const first = api.create('Pod', { metadata: { name: 'a' } })
  api.update('Pod', { metadata: { name: 'a', labels: { v: '2' } } })
  const got = readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${first.metadata.resourceVersion}`, 3)
  while (api.watchCount() === 0) await new Promise((r) => setTimeout(r, 5))
  api.create('NetworkPolicy', { metadata: { name: 'other' }, spec: { podSelector: {} } })
  api.delete('Pod', { metadata: { name: 'a' } })
  api.create('Pod', { metadata: { name: 'b', namespace: 'x' } })
  const { events } = await got
  t.same(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['MODIFIED a', 'DELETED a', 'ADDED b'])
  t.equal(events[0].object.kind, 'Pod', 'watch objects carry kind')
})

t.test('watch without resourceVersion starts with the current objects', async (t) => {
  const api = await setup(t)
  api.create('Namespace', { metadata: { name: 'n1' } })
  const { events } = await readEvents(`${api.url}/api/v1/namespaces?watch=true`, 1)
  t.same(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED n1'])
})

t.test('a resourceVersion older than the history gets an ERROR 410 event and the end', async (t) => {
  const api = await setup(t)
  const a = api.create('Pod', { metadata: { name: 'a' } })
  api.create('Pod', { metadata: { name: 'b' } })
  api.expireHistory()
  const res = await readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${a.metadata.resourceVersion}`, 99)
  t.equal(res.ended, true)
  t.equal(res.events.length, 1)
  t.equal(res.events[0].type, 'ERROR')
  t.match(res.events[0].object, { kind: 'Status', code: 410, reason: 'Expired' })
  const now = await readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${api.resourceVersion}&timeoutSeconds=1`, 99)
  t.same(now.events, [], 'the current resourceVersion is still fine')
})

t.test('bookmarks when allowed; timeoutSeconds ends the stream', async (t) => {
  const api = await setup(t)
  api.create('Pod', { metadata: { name: 'a' } })
  const rv = api.resourceVersion
  const { events } = await readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${rv}&allowWatchBookmarks=true`, 2)
  t.same(events.map((e) => e.type), ['BOOKMARK', 'BOOKMARK'])
  t.equal(events[0].object.metadata.resourceVersion, rv)
  const start = Date.now()
  const ended = await readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${rv}&timeoutSeconds=1`, 99)
  t.equal(ended.ended, true)
  t.ok(Date.now() - start >= 900, 'ended by the timeout')
  t.same(ended.events, [], 'no bookmarks unless asked')
})

t.test('dropWatches ends streams; failNext answers with a Status', async (t) => {
  const api = await setup(t)
  const got = readEvents(`${api.url}/api/v1/pods?watch=true&resourceVersion=${api.resourceVersion}`, 99)
  while (api.watchCount() === 0) await new Promise((r) => setTimeout(r, 5))
  t.equal(api.dropWatches(), 1)
  t.equal((await got).ended, true)
  api.failNext(1, 503)
  const r = await fetch(`${api.url}/api/v1/pods`)
  t.equal(r.status, 503)
  t.equal((await r.json()).code, 503)
  t.equal((await fetch(`${api.url}/api/v1/pods`)).status, 200)
  t.same(api.requests.map((q) => q.verb), ['watch', 'list', 'list'])
})
