// The chain layout and set contents the compiler emits: fixed chains, per
// workload chains and their port groups, which sets exist and what they hold,
// and which workloads get chains at all.
import t from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import type { Chain, DesiredState, FamilyState } from '../enforcer/dataplane/types.ts'
import { DEFAULT_ENFORCER_CONFIG } from '../enforcer/model.ts'
import { setName } from '../shared/names.ts'
import { flow, ns, pod, policy, snapshot, verdict, workload } from './lib/compile-sim.ts'

const cfg = DEFAULT_ENFORCER_CONFIG
const chain = (fs: FamilyState, name: string): Chain | undefined => fs.chains.find((c) => c.name === name)
const lines = (c: Chain | undefined): string[] => (c?.rules ?? []).map((r) => [...r.match, '=>', ...r.action].join(' '))

const web = pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1', 'fd00::1'], ports: [{ name: 'http', containerPort: 8080 }] })
const cli = pod('a', 'cli', { labels: { app: 'cli' }, ips: ['10.0.0.2'] })
const far = pod('b', 'far', { labels: { app: 'cli' }, ips: ['10.1.0.2'] })
const allowCli = policy('a', 'allow-cli', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }] })
const WL = [workload('wrenweb', 'a', 'web'), workload('wrencli', 'a', 'cli')]
const base = (extra: Parameters<typeof snapshot>[0] = {}, config = cfg): DesiredState =>
  compile(snapshot({ namespaces: [ns('a')], pods: [web, cli, far], policies: [allowCli], workloads: WL, ...extra }), config)

t.test('hooks and fixed chains', async (t) => {
  const s = base()
  for (const fs of [s.v4, s.v6]) {
    t.same(fs.hooks, [
      { table: 'filter', chain: 'FORWARD', target: 'wren-FORWARD' },
      { table: 'filter', chain: 'INPUT', target: 'wren-INPUT' },
      { table: 'filter', chain: 'OUTPUT', target: 'wren-OUTPUT' },
      { table: 'raw', chain: 'PREROUTING', target: 'wren-PREROUTING' },
    ])
    t.same(lines(chain(fs, 'wren-FORWARD')), [
      '=> -j MARK --set-xmark 0x0/0x10000',
      '-i wren+ => -j wren-from-wl-dispatch',
      '-o wren+ => -j wren-to-wl-dispatch',
      '-m mark --mark 0x10000/0x10000 => -j ACCEPT',
    ])
    t.same(lines(chain(fs, 'wren-from-wl-dispatch')), ['-i wrencli => -g wren-fw-wrencli', '-i wrenweb => -g wren-fw-wrenweb', '=> -j DROP'])
    t.same(lines(chain(fs, 'wren-to-wl-dispatch')), ['-o wrencli => -g wren-tw-wrencli', '-o wrenweb => -g wren-tw-wrenweb', '=> -j DROP'])
    t.same(lines(chain(fs, 'wren-INPUT')), ['-i wren+ => -j wren-wl-to-host'])
    t.same(lines(chain(fs, 'wren-wl-to-host')), ['-i wrencli => -j ACCEPT', '-i wrenweb => -j ACCEPT', '=> -j DROP'])
    t.same(lines(chain(fs, 'wren-OUTPUT')), ['-o wren+ => -j ACCEPT'])
    t.same(lines(chain(fs, 'wren-PREROUTING')), ['-i wren+ -m rpfilter --invert => -j DROP'])
    t.equal(chain(fs, 'wren-PREROUTING')!.table, 'raw')
  }
  t.same(s.v4.chains.map((c) => c.name), s.v6.chains.map((c) => c.name), 'both families have the same chains')
})

