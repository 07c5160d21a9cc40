// Store: effective-change detection, replaceAll per origin, batching,
// refusing bad objects, snapshot contents and caching, order independence.
import t from 'tap'
import { Store } from '../enforcer/store.ts'
import { createLogger } from '../shared/log.ts'

function setup(nodeName?: string) {
  const lines: any[] = []
  const store = new Store({ log: createLogger((l) => lines.push(JSON.parse(l)), 'debug'), nodeName })
  const changes: number[] = []
  store.on('change', (gen: number) => changes.push(gen))
  return { store, lines, changes }
}

const pod = (name: string, labels: Record<string, string>, ip?: string, extra: Record<string, unknown> = {}) => ({
  metadata: { name, namespace: 'prod', labels, uid: `uid-${name}`, resourceVersion: '1', ...extra },
  spec: { nodeName: 'node-a', containers: [{ ports: [{ containerPort: 80, protocol: 'TCP' }] }] },
  status: ip ? { podIP: ip, phase: 'Running' } : {},
})

t.test('an upsert is a change only when what policy reads changed', async (t) => {
  const { store, changes } = setup()
  t.equal(store.generation, 0)
  t.equal(store.upsert('Pod', pod('a', { app: 'web' }, '10.0.0.1')), true)
  t.equal(store.generation, 1)
  t.equal(store.upsert('Pod', pod('a', { app: 'web' }, '10.0.0.1', { resourceVersion: '2', uid: 'other' })), false, 'resourceVersion and uid do not count')
  t.equal(store.upsert('Pod', { ...pod('a', { app: 'web' }, '10.0.0.1'), metadata: { ...pod('a', { app: 'web' }).metadata, annotations: { x: 'y' }, creationTimestamp: new Date() } }), false, 'fields policy ignores do not count')
  const reordered = pod('a', { app: 'web' }, '10.0.0.1')
  reordered.status = { phase: 'Running', podIP: '10.0.0.1' }
  t.equal(store.upsert('Pod', reordered), false, 'key order does not count')
  t.equal(store.upsert('Pod', pod('a', { app: 'api' }, '10.0.0.1')), true, 'labels do')
  t.equal(store.upsert('Pod', pod('a', { app: 'api' }, '10.0.0.2')), true, 'IPs do')
  t.same(changes, [1, 2, 3])
  t.equal(store.remove('Pod', 'prod', 'a'), true)
  t.equal(store.remove('Pod', 'prod', 'a'), false)
  t.same(changes, [1, 2, 3, 4])
})

t.test('replaceAll replaces one origin only, with one change', async (t) => {
  const { store, changes } = setup()
  store.upsert('Namespace', { metadata: { name: 'kube-ns' } }, 'kube')
  store.replaceAll('Namespace', [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }], 'manifests')
  t.same(changes, [1, 3], 'two namespaces, one change event')
  store.replaceAll('Namespace', [{ metadata: { name: 'b' } }, { metadata: { name: 'c', labels: { x: 'y' } } }], 'manifests')
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['b', 'c', 'kube-ns'])
  t.equal(changes.length, 3)
  t.equal(store.replaceAll('Namespace', [{ metadata: { name: 'b' } }, { metadata: { name: 'c', labels: { x: 'y' } } }], 'manifests'), false, 'same list: no change')
  t.equal(changes.length, 3)
  store.replaceAll('Namespace', [], 'kube')
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['b', 'c'])
  t.same(store.counts(), { workloads: 0, Namespace: 2, 'Namespace/manifests': 2, Pod: 0, NetworkPolicy: 0, Node: 0 })
})

t.test('batch() emits a single change for many edits, none for no edit', async (t) => {
  const { store, changes } = setup()
  store.batch(() => {
    store.upsert('Namespace', { metadata: { name: 'a' } })
    store.batch(() => store.upsert('Namespace', { metadata: { name: 'b' } }))
    store.remove('Namespace', undefined, 'a')
  })
  t.same(changes, [3])
  store.batch(() => store.upsert('Namespace', { metadata: { name: 'b' } }))
  t.same(changes, [3])
})

