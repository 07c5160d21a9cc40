// The memoising Compiler against the pure compile(): after every change in a
// long random sequence (labels, IPs, phases, named ports, namespaces, policies,
// workloads, duplicates), compiler.compile(snapshot) must equal a fresh
// compile of the same snapshot byte for byte. A stale cache here would be a
// security bug (a peer set keeping a pod it no longer selects), so the changes
// are drawn from a small label space where selectors overlap a lot.
import t from 'tap'
import { compile, Compiler } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type EnforcerConfig, type LocalWorkload, type Snapshot } from '../enforcer/model.ts'
import { rng } from './lib/rng.ts'

type Obj = Record<string, any>


const NS = ['a', 'b', 'c']
const APPS = ['web', 'api', 'db']

function world(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]
  const labels = (): Obj => {
    const l: Obj = { app: pick(APPS) }
    if (rand() < 0.5) l.tier = pick(['fe', 'be'])
    if (rand() < 0.2) l.canary = 'yes'
    return l
  }
  const ports = () => (rand() < 0.5 ? [{ name: pick(['http', 'sql']), containerPort: pick([80, 8080, 5432]), protocol: pick(['TCP', 'UDP']) }] : [])
  const ip = () => (rand() < 0.15 ? `fd00::${Math.floor(rand() * 50)}` : `10.0.${Math.floor(rand() * 3)}.${Math.floor(rand() * 30)}`)
  const newPod = (i: number): Obj => ({
    metadata: { namespace: pick(NS), name: `p${i}`, labels: labels() },
    spec: { containers: [{ ports: ports() }], ...(rand() < 0.05 ? { hostNetwork: true } : {}) },
    status: { phase: rand() < 0.05 ? 'Succeeded' : 'Running', podIP: ip() },
  })
  const sel = (): Obj => {
    const r = rand()
    if (r < 0.2) return {}
    if (r < 0.6) return { matchLabels: { app: pick(APPS) } }
    if (r < 0.8) return { matchExpressions: [{ key: 'tier', operator: pick(['In', 'NotIn']), values: [pick(['fe', 'be'])] }] }
    return { matchExpressions: [{ key: 'canary', operator: pick(['Exists', 'DoesNotExist']) }] }
  }
  const peer = (): Obj => {
    const r = rand()
    if (r < 0.4) return { podSelector: sel() }
    if (r < 0.6) return { namespaceSelector: { matchLabels: { env: pick(['prod', 'dev']) } } }
    if (r < 0.85) return { namespaceSelector: sel(), podSelector: sel() }
    return { ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }
  }
  const port = (): Obj => pick([{ port: 80 }, { port: 'http' }, { port: 'sql', protocol: 'TCP' }, { protocol: 'UDP' }, { port: 1000, endPort: 2000 }])
  const newPolicy = (i: number, ns = pick(NS)): Obj => ({
    metadata: { namespace: ns, name: `np${i}` },
    spec: {
      podSelector: sel(),
      ...(rand() < 0.3 ? { policyTypes: ['Ingress', 'Egress'] } : {}),
      ingress: [{ from: [peer(), peer()], ports: [port()] }],
      ...(rand() < 0.5 ? { egress: [{ to: [peer()], ports: [port()] }] } : {}),
    },
  })
  const nsObj = (name: string): Obj => ({ metadata: { name, labels: { env: pick(['prod', 'dev']) } } })
  return { pick, labels, ports, ip, newPod, newPolicy, nsObj, sel }
}