t.test('workload chains: conntrack, one rule per port group, then DROP or allow', async (t) => {
  const other = policy('a', 'aaa-first', { podSelector: {}, ingress: [{}] })
  const s = base({ policies: [allowCli, other] })
  const peers = setName('ip', 4, JSON.stringify(['pods', 'a', null, JSON.stringify([['app', 'In', ['cli']]])]))
  t.same(lines(chain(s.v4, 'wren-tw-wrenweb')), [
    '-m conntrack --ctstate RELATED,ESTABLISHED => -j ACCEPT',
    '-m conntrack --ctstate INVALID => -j DROP',
    '=> -j ACCEPT',
    `-p tcp -m tcp --dport 80 -m set --match-set ${peers} src => -j ACCEPT`,
    '=> -j DROP',
  ], 'port groups sorted by match (each ACCEPTs what it allows), isolated → DROP')
  t.same(chain(s.v4, 'wren-tw-wrenweb')!.rules.slice(2).map((r) => r.comment), [
    'ingress all allowed by a/aaa-first rule 0',
    'ingress tcp:80 allowed by a/allow-cli rule 0',
    'workload a/web no policy allowed ingress: isolated by a/aaa-first, a/allow-cli',
  ], 'comments name the policies and rules behind each verdict')
  t.same(lines(chain(s.v4, 'wren-fw-wrenweb')).slice(2), ['=> -j MARK --set-xmark 0x0/0x10000', '=> -j MARK --set-xmark 0x10000/0x10000'], 'not isolated for egress → accept mark')
  t.notOk(s.v4.chains.some((c) => /^wren-p[io]-/.test(c.name)), 'no chain per policy')
  const egress = policy('a', 'eg', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'], egress: [{}] })
  const e = base({ policies: [egress] })
  t.same(lines(chain(e.v4, 'wren-fw-wrenweb')), [
    '-m conntrack --ctstate RELATED,ESTABLISHED => -j ACCEPT',
    '-m conntrack --ctstate INVALID => -j DROP',
    '=> -j MARK --set-xmark 0x0/0x10000',
    '=> -j MARK --set-xmark 0x10000/0x10000',
    '-m mark --mark 0x10000/0x10000 => -j RETURN',
    '=> -j DROP',
  ], 'egress keeps the accept mark: the receiver still judges ingress')
  t.same(lines(chain(e.v4, 'wren-tw-wrenweb')).slice(2), ['=> -j ACCEPT'], 'not isolated for ingress → ACCEPT')
  const denied = base({ policies: [policy('a', 'deny', { podSelector: {}, ingress: [] })] })
  t.same(lines(chain(denied.v4, 'wren-tw-wrenweb')).slice(2), ['=> -j DROP'], 'a policy allowing nothing: isolated, no group')
})

t.test('port groups: a few peers one rule each, more in one union set', async (t) => {
  const s = base()
  const podsKey = JSON.stringify(['pods', 'a', null, JSON.stringify([['app', 'In', ['cli']]])])
  const peers = setName('ip', 4, podsKey)
  t.same(lines(chain(s.v4, 'wren-tw-wrenweb')).slice(2, 3), [`-p tcp -m tcp --dport 80 -m set --match-set ${peers} src => -j ACCEPT`], 'one peer: its own set')

  const from = [{ podSelector: { matchLabels: { app: 'cli' } } }, { ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.0.0/24'] } }, { ipBlock: { cidr: 'fd00::/8' } }]
  const multi = policy('a', 'multi', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from, ports: [{ port: 80 }, { port: 443 }] }], egress: [{ to: from }] })
  const netKey = JSON.stringify(['net', '10.1.0.0/16', ['10.1.0.0/24']])
  const net = setName('net', 4, netKey)

  const m = base({ policies: [multi, allowCli] })
  t.same(lines(chain(m.v4, 'wren-tw-wrenweb')).slice(2, 6), [
    `-p tcp -m tcp --dport 443 -m set --match-set ${net} src => -j ACCEPT`,
    `-p tcp -m tcp --dport 443 -m set --match-set ${peers} src => -j ACCEPT`,
    `-p tcp -m tcp --dport 80 -m set --match-set ${net} src => -j ACCEPT`,
    `-p tcp -m tcp --dport 80 -m set --match-set ${peers} src => -j ACCEPT`,
  ], 'two peers (at most unionAbove): one rule per peer, each its own shared set')
  t.same(chain(m.v4, 'wren-tw-wrenweb')!.rules.slice(4, 6).map((r) => r.comment), ['ingress tcp:80 allowed by a/multi rule 0', 'ingress tcp:80 allowed by a/allow-cli rule 0, a/multi rule 0'], 'each names the rules that allow its peer')

  const u0 = base({ policies: [multi, allowCli] }, { ...cfg, unionAbove: 0 })
  const union = setName('union', 4, JSON.stringify([netKey, podsKey].sort()))
  t.same(lines(chain(u0.v4, 'wren-tw-wrenweb')).slice(2, 4), [
    `-p tcp -m tcp --dport 443 -m set --match-set ${union} src => -j ACCEPT`,
    `-p tcp -m tcp --dport 80 -m set --match-set ${union} src => -j ACCEPT`,
  ], 'more peers than unionAbove: one union set; port 80 of two policies: one rule')
  t.equal(chain(u0.v4, 'wren-tw-wrenweb')!.rules[3].comment, 'ingress tcp:80 allowed by a/allow-cli rule 0, a/multi rule 0')
  const u = u0.v4.sets.find((x) => x.name === union)!
  t.same([u.type, u.members], [
    'hash:net',
    ['10.0.0.2', '10.1.1.0/24', '10.1.128.0/17', '10.1.16.0/20', '10.1.2.0/23', '10.1.32.0/19', '10.1.4.0/22', '10.1.64.0/18', '10.1.8.0/21'],
  ], 'the except carved out as positive entries, beside the pod')
  t.same(lines(chain(u0.v4, 'wren-fw-wrenweb')).slice(3), [
    `-m set --match-set ${union} dst => -j MARK --set-xmark 0x10000/0x10000`,
    '-m mark --mark 0x10000/0x10000 => -j RETURN',
    '=> -j DROP',
  ], 'egress: the same union against the destination, then the mark')
  const v6union = setName('union', 6, JSON.stringify([podsKey, JSON.stringify(['net', 'fd00::/8', []])].sort()))
  t.match(lines(chain(u0.v6, 'wren-tw-wrenweb'))[2], `--match-set ${v6union} src`, 'IPv6 unites IPv6 peers only')
  const web4 = { ip: '10.0.0.1', iface: 'wrenweb' }
  for (const [state, layout] of [[m, 'rules per peer'], [u0, 'union']] as const) {
    t.equal(flow(state, { ip: '10.1.1.5' }, web4, 80), 'ACCEPT', `${layout}: inside the block`)
    t.equal(flow(state, { ip: '10.1.0.2', iface: 'wrenfar' }, web4, 80), 'DROP', `${layout}: inside the except (a pod of another namespace)`)
    t.equal(flow(state, { ip: '10.0.0.2', iface: 'wrencli' }, web4, 443), 'ACCEPT', `${layout}: the pod peer`)
  }
})