t.test('bad objects are refused with a logged error naming them, never thrown', async (t) => {
  const { store, lines } = setup()
  const bad: [any, any, RegExp][] = [
    ['Pod', { metadata: { namespace: 'prod' } }, /metadata\.name: required/],
    ['Pod', { metadata: { name: 'x' } }, /metadata\.namespace: required/],
    ['Pod', { metadata: { name: 'x', namespace: 'p', labels: { a: 1 } } }, /metadata\.labels\.a: must be a string/],
    ['Pod', { metadata: { name: 'x', namespace: 'p' }, status: { podIPs: [{}] } }, /status\.podIPs\[0\]\.ip: required/],
    ['NetworkPolicy', { metadata: { name: 'np', namespace: 'p' }, spec: {} }, /spec\.podSelector: required/],
    ['NetworkPolicy', { metadata: { name: 'np', namespace: 'p' }, spec: { podSelector: {}, ingress: {} } }, /spec\.ingress: must be a list/],
    ['NetworkPolicy', { metadata: { name: 'np', namespace: 'p' }, spec: { podSelector: {}, egress: [{ ports: [{ port: true }] }] } }, /egress\[0\]\.ports\[0\]\.port/],
    ['NetworkPolicy', { metadata: { name: 'np', namespace: 'p' }, spec: { podSelector: { matchExpressions: [{ key: 'a' }] } } }, /operator: required/],
    ['Namespace', null, /not an object/],
    ['Namespace', 'prod', /not an object/],
    ['Secret', { metadata: { name: 's' } }, /unknown kind/],
  ]
  for (const [kind, obj, why] of bad) {
    lines.length = 0
    t.equal(store.upsert(kind, obj), false)
    t.match(lines[0]?.errors?.join(' '), why, `${kind} ${JSON.stringify(obj)}`)
    t.equal(lines[0]?.level, 'error')
  }
  t.equal(store.generation, 0)
  t.match(setupAndRefuse(), /refusing Pod prod\/<no name>/)
  // a refused object in a full list does not stop the others
  t.equal(store.replaceAll('Namespace', [{ metadata: { name: 'ok' } }, { metadata: {} }], 'kube'), true)
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['ok'])
})

function setupAndRefuse(): string {
  const { store, lines } = setup()
  store.upsert('Pod', { metadata: { namespace: 'prod' } })
  return lines[0].msg
}

t.test('normalised objects are plain data holding what policy reads', async (t) => {
  const { store } = setup()
  class Meta {
    name = 'np'
    namespace = 'p'
    creationTimestamp = new Date()
    managedFields = [{}]
  }
  store.upsert('NetworkPolicy', {
    metadata: new Meta(),
    spec: { podSelector: { matchLabels: null }, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: null } }], ports: [{ port: 'http', endPort: null }] }], egress: null },
  })
  t.same(store.get('NetworkPolicy', 'p', 'np'), {
    metadata: { name: 'np', namespace: 'p' },
    spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 'http' }] }] },
  })
  t.strictSame(Object.keys(store.get('NetworkPolicy', 'p', 'np')!.spec), ['podSelector', 'ingress'], 'nulls dropped')
})

t.test('snapshot: record IPs fill IP-less pods; IP-less pods elsewhere and finished pods are left out', async (t) => {
  const { store } = setup('node-a')
  store.upsert('Pod', { metadata: { name: 'man', namespace: 'prod' } }, 'manifests')
  store.upsert('Pod', pod('has-ip', {}, '10.0.0.1'))
  store.upsert('Pod', { ...pod('pending-here', {}), spec: { nodeName: 'node-a' } })
  store.upsert('Pod', { ...pod('pending-there', {}), spec: { nodeName: 'node-b' } })
  store.upsert('Pod', { ...pod('done', {}, '10.0.0.9'), status: { podIP: '10.0.0.9', phase: 'Succeeded' } })
  store.setWorkloads([
    { hostIface: 'wren1', namespace: 'prod', pod: 'man', ips: ['10.0.0.2'] },
    { hostIface: 'wren2', namespace: 'prod', pod: 'man', ips: ['fd00::2'] },
    { hostIface: 'wren3', namespace: 'prod', pod: 'has-ip', ips: ['10.9.9.9'] },
  ])
  const snap = store.snapshot()
  t.same(snap.pods.map((p) => p.metadata.name), ['has-ip', 'man', 'pending-here'])
  t.same(snap.pods[1].status, { podIP: '10.0.0.2', podIPs: [{ ip: '10.0.0.2' }, { ip: 'fd00::2' }] })
  t.equal(snap.pods[0].status?.podIP, '10.0.0.1', 'the API IP wins over a record')
  t.equal(store.get('Pod', 'prod', 'man')?.status?.podIP, undefined, 'the stored object is untouched')
  t.equal(snap.workloads.length, 3)
  t.equal(store.snapshot(), snap, 'cached while nothing changes')
  t.ok(Object.isFrozen(snap.pods))
  store.upsert('Pod', pod('has-ip', {}, '10.0.0.1'))
  t.equal(store.snapshot(), snap, 'an identical upsert keeps the cache')
  store.setWorkloads([{ hostIface: 'wren1', namespace: 'prod', pod: 'man', ips: ['10.0.0.3'] }])
  t.not(store.snapshot(), snap)
  t.equal(store.snapshot().pods[1].status?.podIP, '10.0.0.3')
})