/** One random edit, always on fresh objects (as the store hands out after a change). */
function mutate(s: { namespaces: Obj[]; pods: Obj[]; policies: Obj[]; workloads: LocalWorkload[] }, w: ReturnType<typeof world>, rand: () => number, step: number): string {
  const i = Math.floor(rand() * s.pods.length)
  const copy = (o: Obj): Obj => structuredClone(o)
  const r = Math.floor(rand() * 12)
  if (r === 0 || r === 1) {
    const p = copy(s.pods[i])
    p.metadata.labels = w.labels()
    s.pods[i] = p
    return 'pod labels'
  }
  if (r === 2) {
    const p = copy(s.pods[i])
    p.status.podIP = w.ip()
    s.pods[i] = p
    return 'pod ip'
  }
  if (r === 3) {
    const p = copy(s.pods[i])
    p.status.phase = p.status.phase === 'Running' ? 'Failed' : 'Running'
    if (rand() < 0.3) p.spec.hostNetwork = !p.spec.hostNetwork
    s.pods[i] = p
    return 'pod phase'
  }
  if (r === 4) {
    const p = copy(s.pods[i])
    p.spec.containers[0].ports = w.ports()
    s.pods[i] = p
    return 'named ports'
  }
  if (r === 5) {
    s.pods.splice(i, 1)
    if (rand() < 0.7) s.pods.push(w.newPod(1000 + step))
    return 'pod removed/added'
  }
  if (r === 6) {
    const k = Math.floor(rand() * s.namespaces.length)
    s.namespaces[k] = w.nsObj(s.namespaces[k].metadata.name)
    return 'namespace labels'
  }
  const k = Math.floor(rand() * s.policies.length)
  if (r === 7 || r === 8) {
    s.policies[k] = { ...w.newPolicy(0), metadata: { ...s.policies[k].metadata } }
    return 'policy spec'
  }
  if (r === 9) {
    if (rand() < 0.5 && s.policies.length > 1) s.policies.splice(k, 1)
    else s.policies.push(w.newPolicy(2000 + step))
    return 'policy removed/added'
  }
  if (r === 10) {
    // a second, different object under an existing namespace/name (fails closed), or back to one
    const dup = s.policies.findIndex((p, j) => j !== k && p.metadata.name === s.policies[k].metadata.name && p.metadata.namespace === s.policies[k].metadata.namespace)
    if (dup >= 0) s.policies.splice(dup, 1)
    else s.policies.push({ ...w.newPolicy(0), metadata: { ...s.policies[k].metadata } })
    return 'policy duplicate'
  }
  const j = Math.floor(rand() * s.pods.length)
  const p = s.pods[j]
  if (rand() < 0.5 && s.workloads.length > 1) s.workloads.splice(Math.floor(rand() * s.workloads.length), 1)
  else s.workloads.push({ hostIface: `wrenw${step}`, namespace: p.metadata.namespace, pod: p.metadata.name, ips: rand() < 0.5 ? [w.ip()] : [] })
  return 'workloads'
}

/** A random start: namespaces, `pods` pods, 12 policies, 8 local workloads (`ips` gives each its record IPs). */
function startWorld(w: ReturnType<typeof world>, pods: number, ips: (i: number) => string[]) {
  const s = {
    namespaces: NS.map(w.nsObj),
    pods: Array.from({ length: pods }, (_, i) => w.newPod(i)),
    policies: Array.from({ length: 12 }, (_, i) => w.newPolicy(i)),
    workloads: [] as LocalWorkload[],
  }
  for (let i = 0; i < 8; i++) s.workloads.push({ hostIface: `wrenl${i}`, namespace: s.pods[i * 3].metadata.namespace, pod: s.pods[i * 3].metadata.name, ips: ips(i) })
  return s
}

/** Odd seeds: every port group of several peers a union set, so union members are checked across changes too. */
function configFor(seed: number): EnforcerConfig {
  return { ...DEFAULT_ENFORCER_CONFIG, allowWorkloadToHost: seed % 2 === 0, unionAbove: seed % 2 ? 0 : DEFAULT_ENFORCER_CONFIG.unionAbove }
}