t.test('overlapping ipBlocks with excepts unite exactly', async (t) => {
  // one block's except is partly allowed by another: a set of nomatch entries would answer by
  // its most specific entry (10.1.0.0/16 nomatch) and wrongly refuse 10.1.3.5
  const p = policy('a', 'blocks', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }, { from: [{ ipBlock: { cidr: '10.0.0.0/12', except: ['10.1.2.0/24'] } }] }],
  })
  const s = base({ policies: [p] }, { ...cfg, unionAbove: 0 })
  t.ok(s.v4.sets.some((x) => x.name.startsWith('wren4u-')), 'one union set')
  const web4 = { ip: '10.0.0.1', iface: 'wrenweb' }
  for (const [ip, want] of [['10.1.3.5', 'ACCEPT'], ['10.1.2.5', 'DROP'], ['10.200.0.1', 'ACCEPT'], ['10.16.1.1', 'ACCEPT'], ['11.0.0.1', 'DROP']] as const) {
    t.equal(flow(s, { ip }, web4, 80), want, `${ip} ${want}`)
  }
})

t.test('no chain or set for a policy that selects no local workload', async (t) => {
  const remoteOnly = policy('b', 'far-only', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { x: 'y' } } }] }] })
  const s = base({ policies: [allowCli, remoteOnly] })
  t.equal(s.v4.sets.length, 1, 'only the local policy\'s peer set')
  const none = base({ workloads: [workload('wrencli', 'a', 'cli')] })
  t.same(none.v4.sets, [], 'web not local: no sets')
})

