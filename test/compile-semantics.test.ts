// NetworkPolicy semantics, end to end through the compiled chains: each case
// compiles a fixed small cluster plus some policies, then runs packets through
// the output with the interpreter in compile-sim.ts and checks the verdicts.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type NetworkPolicy } from '../enforcer/model.ts'
import { flow, ns, pod, policy, snapshot, workload, type Endpoint } from './lib/compile-sim.ts'

// prod (env=prod), dev (env=dev), other (no Namespace object: only its name label).
const PODS = [
  pod('prod', 'web', { labels: { app: 'web', tier: 'front' }, ips: ['10.0.1.1', 'fd00::1:1'], ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('prod', 'web2', { labels: { app: 'web' }, ips: ['10.0.1.4'], ports: [{ name: 'http', containerPort: 8081 }] }),
  pod('prod', 'db', { labels: { app: 'db' }, ips: ['10.0.1.2'], ports: [{ name: 'sql', containerPort: 5432 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] }),
  pod('prod', 'cli', { labels: { app: 'cli' }, ips: ['10.0.1.3', 'fd00::1:3'] }),
  pod('dev', 'cli', { labels: { app: 'cli' }, ips: ['10.0.2.3'] }),
  pod('dev', 'web', { labels: { app: 'web', tier: 'back' }, ips: ['10.0.2.1'], ports: [{ name: 'http', containerPort: 9090 }] }),
  pod('other', 'x', { labels: { app: 'cli' }, ips: ['10.0.3.1'] }),
  // Not on this node: reachable only as a source/destination address.
  pod('prod', 'remote', { labels: { app: 'cli' }, ips: ['10.9.0.1'] }),
  pod('prod', 'hostnet', { labels: { app: 'cli' }, ips: ['10.0.0.50'], hostNetwork: true }),
  pod('prod', 'done', { labels: { app: 'cli' }, ips: ['10.0.1.99'], phase: 'Succeeded' }),
]
const LOCAL: Record<string, string> = { 'prod/web': 'wrenpweb', 'prod/web2': 'wrenpweb2', 'prod/db': 'wrenpdb', 'prod/cli': 'wrenpcli', 'dev/cli': 'wrendcli', 'dev/web': 'wrendweb', 'other/x': 'wrenox' }
const WORKLOADS = Object.entries(LOCAL).map(([k, iface]) => workload(iface, k.split('/')[0], k.split('/')[1]))
const NAMESPACES = [ns('prod', { env: 'prod' }), ns('dev', { env: 'dev' })]

/** `prod/web`, `prod/web@6` (its IPv6 address), or a bare IP for something off-node. */
function ep(name: string): Endpoint {
  const [id, fam] = name.split('@')
  const p = PODS.find((x) => `${x.metadata.namespace}/${x.metadata.name}` === id)
  if (!p) return { ip: id }
  const ips = p.status!.podIPs!.map((x) => x.ip)
  const ip = ips.find((a) => (fam === '6' ? a.includes(':') : !a.includes(':')))!
  return { ip, iface: LOCAL[id] }
}

type Check = [from: string, to: string, port: number, allowed: boolean, proto?: 'tcp' | 'udp' | 'sctp']
interface Case {
  name: string
  policies: NetworkPolicy[]
  checks: Check[]
}

const P = (name: string, spec: NetworkPolicy['spec'], namespace = 'prod'): NetworkPolicy => policy(namespace, name, spec)
const web = { matchLabels: { app: 'web' } }
const fromPods = (sel: object) => [{ from: [{ podSelector: sel }] }]

const CASES: Case[] = [
  {
    // One rule's peers: any peer matching allows, an except hides only its own block (as rules per peer, or in a union).
    name: 'several peers in one rule: any of them, an ipBlock except does not hide another peer',
    policies: [
      P('p', { podSelector: web, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }, { podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }] }),
      P('q', { podSelector: web, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24', '10.0.2.0/24'] } }, { namespaceSelector: { matchLabels: { env: 'dev' } }, podSelector: web }] }] }),
    ],
    checks: [
      ['prod/cli', 'prod/web', 80, true], ['10.0.1.77', 'prod/web', 80, false], ['dev/cli', 'prod/web', 80, true], ['10.0.3.1', 'prod/web', 80, true],
      ['prod/cli', 'prod/web', 81, false], ['prod/db', 'prod/web', 80, false],
      ['prod/web', 'dev/web', 80, true], ['prod/web', 'dev/cli', 80, false], ['prod/web', '10.0.3.1', 80, true], ['prod/web', 'prod/db', 80, false],
    ],
  },
  { name: 'no policy: everything flows', policies: [], checks: [['prod/cli', 'prod/web', 80, true], ['8.8.8.8', 'prod/web', 80, true], ['prod/web', '8.8.8.8', 443, true]] },
  {
    name: 'default deny ingress in prod isolates only prod, only for ingress',
    policies: [P('deny', { podSelector: {}, policyTypes: ['Ingress'] })],
    checks: [['prod/cli', 'prod/web', 80, false], ['dev/cli', 'prod/web', 80, false], ['prod/web', 'dev/web', 80, true], ['prod/web', '8.8.8.8', 443, true]],
  },
  { name: 'policyTypes omitted and no ingress: deny ingress', policies: [P('deny', { podSelector: web })], checks: [['prod/cli', 'prod/web', 80, false], ['prod/cli', 'prod/db', 80, true], ['prod/web', 'prod/db', 80, true]] },
  { name: 'ingress [{}] allows everything', policies: [P('all', { podSelector: web, ingress: [{}] })], checks: [['prod/cli', 'prod/web', 80, true], ['8.8.8.8', 'prod/web', 22, true]] },
  {
    name: 'podSelector peer: pods of the policy namespace only, on any node',
    policies: [P('p', { podSelector: web, ingress: fromPods({ matchLabels: { app: 'cli' } }) })],
    checks: [['prod/cli', 'prod/web', 80, true], ['10.9.0.1', 'prod/web', 80, true], ['dev/cli', 'prod/web', 80, false], ['other/x', 'prod/web', 80, false], ['prod/db', 'prod/web', 80, false]],
  },
  {
    name: 'namespaceSelector only: every pod of matching namespaces',
    policies: [P('p', { podSelector: web, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }] }] })],
    checks: [['dev/cli', 'prod/web', 80, true], ['dev/web', 'prod/web', 80, true], ['prod/cli', 'prod/web', 80, false]],
  },
  {
    name: 'namespaceSelector and podSelector in one peer: AND',
    policies: [P('p', { podSelector: web, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } }, podSelector: { matchLabels: { app: 'cli' } } }] }] })],
    checks: [['dev/cli', 'prod/web', 80, true], ['dev/web', 'prod/web', 80, false], ['prod/cli', 'prod/web', 80, false]],
  },
  {
    name: 'two peers: OR',
    policies: [P('p', { podSelector: web, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }, { namespaceSelector: { matchLabels: { env: 'dev' } } }] }] })],
    checks: [['prod/cli', 'prod/web', 80, true], ['dev/web', 'prod/web', 80, true], ['other/x', 'prod/web', 80, false], ['prod/db', 'prod/web', 80, false]],
  },
  {
    name: 'empty namespaceSelector: all namespaces; metadata.name label on a namespace without object',
    policies: [
      P('all-ns', { podSelector: web, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'cli' } } }] }] }),
      P('by-name', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'other' } } }] }] }),
    ],
    checks: [['other/x', 'prod/web', 80, true], ['dev/cli', 'prod/web', 80, true], ['dev/web', 'prod/web', 80, false], ['other/x', 'prod/db', 80, true], ['dev/cli', 'prod/db', 80, false]],
  },
  {
    name: 'matchExpressions In / NotIn / Exists / DoesNotExist',
    policies: [
      P('in', { podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'x'] }] }, ingress: fromPods({ matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'cli'] }] }) }),
      P('notin', { podSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web', 'cli'] }] }, ingress: fromPods({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }) }),
      P('exists', { podSelector: { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, ingress: [] }, 'dev'),
    ],
    checks: [
      ['prod/cli', 'prod/web', 80, true], ['prod/db', 'prod/web', 80, true], ['prod/web2', 'prod/web', 80, false],
      ['prod/web2', 'prod/db', 80, false], ['prod/web', 'prod/db', 80, true], ['prod/cli', 'prod/db', 80, false],
      ['prod/web', 'prod/web2', 80, true], ['prod/web', 'dev/web', 80, true],
    ],
  },
  {
    name: 'NotIn matches pods without the key',
    policies: [P('p', { podSelector: web, ingress: fromPods({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }) })],
    checks: [['prod/cli', 'prod/web2', 80, true], ['prod/web', 'prod/web2', 80, false]],
  },
  {
    name: 'ipBlock with except',
    policies: [P('p', { podSelector: web, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.2.0/24'] } }] }] })],
    checks: [['prod/cli', 'prod/web', 80, true], ['dev/cli', 'prod/web', 80, false], ['192.168.1.1', 'prod/web', 80, false], ['prod/cli@6', 'prod/web@6', 80, false]],
  },
  {
    name: 'ipBlock 0.0.0.0/0 except the cluster (egress)',
    policies: [P('p', { podSelector: web, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }] })],
    checks: [['prod/web', '8.8.8.8', 443, true], ['prod/web', '200.1.1.1', 443, true], ['prod/web', 'prod/db', 80, false], ['prod/db', 'prod/web', 80, true]],
  },
  {
    name: 'ports: protocol defaults to TCP, UDP and SCTP, numbers exact',
    policies: [P('p', { podSelector: web, ingress: [{ ports: [{ port: 80 }, { protocol: 'UDP', port: 53 }, { protocol: 'SCTP', port: 9000 }, { protocol: 'UDP' }] }] })],
    checks: [
      ['prod/cli', 'prod/web', 80, true], ['prod/cli', 'prod/web', 81, false], ['prod/cli', 'prod/web', 53, true, 'udp'], ['prod/cli', 'prod/web', 53, false],
      ['prod/cli', 'prod/web', 9000, true, 'sctp'], ['prod/cli', 'prod/web', 9000, false], ['prod/cli', 'prod/web', 4444, true, 'udp'], ['prod/cli', 'prod/web', 80, false, 'sctp'],
    ],
  },
  {
    name: 'endPort range is inclusive',
    policies: [P('p', { podSelector: web, ingress: [{ ports: [{ port: 8000, endPort: 8100 }] }] })],
    checks: [['prod/cli', 'prod/web', 8000, true], ['prod/cli', 'prod/web', 8100, true], ['prod/cli', 'prod/web', 8101, false], ['prod/cli', 'prod/web', 7999, false], ['prod/cli', 'prod/web', 8050, false, 'udp']],
  },
  {
    name: 'named port on ingress resolves per subject pod',
    policies: [P('p', { podSelector: web, ingress: [{ ports: [{ port: 'http' }] }] })],
    checks: [['prod/cli', 'prod/web', 8080, true], ['prod/cli', 'prod/web', 8081, false], ['prod/cli', 'prod/web2', 8081, true], ['prod/cli', 'prod/web2', 8080, false], ['prod/cli', 'prod/web', 8080, false, 'udp']],
  },
  {
    name: 'named port on egress resolves against the peer pods',
    policies: [P('p', { podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: web }], ports: [{ port: 'http' }] }, { ports: [{ protocol: 'UDP', port: 'dns' }] }] })],
    checks: [
      ['prod/cli', 'prod/web', 8080, true], ['prod/cli', 'dev/web', 9090, true], ['prod/cli', 'dev/web', 8080, false], ['prod/cli', '8.8.8.8', 8080, false],
      ['prod/cli', 'prod/db', 53, true, 'udp'], ['prod/cli', 'prod/web', 53, false, 'udp'], ['prod/cli', 'prod/db', 5432, false],
    ],
  },
  { name: 'a named port that resolves to nothing allows nothing', policies: [P('p', { podSelector: web, ingress: [{ ports: [{ port: 'nope' }] }] })], checks: [['prod/cli', 'prod/web', 8080, false], ['prod/cli', 'prod/web', 80, false]] },
  {
    name: 'several policies selecting one pod: union',
    policies: [
      P('a', { podSelector: web, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }] }),
      P('b', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }], ports: [{ port: 443 }] }] }),
    ],
    checks: [['prod/cli', 'prod/web', 80, true], ['prod/cli', 'prod/web', 443, false], ['dev/cli', 'prod/web', 443, true], ['dev/cli', 'prod/web', 80, false], ['dev/cli', 'prod/db', 443, true]],
  },
  {
    name: 'egress isolation only: ingress of the pod stays open',
    policies: [P('p', { podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 5432 }] }] })],
    checks: [['prod/cli', 'prod/db', 5432, true], ['prod/cli', 'prod/web', 80, false], ['prod/cli', '8.8.8.8', 53, false, 'udp'], ['prod/web', 'prod/cli', 80, true], ['dev/cli', 'prod/web', 80, true]],
  },
  { name: 'egress rules imply Egress when policyTypes is omitted', policies: [P('p', { podSelector: web, egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] })], checks: [['prod/web', '8.8.8.8', 53, true, 'udp'], ['prod/web', '8.8.8.8', 443, false], ['prod/cli', 'prod/web', 80, false]] },
  { name: 'egress: [] without policyTypes is ingress-only', policies: [P('p', { podSelector: web, ingress: [{}], egress: [] })], checks: [['prod/web', '8.8.8.8', 443, true], ['prod/cli', 'prod/web', 80, true]] },
  { name: 'explicit policyTypes [Egress] ignores ingress rules', policies: [P('p', { podSelector: web, policyTypes: ['Egress'], ingress: [{ from: [{ ipBlock: { cidr: '1.1.1.1/32' } }] }] })], checks: [['prod/cli', 'prod/web', 80, true], ['prod/web', '8.8.8.8', 80, false]] },
  {
    name: 'pod to pod needs the sender egress and the receiver ingress',
    policies: [
      P('cli-egress', { podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: web }] }] }),
      P('web-ingress', { podSelector: web, ingress: fromPods({ matchLabels: { app: 'db' } }) }),
    ],
    checks: [['prod/cli', 'prod/web', 80, false], ['prod/db', 'prod/web', 80, true], ['prod/cli', 'prod/db', 80, false]],
  },
  {
    name: 'IPv6 flows use the IPv6 sets',
    policies: [P('p', { podSelector: web, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }, { ipBlock: { cidr: 'fd00::/16', except: ['fd00::1:0/112'] } }] }] })],
    checks: [['prod/cli@6', 'prod/web@6', 80, true], ['fd00:2::1', 'prod/web@6', 80, true], ['fd00::1:9', 'prod/web@6', 80, false], ['fe80::1', 'prod/web@6', 80, false], ['prod/cli', 'prod/web', 80, true]],
  },
  {
    name: 'host-network and finished pods are never peers',
    policies: [P('p', { podSelector: web, ingress: fromPods({ matchLabels: { app: 'cli' } }) })],
    checks: [['10.0.0.50', 'prod/web', 80, false], ['10.0.1.99', 'prod/web', 80, false], ['10.9.0.1', 'prod/web', 80, true]],
  },
]

