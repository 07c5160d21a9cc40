// Fail closed: a policy wren cannot honour isolates the pods it selects in the
// affected direction, allows nothing there, and is reported as a Problem.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type NetworkPolicy } from '../enforcer/model.ts'
import { flow, ns, pod, policy, snapshot, workload } from './lib/compile-sim.ts'

const PODS = [pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'] }), pod('a', 'cli', { labels: { app: 'cli' }, ips: ['10.0.0.2'] })]
const WL = [workload('wrenweb', 'a', 'web'), workload('wrencli', 'a', 'cli')]
const WEB = { ip: '10.0.0.1', iface: 'wrenweb' }
const CLI = { ip: '10.0.0.2', iface: 'wrencli' }

function run(spec: unknown) {
  const p = policy('a', 'bad', spec as NetworkPolicy['spec'])
  return compile(snapshot({ namespaces: [ns('a')], pods: PODS, policies: [p], workloads: WL }), DEFAULT_ENFORCER_CONFIG)
}

const allIngress = { podSelector: {}, namespaceSelector: {} }
type Bad = [name: string, spec: unknown, message: RegExp]
const INGRESS_BAD: Bad[] = [
  ['unknown protocol', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] }, /protocol "ICMP"/],
  ['lower-case protocol', { podSelector: {}, ingress: [{ ports: [{ protocol: 'tcp', port: 80 }] }] }, /protocol "tcp"/],
  ['port 0', { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }, /not a port number/],
  ['port 65536', { podSelector: {}, ingress: [{ ports: [{ port: 65536 }] }] }, /not a port number/],
  ['fractional port', { podSelector: {}, ingress: [{ ports: [{ port: 80.5 }] }] }, /not a port number/],
  ['endPort below port', { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, /below port/],
  ['endPort out of range', { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 70000 }] }] }, /endPort 70000/],
  ['endPort with a named port', { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, /named port/],
  ['endPort without port', { podSelector: {}, ingress: [{ ports: [{ endPort: 90 }] }] }, /needs a numeric port/],
  ['numeric string port', { podSelector: {}, ingress: [{ ports: [{ port: '80' }] }] }, /neither a port number nor a valid port name/],
  ['bad CIDR', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, /not a CIDR/],
  ['CIDR without length', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1' } }] }] }, /not a CIDR/],
  ['except outside cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] }, /strictly inside/],
  ['except of the other family', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['fd00::/64'] } }] }] }, /strictly inside/],
  ['except equal to cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] }] }, /strictly inside/],
  ['bad operator', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['cli'] }] } }] }] }, /unsupported operator "Equals"/],
  ['In without values', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: [] }] } }] }] }, /needs values/],
  ['Exists with values', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] } }] }] }, /takes no values/],
  ['non-string matchLabels value', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 1 } } }] }] }, /must be a string/],
  ['empty peer', { podSelector: {}, ingress: [{ from: [{}] }] }, /names no podSelector/],
  ['ipBlock with a selector', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, /together with a selector/],
  ['from not a list', { podSelector: {}, ingress: [{ from: allIngress }] }, /must be a list/],
  ['ingress not a list', { podSelector: {}, ingress: { from: [] } }, /spec.ingress must be a list/],
]

for (const [name, spec, message] of INGRESS_BAD) {
  t.test(`ingress: ${name}`, async (t) => {
    const state = run(spec)
    t.equal(state.problems.length, 1, 'one problem')
    const p = state.problems[0]
    t.equal(p.object, 'NetworkPolicy a/bad')
    t.match(p.message, message)
    t.match(p.effect, /isolated selected pods for ingress/)
    t.equal(flow(state, CLI, WEB, 80), 'DROP', 'isolated, nothing allowed')
    t.equal(flow(state, { ip: '10.0.0.9' }, WEB, 80), 'DROP', 'not even from outside')
    t.equal(flow(state, WEB, { ip: '8.8.8.8' }, 80), 'ACCEPT', 'egress untouched')
  })
}

t.test('a bad egress direction leaves the good ingress direction of the same policy working', async (t) => {
  const state = run({ podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }], egress: [{ ports: [{ protocol: 'GRE' }] }] })
  t.equal(state.problems.length, 1)
  t.match(state.problems[0].effect, /egress/)
  t.equal(flow(state, CLI, WEB, 80), 'ACCEPT', 'ingress rules still honoured')
  t.equal(flow(state, WEB, { ip: '8.8.8.8' }, 53, 'udp'), 'DROP', 'egress isolated with no allow')
  t.equal(flow(state, WEB, CLI, 80), 'DROP')
})

t.test('one bad rule voids every rule of that direction (whole-direction granularity)', async (t) => {
  const state = run({ podSelector: {}, ingress: [{}, { ports: [{ port: -1 }] }] })
  t.equal(flow(state, CLI, WEB, 80), 'DROP', 'the valid allow-all rule next to it does not count')
})

