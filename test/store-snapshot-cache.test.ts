// Store: snapshot lists are rebuilt only for the kind that changed (and pods
// when the workloads change), keep their key order through in-place updates,
// additions and removals; remove() with an origin leaves other origins alone.
import t from 'tap'
import { Store } from '../enforcer/store.ts'

const pod = (name: string, tier: string, ip = '10.0.0.1') => ({ metadata: { name, namespace: 'prod', labels: { tier } }, status: { podIP: ip } })
const names = (xs: readonly { metadata: { name: string } }[]) => xs.map((x) => x.metadata.name)

t.test('lists of unchanged kinds keep their identity across generations', async (t) => {
  const store = new Store()
  store.upsert('Namespace', { metadata: { name: 'prod' } })
  for (const n of ['c', 'a', 'b']) store.upsert('Pod', pod(n, 'web'))
  store.upsert('NetworkPolicy', { metadata: { name: 'np', namespace: 'prod' }, spec: { podSelector: {} } })
  const s1 = store.snapshot()
  t.same(names(s1.pods), ['a', 'b', 'c'])
  store.upsert('NetworkPolicy', { metadata: { name: 'np', namespace: 'prod' }, spec: { podSelector: { matchLabels: { x: 'y' } } } })
  const s2 = store.snapshot()
  t.not(s2, s1)
  t.equal(s2.pods, s1.pods, 'pods untouched by a policy edit')
  t.equal(s2.namespaces, s1.namespaces)
  t.not(s2.policies, s1.policies)
  store.upsert('Pod', pod('b', 'api'))
  const s3 = store.snapshot()
  t.not(s3.pods, s2.pods)
  t.equal(s3.policies, s2.policies)
  t.same(names(s3.pods), ['a', 'b', 'c'], 'in-place update keeps the order')
  t.equal(s3.pods[1].metadata.labels?.tier, 'api')
  t.ok(Object.isFrozen(s3.pods))
  store.upsert('Pod', pod('aa', 'web'))
  store.remove('Pod', 'prod', 'c')
  t.same(names(store.snapshot().pods), ['a', 'aa', 'b'], 'additions and removals re-sort')
  t.same(names(store.list('Pod')), ['a', 'aa', 'b'])
  const s4 = store.snapshot()
  store.setWorkloads([{ hostIface: 'wren1', ips: ['10.0.0.9'], namespace: 'prod', pod: 'x' }])
  t.not(store.snapshot().pods, s4.pods, 'workloads can fill pod IPs: pods rebuilt')
  t.equal(store.snapshot().policies, s4.policies)
})

t.test('an upsert equal for policy keeps the stored object, and records its writer', async (t) => {
  const store = new Store()
  store.upsert('Pod', { ...pod('a', 'web'), metadata: { ...pod('a', 'web').metadata, resourceVersion: '1' } }, 'kube')
  store.upsert('Pod', pod('b', 'web'), 'kube')
  const s1 = store.snapshot()
  t.equal(store.replaceAll('Pod', [{ ...pod('a', 'web'), metadata: { ...pod('a', 'web').metadata, resourceVersion: '2' } }, pod('b', 'web')], 'kube'), false)
  store.upsert('Pod', pod('b', 'api'), 'kube')
  const s2 = store.snapshot()
  t.equal(s2.pods[0], s1.pods[0], 'pod a: same object in the next snapshot')
  t.not(s2.pods[1], s1.pods[1])
  store.upsert('Pod', pod('a', 'web'), 'manifests')
  t.equal(store.counts()['Pod/manifests'], 1, 'the last writer owns it')
})

t.test('remove with an origin removes only what that origin wrote', async (t) => {
  const store = new Store()
  store.upsert('Namespace', { metadata: { name: 'a' } }, 'kube')
  t.equal(store.remove('Namespace', undefined, 'a', 'manifests'), false)
  t.same(names(store.list('Namespace')), ['a'])
  t.equal(store.remove('Namespace', undefined, 'a', 'kube'), true)
  t.same(store.list('Namespace'), [])
})

t.test('a pod list patched for changed keys equals one built afresh, and keeps the unchanged objects', async (t) => {
  const nodeName = 'n1'
  const events: [string, unknown][] = [
    ['a', pod('a', 'web')],
    ['b', { metadata: { name: 'b', namespace: 'prod' }, spec: { nodeName } }], // no IP: filled from its record
    ['c', pod('c', 'web')],
    ['d', { ...pod('d', 'db'), status: { podIP: '10.0.0.4', phase: 'Succeeded' } }],
  ]
  const patched = new Store({ nodeName })
  patched.setWorkloads([{ hostIface: 'wren1', ips: ['10.0.0.2'], namespace: 'prod', pod: 'b' }])
  for (const [, o] of events) patched.upsert('Pod', o)
  let last = patched.snapshot().pods
  const edits: [string, unknown][] = [
    ['c', pod('c', 'api')],
    ['d', pod('d', 'db', '10.0.0.4')], // no longer Succeeded: back in the list
    ['b', { metadata: { name: 'b', namespace: 'prod', labels: { tier: 'web' } }, spec: { nodeName } }],
    ['a', { ...pod('a', 'web'), status: { podIP: '10.0.0.1', phase: 'Failed' } }],
  ]
  for (const [name, o] of edits) {
    patched.upsert('Pod', o)
    const now = patched.snapshot().pods
    const fresh = new Store({ nodeName })
    fresh.setWorkloads([{ hostIface: 'wren1', ips: ['10.0.0.2'], namespace: 'prod', pod: 'b' }])
    for (const x of patched.list('Pod')) fresh.upsert('Pod', x)
    t.same(now, fresh.snapshot().pods, `after editing ${name}`)
    for (const p of now) if (p.metadata.name !== name) t.ok(last.includes(p) || !last.some((q) => q.metadata.name === p.metadata.name), `${p.metadata.name} kept its identity`)
    last = now
  }
})