t.test('peer sets hold every matching pod in the cluster, per family', async (t) => {
  const p = policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'cli' } } }] }] })
  const s = base({ policies: [p] })
  t.same(s.v4.sets.map((x) => [x.type, x.family, x.members]), [['hash:ip', 4, ['10.0.0.2', '10.1.0.2']]])
  t.same(s.v6.sets.map((x) => [x.type, x.family, x.members]), [['hash:ip', 6, []]], 'the empty IPv6 set still exists')
  t.not(s.v4.sets[0].name, s.v6.sets[0].name)
})

t.test('equivalent selectors share one set', async (t) => {
  // different ports keep the peers in groups of their own, each a set of one peer
  const a = policy('a', 'p1', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }] })
  const b = policy('a', 'p2', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['cli', 'cli'] }] } }], ports: [{ port: 81 }] }] })
  const c = policy('a', 'p3', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { x: 'y' } } }], ports: [{ port: 82 }] }] })
  const s = base({ policies: [a, b, c] })
  t.equal(s.v4.sets.length, 2)
})

t.test('ipBlock sets: except as nomatch, /0 split in halves', async (t) => {
  const members = (cidr: string, except: string[], fam: 'v4' | 'v6' = 'v4') => {
    const p = policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr, except } }] }] })
    return base({ policies: [p] })[fam].sets.map((x) => [x.type, ...x.members])
  }
  t.same(members('10.0.0.0/8', ['10.1.0.0/16', '10.2.0.0/16']), [['hash:net', '10.0.0.0/8', '10.1.0.0/16 nomatch', '10.2.0.0/16 nomatch']])
  t.same(members('10.0.0.5/8', []), [['hash:net', '10.0.0.0/8']], 'host bits cleared')
  t.same(members('0.0.0.0/0', ['10.0.0.0/8']), [['hash:net', '0.0.0.0/1', '10.0.0.0/8 nomatch', '128.0.0.0/1']])
  t.same(members('0.0.0.0/0', ['128.0.0.0/1']), [['hash:net', '0.0.0.0/1']], 'an except equal to a half removes it')
  t.same(members('::/0', []), [], 'IPv6 block absent from the IPv4 state')
  t.same(members('::/0', ['FD00:0::/8'], 'v6'), [['hash:net', '8000::/1', '::/1', 'fd00::/8 nomatch']])
})

t.test('named port sets: ingress on subject pods, egress on any pod', async (t) => {
  const ing = policy('a', 'i', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 'http' }] }] })
  const s = base({ policies: [ing] })
  t.same(s.v4.sets.map((x) => [x.type, ...x.members]), [['hash:ip,port', '10.0.0.1,tcp:8080']])
  t.same(s.v6.sets.map((x) => [x.type, ...x.members]), [['hash:ip,port', 'fd00::1,tcp:8080']])
  t.match(lines(chain(s.v4, 'wren-tw-wrenweb'))[2], /^-m set --match-set wren4p-\w+ dst,dst => -j ACCEPT$/)
  const eg = policy('a', 'e', { podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 'http' }] }] })
  const s2 = base({ policies: [eg] })
  const rule = lines(chain(s2.v4, 'wren-fw-wrencli'))[3]
  t.match(rule, /^-m set --match-set wren4p-\w+ dst,dst -m set --match-set wren4n-\w+ dst => /, 'named port AND peer')
  t.equal(flow(s2, { ip: '10.0.0.2', iface: 'wrencli' }, { ip: '10.0.0.1', iface: 'wrenweb' }, 8080), 'ACCEPT')
})