for (const seed of [1, 2, 3, 4]) {
  t.test(`seed ${seed}: incremental compile equals a fresh compile after every change`, (t) => {
    const rand = rng(seed)
    const w = world(rand)
    const s = startWorld(w, 40, () => [])
    const config = configFor(seed)
    const compiler = new Compiler(config)
    let failures = 0
    for (let step = 0; step < 300 && failures < 3; step++) {
      const what = step === 0 ? 'start' : mutate(s, w, rand, step)
      const snap = structuredClone(s) as unknown as Snapshot
      const got = JSON.stringify(compiler.compile(snap))
      const want = JSON.stringify(compile(snap, config))
      if (got !== want) {
        failures++
        t.fail(`step ${step} (${what}): incremental output differs from a fresh compile`)
      }
    }
    if (!failures) t.pass('300 steps equal')
    t.end()
  })
}

t.test('the same snapshot twice, and a snapshot after a reverted change, compile the same', (t) => {
  const rand = rng(9)
  const w = world(rand)
  const base = { namespaces: NS.map(w.nsObj), pods: Array.from({ length: 30 }, (_, i) => w.newPod(i)), policies: Array.from({ length: 8 }, (_, i) => w.newPolicy(i)), workloads: [{ hostIface: 'wrenl0', namespace: 'a', pod: 'p0', ips: ['10.9.9.9'] }] }
  base.pods[0].metadata.namespace = 'a'
  const snap = base as unknown as Snapshot
  const compiler = new Compiler(DEFAULT_ENFORCER_CONFIG)
  const first = JSON.stringify(compiler.compile(snap))
  t.equal(JSON.stringify(compiler.compile(snap)), first)
  const changed = structuredClone(base)
  changed.pods[1].metadata.labels = { app: 'other' }
  changed.policies[0].spec.podSelector = { matchLabels: { app: 'other' } }
  t.equal(JSON.stringify(compiler.compile(changed as unknown as Snapshot)), JSON.stringify(compile(changed as unknown as Snapshot, DEFAULT_ENFORCER_CONFIG)))
  t.equal(JSON.stringify(compiler.compile(snap)), first)
  t.end()
})

t.test('outputs handed out are frozen where they are shared with later compiles', (t) => {
  const rand = rng(5)
  const w = world(rand)
  const snap = { namespaces: NS.map(w.nsObj), pods: Array.from({ length: 20 }, (_, i) => w.newPod(i)), policies: Array.from({ length: 5 }, (_, i) => w.newPolicy(i, 'a')), workloads: [] } as unknown as Snapshot
  snap.pods[0].metadata.namespace = 'a'
  snap.workloads.push({ hostIface: 'wrenl0', namespace: 'a', pod: snap.pods[0].metadata.name, ips: ['10.9.9.9'] })
  const out = new Compiler(DEFAULT_ENFORCER_CONFIG).compile(snap)
  for (const c of out.v4.chains) t.ok(Object.isFrozen(c) && Object.isFrozen(c.rules), `${c.name} frozen`)
  for (const s of out.v4.sets) t.ok(Object.isFrozen(s.members), `${s.name} members frozen`)
  t.end()
})

// Identity: the store hands out deep-frozen objects and keeps every unchanged
// one (and unchanged lists) from one snapshot to the next; the Compiler then
// reuses what it derived from each object and patches its cluster. These runs
// hand it snapshots shaped that way.

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

const podOrder = (a: Obj, b: Obj) => {
  const ka = `${a.metadata.namespace}/${a.metadata.name}`
  const kb = `${b.metadata.namespace}/${b.metadata.name}`
  return ka < kb ? -1 : ka > kb ? 1 : 0
}

/** Snapshots like the store's: frozen objects, pods in key order, a list kept (same array) while its elements are. */
function frozenSnapshots() {
  const lists = new Map<string, Obj[]>()
  const keep = (name: string, xs: Obj[]): Obj[] => {
    const prev = lists.get(name)
    if (prev && prev.length === xs.length && prev.every((x, i) => x === xs[i])) return prev
    const list = Object.freeze(xs.map(deepFreeze)) as Obj[]
    lists.set(name, list)
    return list
  }
  return (s: { namespaces: Obj[]; pods: Obj[]; policies: Obj[]; workloads: LocalWorkload[] }): Snapshot =>
    Object.freeze({
      namespaces: keep('namespaces', s.namespaces),
      pods: keep('pods', [...s.pods].sort(podOrder)),
      policies: keep('policies', s.policies),
      workloads: keep('workloads', s.workloads as Obj[]),
    }) as unknown as Snapshot
}