t.test('setWorkloads: order does not matter; malformed entries are refused', async (t) => {
  const { store, lines } = setup()
  const a = { hostIface: 'wrena', ips: ['10.0.0.1'] }
  const b = { hostIface: 'wrenb', namespace: 'x', pod: 'y', ips: ['10.0.0.2'] }
  t.equal(store.setWorkloads([a, b]), true)
  t.equal(store.setWorkloads([b, a]), false)
  t.equal(store.setWorkloads([b, a, { hostIface: '', ips: [] } as any, { hostIface: 'z' } as any]), false)
  t.equal(lines.filter((l) => l.level === 'error').length, 2)
  t.strictSame(store.snapshot().workloads, [a, b])
  t.equal(store.remove('Secret' as any, 'x', 'y'), false, 'unknown kind refused, not thrown')
})

t.test('the same events in any order give the same snapshot', async (t) => {
  const events: [string, any][] = [
    ['Namespace', { metadata: { name: 'prod', labels: { e: 'p' } } }],
    ['Pod', pod('a', { app: 'a' }, '10.0.0.1')],
    ['Pod', pod('b', { app: 'b' }, '10.0.0.2')],
    ['NetworkPolicy', { metadata: { name: 'np', namespace: 'prod' }, spec: { podSelector: {} } }],
    ['Namespace', { metadata: { name: 'dev' } }],
  ]
  const snapOf = (evs: [string, any][]) => {
    const { store } = setup()
    for (const [k, o] of evs) store.upsert(k as any, o)
    return JSON.stringify(store.snapshot())
  }
  const forward = snapOf(events)
  t.equal(snapOf([...events].reverse()), forward)
  t.equal(snapOf([events[3], events[1], events[4], events[0], events[2]]), forward)
  const { store } = setup()
  store.replaceAll('Namespace', [events[0][1], events[4][1]], 'kube')
  store.replaceAll('Pod', [events[1][1], events[2][1]], 'kube')
  store.replaceAll('NetworkPolicy', [events[3][1]], 'kube')
  t.equal(JSON.stringify(store.snapshot()), forward, 'squashed into lists')
})

t.test('a Node keeps its pod ranges (the older spec.podCIDR folded in) and InternalIPs only', async (t) => {
  const store = new Store()
  const node = (name: string, spec: object, addresses: object[] = []) => ({ metadata: { name }, spec, status: { addresses, conditions: [{ type: 'Ready' }] } })
  store.upsert('Node', node('a', { podCIDRs: ['10.244.1.0/24', 'fd00::/64'], podCIDR: '10.244.1.0/24' }, [{ type: 'InternalIP', address: '192.168.1.1' }, { type: 'Hostname', address: 'a' }]))
  store.upsert('Node', node('b', { podCIDR: '10.244.2.0/24' }))
  store.upsert('Node', node('c', { podCIDR: '10.244.7.0/24', podCIDRs: [] }))
  store.upsert('Node', node('d', {}))
  t.same(store.snapshot().nodes, [
    { metadata: { name: 'a' }, spec: { podCIDRs: ['10.244.1.0/24', 'fd00::/64'] }, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.1' }] } },
    { metadata: { name: 'b' }, spec: { podCIDRs: ['10.244.2.0/24'] }, status: { addresses: [] } },
    { metadata: { name: 'c' }, spec: { podCIDRs: ['10.244.7.0/24'] }, status: { addresses: [] } },
    { metadata: { name: 'd' }, spec: {}, status: { addresses: [] } },
  ])
  const gen = store.generation
  store.upsert('Node', node('d', {}, [{ type: 'Hostname', address: 'd2' }]))
  t.equal(store.generation, gen, 'a change to what routing does not read is no change')
})