// Every case twice: the default layout (few peers of a port group one rule each)
// and with every group of several peers merged into one union set.
const LAYOUTS = [
  { name: '', config: DEFAULT_ENFORCER_CONFIG },
  { name: ' (union sets)', config: { ...DEFAULT_ENFORCER_CONFIG, unionAbove: 0 } },
]

let unions = 0
for (const c of CASES) for (const layout of LAYOUTS) {
  t.test(c.name + layout.name, async (t) => {
    const state = compile(snapshot({ namespaces: NAMESPACES, pods: PODS, policies: c.policies, workloads: WORKLOADS }), layout.config)
    unions += [...state.v4.sets, ...state.v6.sets].filter((s) => s.name.startsWith('wren4u-') || s.name.startsWith('wren6u-')).length
    t.same(state.problems, [], 'no problems')
    for (const [from, to, port, allowed, proto] of c.checks) {
      const v = flow(state, ep(from), ep(to), port, proto ?? 'tcp')
      t.equal(v, allowed ? 'ACCEPT' : 'DROP', `${from} -> ${to} ${proto ?? 'tcp'}/${port}`)
    }
  })
}

t.test('the union layout was exercised', async (t) => {
  t.ok(unions > 0, `${unions} union sets across the cases`)
})

t.test('established and related traffic passes even a deny-all', async (t) => {
  const state = compile(snapshot({ namespaces: NAMESPACES, pods: PODS, workloads: WORKLOADS, policies: [P('deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })] }), DEFAULT_ENFORCER_CONFIG)
  t.equal(flow(state, ep('prod/cli'), ep('prod/web'), 80, 'tcp', 'ESTABLISHED'), 'ACCEPT')
  t.equal(flow(state, ep('prod/cli'), ep('prod/web'), 80, 'tcp', 'NEW'), 'DROP')
  t.equal(flow(state, ep('dev/cli'), ep('dev/web'), 80, 'tcp', 'INVALID'), 'DROP', 'invalid is dropped even without policy')
})

t.test('traffic not touching a wren interface is left alone', async (t) => {
  const state = compile(snapshot({ namespaces: NAMESPACES, pods: PODS, workloads: WORKLOADS, policies: [P('deny', { podSelector: {} })] }), DEFAULT_ENFORCER_CONFIG)
  t.equal(flow(state, { ip: '192.168.1.1' }, { ip: '8.8.8.8' }, 80), 'PASS')
})