for (const seed of [11, 12, 13]) {
  t.test(`seed ${seed}: frozen objects kept by identity compile like a fresh compile after every change`, (t) => {
    const rand = rng(seed)
    const w = world(rand)
    const s = startWorld(w, 60, (i) => (i % 2 ? ['10.7.0.' + i] : []))
    const config = configFor(seed)
    const compiler = new Compiler(config)
    const snapshot = frozenSnapshots()
    let failures = 0
    for (let step = 0; step < 300 && failures < 3; step++) {
      let what = 'start'
      if (step > 0) {
        const r = rand()
        if (r < 0.15) {
          // an equal pod as a new object (a relist), or the same snapshot again
          const i = Math.floor(rand() * s.pods.length)
          s.pods[i] = structuredClone(s.pods[i])
          what = 'equal new pod object'
        } else if (r < 0.2) what = 'nothing'
        else if (r < 0.3) {
          // several pods at once, some new, some gone
          for (let k = 0; k < 3; k++) {
            const i = Math.floor(rand() * s.pods.length)
            const p = structuredClone(s.pods[i])
            p.metadata.labels = w.labels()
            s.pods[i] = p
          }
          s.pods.push(w.newPod(3000 + step))
          what = 'several pods'
        } else what = mutate(s, w, rand, step)
      }
      const snap = snapshot(s)
      const got = JSON.stringify(compiler.compile(snap))
      const want = JSON.stringify(compile(structuredClone(snap), config))
      if (got !== want) {
        failures++
        t.fail(`step ${step} (${what}): incremental output differs from a fresh compile`)
      }
    }
    if (!failures) t.pass('300 steps equal')
    t.end()
  })
}

t.test('identity: the same object, an equal new object, a changed copy, an unfrozen object changed in place', (t) => {
  const rand = rng(21)
  const w = world(rand)
  const config = DEFAULT_ENFORCER_CONFIG
  const pods = Array.from({ length: 30 }, (_, i) => w.newPod(i))
  pods[0].metadata.namespace = 'a'
  pods[0].metadata.labels = { app: 'web' }
  const base = {
    namespaces: NS.map(w.nsObj),
    pods: pods.sort(podOrder),
    policies: [...Array.from({ length: 6 }, (_, i) => w.newPolicy(i, 'a')), { metadata: { namespace: 'a', name: 'web-peers' }, spec: { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] } }],
    workloads: [{ hostIface: 'wrenl0', namespace: 'a', pod: pods[0].metadata.name, ips: ['10.9.9.9'] }],
  }
  const compiler = new Compiler(config)
  const check = (snap: Snapshot, what: string) => t.equal(JSON.stringify(compiler.compile(snap)), JSON.stringify(compile(structuredClone(snap), config)), what)
  const frozen = deepFreeze(structuredClone(base)) as unknown as Snapshot
  check(frozen, 'first compile')
  check(frozen, 'the same snapshot again')
  const samePods = Object.freeze([...frozen.pods]) as Snapshot['pods']
  check(Object.freeze({ ...frozen, pods: samePods }), 'a new list of the same objects')
  const equalCopy = Object.freeze(samePods.map((p, i) => (i === 3 ? deepFreeze(structuredClone(p)) : p))) as Snapshot['pods']
  check(Object.freeze({ ...frozen, pods: equalCopy }), 'an equal pod as a new object')
  const target = equalCopy.findIndex((p) => p.metadata.namespace === 'a' && p.metadata.labels?.app !== 'web' && p.spec?.hostNetwork !== true && p.status?.phase === 'Running')
  const changedCopy = Object.freeze(equalCopy.map((p, i) => (i === target ? deepFreeze({ ...structuredClone(p), metadata: { ...p.metadata, labels: { app: 'web' } } }) : p))) as Snapshot['pods']
  const out = compiler.compile(Object.freeze({ ...frozen, pods: changedCopy }))
  t.equal(JSON.stringify(out), JSON.stringify(compile(structuredClone(Object.freeze({ ...frozen, pods: changedCopy })), config)), 'a changed copy of a pod')
  check(Object.freeze({ ...frozen, pods: equalCopy }), 'and back')

  // Unfrozen objects are never remembered by identity: a change in place is seen.
  const loose = structuredClone(base) as unknown as Snapshot
  check(loose, 'unfrozen snapshot')
  const victim = loose.pods.find((p) => p.metadata.namespace === 'a' && p.metadata.labels?.app !== 'web' && p.spec?.hostNetwork !== true && p.status?.phase === 'Running')!
  victim.metadata.labels = { app: 'web' }
  check(loose, 'an unfrozen pod changed in place')
  victim.status!.podIP = '10.0.2.99'
  check(loose, 'its IP changed in place')
  // A frozen pod inside an unfrozen list: the list may change in place, the pod may not.
  const mixed = { ...structuredClone(base), pods: frozen.pods.slice() } as unknown as Snapshot
  check(mixed, 'frozen pods in an unfrozen list')
  mixed.pods.splice(2, 1)
  check(mixed, 'the list changed in place')
  t.end()
})

