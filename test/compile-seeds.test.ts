// The seed walkthroughs (shared/seeds 000 and 002) replayed against the
// compiler's output: same objects, same expected connectivity, step by step.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type NetworkPolicy, type Pod } from '../enforcer/model.ts'
import { flow, ns, pod, policy, snapshot, workload, type Endpoint } from './lib/compile-sim.ts'

function world(pods: Pod[], namespaces: ReturnType<typeof ns>[]) {
  const ifaces = new Map(pods.map((p, i) => [`${p.metadata.namespace}/${p.metadata.name}`, `wren${i}`]))
  const workloads = pods.map((p) => workload(ifaces.get(`${p.metadata.namespace}/${p.metadata.name}`)!, p.metadata.namespace, p.metadata.name))
  const ep = (id: string): Endpoint => {
    const p = pods.find((x) => `${x.metadata.namespace}/${x.metadata.name}` === id)
    return p ? { ip: p.status!.podIPs![0].ip, iface: ifaces.get(id) } : { ip: id }
  }
  // both layouts must agree: few peers one rule each, and every group of several peers a union set
  return (policies: NetworkPolicy[]) => {
    const states = [DEFAULT_ENFORCER_CONFIG, { ...DEFAULT_ENFORCER_CONFIG, unionAbove: 0 }].map((config) => compile(snapshot({ namespaces, pods, policies, workloads }), config))
    return (from: string, to: string, port: number, proto: 'tcp' | 'udp' = 'tcp') => {
      const [a, b] = states.map((state) => flow(state, ep(from), ep(to), port, proto) === 'ACCEPT')
      if (a !== b) throw new Error(`${from} -> ${to} ${proto}/${port}: the layouts disagree (rules per peer ${a}, union sets ${b})`)
      return a
    }
  }
}

t.test('seed 000: enn-policy advanced ingress and egress demo', async (t) => {
  const namespaces = [ns('p-demo', { name: 'p-demo', app: 'access' }), ns('p-demo1', { name: 'p-demo1' }), ns('p-demo2', { name: 'p-demo2', app: 'access' }), ns('p-demo3', { name: 'p-demo3', app: 'access1' })]
  const pods = [
    pod('p-demo', 'nginx', { labels: { app: 'nginx' }, ips: ['10.244.1.127'] }),
    pod('p-demo', 'nginx1', { labels: { app: 'access' }, ips: ['10.244.2.124'] }),
    pod('p-demo', 'nginx2', { labels: { app: 'reject' }, ips: ['10.244.1.128'] }),
    pod('p-demo1', 'nginx', { labels: { app: 'nginx' }, ips: ['10.244.2.122'] }),
    pod('p-demo2', 'nginx', { labels: { app: 'nginx' }, ips: ['10.244.1.129'] }),
    pod('p-demo3', 'nginx', { labels: { app: 'nginx' }, ips: ['10.244.2.123'] }),
  ]
  const build = world(pods, namespaces)
  const ingressDemo = policy('p-demo', 'ingress-demo', {
    podSelector: {},
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'access' } } }, { namespaceSelector: { matchLabels: { name: 'p-demo1' } } }, { ipBlock: { cidr: '10.19.139.0/24' } }] }],
  })
  const can = build([ingressDemo])
  t.ok(can('p-demo/nginx1', 'p-demo/nginx', 80), 'app=access pod in p-demo')
  t.notOk(can('p-demo/nginx2', 'p-demo/nginx', 80), 'app=reject pod refused')
  t.ok(can('p-demo1/nginx', 'p-demo/nginx', 80), 'namespace p-demo1')
  t.notOk(can('p-demo2/nginx', 'p-demo/nginx', 80))
  t.notOk(can('p-demo3/nginx', 'p-demo/nginx', 80))
  t.ok(can('10.19.139.159', 'p-demo/nginx', 80), 'inside the ipBlock')
  t.notOk(can('10.19.138.147', 'p-demo/nginx', 80), 'outside the ipBlock')

  const nsIngress = policy('p-demo1', 'namespace-ingress', {
    podSelector: {},
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { name: 'p-demo1' } } }] }, { from: [{ namespaceSelector: { matchLabels: { app: 'access' } } }] }],
  })
  const nsEgress = policy('p-demo1', 'namespace-egress', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ to: [{ namespaceSelector: { matchLabels: { name: 'p-demo1' } } }] }, { to: [{ namespaceSelector: { matchLabels: { app: 'access1' } } }] }],
  })
  const can2 = build([ingressDemo, nsIngress, nsEgress])
  t.ok(can2('p-demo/nginx', 'p-demo1/nginx', 80), 'p-demo (app=access) → p-demo1')
  t.ok(can2('p-demo2/nginx', 'p-demo1/nginx', 80), 'p-demo2 (app=access) → p-demo1')
  t.notOk(can2('p-demo3/nginx', 'p-demo1/nginx', 80), 'p-demo3 refused')
  t.ok(can2('p-demo1/nginx', 'p-demo3/nginx', 80), 'egress to app=access1 namespace')
  t.notOk(can2('p-demo1/nginx', 'p-demo/nginx1', 80), 'egress to p-demo refused')
  t.notOk(can2('p-demo1/nginx', 'p-demo2/nginx', 80), 'egress to p-demo2 refused')
})