t.test('unknown policyType isolates both directions', async (t) => {
  const state = run({ podSelector: {}, policyTypes: ['ingress'], ingress: [{}] })
  t.match(state.problems[0].message, /unknown value "ingress"/)
  t.equal(flow(state, CLI, WEB, 80), 'DROP')
  t.equal(flow(state, WEB, { ip: '8.8.8.8' }, 80), 'DROP')
})

t.test('a bad spec.podSelector selects the whole namespace', async (t) => {
  const state = run({ podSelector: { matchExpressions: [{ key: 'app', operator: 'Near' }] }, ingress: [{}] })
  t.equal(state.problems.length, 1)
  t.match(state.problems[0].effect, /every pod in the namespace/)
  t.equal(flow(state, WEB, CLI, 80), 'DROP', 'cli isolated too')
  t.equal(flow(state, CLI, WEB, 80), 'DROP', 'and nothing allowed, not even the [{}] rule')
})

t.test('a good policy next to a bad one still allows (policies are additive)', async (t) => {
  const good = policy('a', 'good', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }] })
  const bad = policy('a', 'bad', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] })
  const state = compile(snapshot({ pods: PODS, policies: [good, bad], workloads: WL }), DEFAULT_ENFORCER_CONFIG)
  t.equal(state.problems.length, 1)
  t.equal(flow(state, CLI, WEB, 80), 'ACCEPT')
  t.equal(flow(state, WEB, CLI, 80), 'DROP')
})

t.test('two different objects under one namespace/name: fail closed', async (t) => {
  const a = policy('a', 'dup', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] })
  const b = policy('a', 'dup', { podSelector: { matchLabels: { app: 'cli' } }, ingress: [{}] })
  const state = compile(snapshot({ pods: PODS, policies: [a, b], workloads: WL }), DEFAULT_ENFORCER_CONFIG)
  t.match(state.problems, [{ object: 'NetworkPolicy a/dup', message: /several different objects/ }])
  t.equal(flow(state, CLI, WEB, 80), 'DROP')
  t.equal(flow(state, WEB, CLI, 80), 'DROP')
  const same = compile(snapshot({ pods: PODS, policies: [a, structuredClone(a)], workloads: WL }), DEFAULT_ENFORCER_CONFIG)
  t.same(same.problems, [], 'identical duplicates are one policy')
  t.equal(flow(same, CLI, WEB, 80), 'ACCEPT')
})

t.test('an invalid pod IP is reported and left out', async (t) => {
  const bad = pod('a', 'odd', { labels: { app: 'cli' }, ips: ['10.0.0.300', '10.0.0.3'] })
  const p = policy('a', 'p', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }] })
  const state = compile(snapshot({ pods: [...PODS, bad], policies: [p], workloads: WL }), DEFAULT_ENFORCER_CONFIG)
  t.match(state.problems, [{ object: 'Pod a/odd', message: /10.0.0.300/ }])
  t.ok(state.v4.sets.some((s) => s.members.includes('10.0.0.3')), 'the valid address is kept')
})

t.test('a bad config is refused rather than compiled', async (t) => {
  const s = snapshot({})
  t.throws(() => compile(s, { ...DEFAULT_ENFORCER_CONFIG, acceptMark: 0x30000 }), /single bit/)
  t.throws(() => compile(s, { ...DEFAULT_ENFORCER_CONFIG, acceptMark: 0 }), /single bit/)
  t.throws(() => compile(s, { ...DEFAULT_ENFORCER_CONFIG, ifacePrefix: 'wr+' }), /ifacePrefix/)
  t.doesNotThrow(() => compile(s, { ...DEFAULT_ENFORCER_CONFIG, acceptMark: 0x80000000 }))
})

t.test('a set with more entries than --set-max-elem is left empty and reported; the rest is programmed', async (t) => {
  // 6 client pods behind one selector; a set may hold 5
  const clients = Array.from({ length: 6 }, (_, i) => pod('a', `c${i}`, { labels: { app: 'many' }, ips: [`10.0.1.${i + 1}`] }))
  const many = policy('a', 'from-many', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'many' } } }] }] })
  const few = policy('a', 'from-cli', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }] })
  const config = { ...DEFAULT_ENFORCER_CONFIG, setMaxElem: 5 }
  const state = compile(snapshot({ pods: [...PODS, ...clients], policies: [many, few], workloads: WL }), config)
  t.match(state.problems, [{ object: /^ipset wren4\w-\w+ \(.*app=many/, message: '6 entries, more than --set-max-elem 5', effect: /allow nothing/ }])
  t.equal(flow(state, { ip: '10.0.1.1' }, WEB, 80), 'DROP', 'the oversized peer allows nothing (never a cut set)')
  t.equal(flow(state, CLI, WEB, 80), 'ACCEPT', 'the other policy still allows')
  t.ok(state.v4.sets.every((s) => s.members.length <= 5), 'no set over maxelem reaches the writer')
  const fits = compile(snapshot({ pods: [...PODS, ...clients.slice(1)], policies: [many, few], workloads: WL }), config)
  t.same(fits.problems, [], 'at exactly maxelem nothing is reported')
  t.equal(flow(fits, { ip: '10.0.1.2' }, WEB, 80), 'ACCEPT')
})