t.test('the Store and the Compiler: a label change reaches the sets, unchanged pods keep their objects', async (t) => {
  const { Store } = await import('../enforcer/store.ts')
  const store = new Store({ nodeName: 'n1' })
  const pod = (name: string, app: string, ip?: string) => ({ metadata: { namespace: 'a', name, labels: { app } }, spec: { nodeName: ip ? 'n2' : 'n1' }, status: ip ? { phase: 'Running', podIP: ip } : { phase: 'Running' } })
  store.upsert('Namespace', { metadata: { name: 'a' } })
  for (let i = 0; i < 20; i++) store.upsert('Pod', pod(`p${i}`, i % 2 ? 'web' : 'api', `10.1.0.${i + 1}`))
  store.upsert('Pod', pod('local', 'api'))
  store.upsert('NetworkPolicy', { metadata: { namespace: 'a', name: 'from-web' }, spec: { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] } })
  store.setWorkloads([{ hostIface: 'wren0', namespace: 'a', pod: 'local', ips: ['10.1.1.1'] }])
  const s1 = store.snapshot()
  const s2 = (store.upsert('Pod', pod('p0', 'web', '10.1.0.1')), store.snapshot())
  t.not(s2.pods, s1.pods)
  t.equal(s2.pods.filter((p, i) => p !== s1.pods[i]).length, 1, 'only the changed pod is a new object (the record-filled local pod too)')
  t.ok(Object.isFrozen(s2.pods[0].metadata.labels), 'stored objects are deep-frozen')
  const compiler = new Compiler(DEFAULT_ENFORCER_CONFIG)
  compiler.compile(s1)
  const out = compiler.compile(s2)
  t.equal(JSON.stringify(out), JSON.stringify(compile(structuredClone(s2), DEFAULT_ENFORCER_CONFIG)))
  t.ok(out.v4.sets.some((s) => s.members.includes('10.1.0.1')), 'the relabelled pod is in the from-web set')
  store.setWorkloads([{ hostIface: 'wren0', namespace: 'a', pod: 'local', ips: ['10.1.1.2'] }])
  const s3 = store.snapshot()
  t.equal(JSON.stringify(compiler.compile(s3)), JSON.stringify(compile(structuredClone(s3), DEFAULT_ENFORCER_CONFIG)), 'record IP change')
})