t.test('seed 002: default deny, then allow nginx, deny egress, allow DNS', async (t) => {
  const demo = 'advanced-policy-demo'
  const namespaces = [ns(demo), ns('kube-system', { name: 'kube-system' })]
  const pods = [
    pod(demo, 'nginx-1', { labels: { run: 'nginx' }, ips: ['10.0.0.13'] }),
    pod(demo, 'nginx-2', { labels: { run: 'nginx' }, ips: ['10.0.0.14'] }),
    pod(demo, 'access', { labels: { run: 'access' }, ips: ['10.0.0.20'] }),
    pod('kube-system', 'coredns', { labels: { 'k8s-app': 'kube-dns' }, ips: ['10.0.0.2'], ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] }),
  ]
  const build = world(pods, namespaces)
  const steps: NetworkPolicy[] = []
  const nginx = `${demo}/nginx-1`
  const access = `${demo}/access`

  t.ok(build(steps)(access, nginx, 80), 'all open before any policy')
  steps.push(policy(demo, 'default-deny-ingress', { podSelector: { matchLabels: {} }, policyTypes: ['Ingress'] }))
  t.notOk(build(steps)(access, nginx, 80), 'ingress denied')
  t.ok(build(steps)(access, '142.250.0.1', 80), 'egress still open')
  steps.push(policy(demo, 'access-nginx', { podSelector: { matchLabels: { run: 'nginx' } }, ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }] }))
  t.ok(build(steps)(access, nginx, 80), 'nginx reachable from the namespace')
  t.notOk(build(steps)('kube-system/coredns', nginx, 80), 'but not from another namespace')
  steps.push(policy(demo, 'default-deny-egress', { podSelector: { matchLabels: {} }, policyTypes: ['Egress'] }))
  t.notOk(build(steps)(access, 'kube-system/coredns', 53, 'udp'), 'DNS denied')
  t.notOk(build(steps)(access, nginx, 80), 'nginx denied by egress')
  steps.push(policy(demo, 'allow-dns-access', { podSelector: { matchLabels: {} }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { name: 'kube-system' } } }], ports: [{ protocol: 'UDP', port: 53 }] }] }))
  t.ok(build(steps)(access, 'kube-system/coredns', 53, 'udp'), 'DNS allowed')
  t.notOk(build(steps)(access, 'kube-system/coredns', 53, 'tcp'), 'only UDP')
  t.notOk(build(steps)(access, '142.250.0.1', 80), 'the internet still denied')
  steps.push(policy(demo, 'allow-egress-to-advance-policy-ns', { podSelector: { matchLabels: {} }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { run: 'nginx' } } }] }] }))
  t.ok(build(steps)(access, nginx, 80), 'nginx reachable again')
  t.ok(build(steps)(access, `${demo}/nginx-2`, 80))
  t.notOk(build(steps)(access, '142.250.0.1', 80))
})