t.test('workloads: unknown pod, no identity, bad names, conflicts', async (t) => {
  const wls = [
    workload('wrenweb', 'a', 'web'),
    workload('wrenghost', 'a', 'ghost'),
    workload('wrenanon'),
    workload('wren-bad'),
    workload('eth0', 'a', 'cli'),
    workload('wrenhalf', 'a'),
    workload('wrentwice', 'a', 'web'),
    workload('wrentwice', 'a', 'cli'),
    workload('wrenweb', 'a', 'web'),
  ]
  const s = base({ workloads: wls, policies: [policy('a', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })] })
  t.same(s.workloads, ['wrenanon', 'wrenweb'])
  t.same(s.problems.map((p) => p.object + ': ' + p.message), [
    'Pod a/ghost: waiting for pod a/ghost',
    'Workload "eth0": host interface is not wren followed by up to 11 lowercase letters or digits',
    'Workload "wren-bad": host interface is not wren followed by up to 11 lowercase letters or digits',
    'Workload "wrenhalf": workload names only half a pod identity (namespace or pod missing)',
    'Workload "wrentwice": host interface wrentwice is claimed by several pods',
  ])
  t.notOk(chain(s.v4, 'wren-fw-wrenghost'), 'no chains for a pod not yet known')
  t.equal(flow(s, { ip: '10.0.0.7', iface: 'wrenghost' }, { ip: '8.8.8.8' }, 80), 'DROP', 'its traffic is dropped by dispatch')
  t.equal(flow(s, { ip: '8.8.8.8' }, { ip: '10.0.0.7', iface: 'wrenghost' }, 80), 'DROP')
  t.equal(flow(s, { ip: '10.0.0.8', iface: 'wrenanon' }, { ip: '8.8.8.8' }, 80), 'ACCEPT', 'a pod without identity is selected by nothing')
  t.equal(flow(s, { ip: '10.0.0.1', iface: 'wrenweb' }, { ip: '8.8.8.8' }, 80), 'DROP')
  t.equal(verdict(s, 'INPUT', { family: 4, in: 'wrenghost', src: '10.0.0.7', dst: '10.0.0.254', proto: 'tcp', dport: 22 }), 'DROP')
})

t.test('host traffic: allowed by default, egress-judged when configured', async (t) => {
  const deny = policy('a', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })
  const toHost = { family: 4 as const, in: 'wrenweb', src: '10.0.0.1', dst: '192.168.0.10', proto: 'tcp' as const, dport: 10250 }
  const fromHost = { family: 4 as const, out: 'wrenweb', src: '192.168.0.10', dst: '10.0.0.1', proto: 'tcp' as const, dport: 8080 }
  const s = base({ policies: [deny] })
  t.equal(verdict(s, 'INPUT', toHost), 'ACCEPT')
  t.equal(verdict(s, 'OUTPUT', fromHost), 'ACCEPT', 'host to pod always allowed')
  const strict = { ...cfg, allowWorkloadToHost: false }
  const s2 = compile(snapshot({ pods: [web, cli], policies: [deny], workloads: WL }), strict)
  t.equal(verdict(s2, 'INPUT', toHost), 'DROP', 'egress deny applies to the host')
  t.same(lines(chain(s2.v4, 'wren-wl-to-host')), ['-i wrencli => -g wren-fw-wrencli', '-i wrenweb => -g wren-fw-wrenweb', '=> -j DROP'])
  t.equal(chain(s2.v6, 'wren-wl-to-host')!.rules.length, 6, 'IPv6 keeps neighbour discovery (3 rules) first')
  const s3 = compile(snapshot({ pods: [web, cli], policies: [], workloads: WL }), strict)
  t.equal(verdict(s3, 'INPUT', toHost), 'ACCEPT', 'egress-open pod reaches the host through the mark')
})

t.test('custom prefix and mark flow through every chain', async (t) => {
  const s = compile(snapshot({ pods: [web], policies: [allowCli], workloads: [workload('podxweb', 'a', 'web')] }), { ...cfg, ifacePrefix: 'podx', acceptMark: 0x4 })
  const text = JSON.stringify(s.v4.chains)
  t.notMatch(text, /wren\+|0x10000/)
  t.match(lines(chain(s.v4, 'wren-FORWARD')), ['=> -j MARK --set-xmark 0x0/0x4', '-i podx+ => -j wren-from-wl-dispatch'])
})
