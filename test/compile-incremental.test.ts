// The memoising Compiler against the pure compile(): after every change in a
// long random sequence (labels, IPs, phases, named ports, namespaces, policies,
// workloads, duplicates), compiler.compile(snapshot) must equal a fresh
// compile of the same snapshot byte for byte. A stale cache here would be a
// security bug (a peer set keeping a pod it no longer selects), so the changes
// are drawn from a small label space where selectors overlap a lot.
import t from 'tap'
import { compile, Compiler } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type LocalWorkload, type Snapshot } from '../enforcer/model.ts'

type Obj = Record<string, any>

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

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

for (const seed of [1, 2, 3, 4]) {
  t.test(`seed ${seed}: incremental compile equals a fresh compile after every change`, (t) => {
    const rand = rng(seed)
    const w = world(rand)
    const s = {
      namespaces: NS.map(w.nsObj),
      pods: Array.from({ length: 40 }, (_, i) => w.newPod(i)),
      policies: Array.from({ length: 12 }, (_, i) => w.newPolicy(i)),
      workloads: [] as LocalWorkload[],
    }
    for (let i = 0; i < 8; i++) s.workloads.push({ hostIface: `wrenl${i}`, namespace: s.pods[i * 3].metadata.namespace, pod: s.pods[i * 3].metadata.name, ips: [] })
    const config = { ...DEFAULT_ENFORCER_CONFIG, allowWorkloadToHost: seed % 2 === 0 }
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
