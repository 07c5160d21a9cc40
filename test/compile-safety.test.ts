// Injection safety: whatever users put in names, labels, ports or addresses,
// nothing but validated tokens reaches `match`/`action`, comments keep only a
// safe alphabet, and set members are canonical addresses.
import t, { type Test } from 'tap'
import { compile } from '../enforcer/compile/index.ts'
import type { DesiredState } from '../enforcer/dataplane/types.ts'
import { DEFAULT_ENFORCER_CONFIG, type NetworkPolicy } from '../enforcer/model.ts'
import { flow, ns, pod, policy, snapshot, workload } from './lib/compile-sim.ts'

const EVIL = [`x" -j ACCEPT`, "a\n-A FORWARD -j ACCEPT", "it's", '$(reboot)', '`id`', 'a;b', 'sp ace', '--comment', 'ü', '\u0000nul']
const TOKEN = /^[A-Za-z0-9_.:,/+-]+$/
const COMMENT = /^[A-Za-z0-9 ./:_=,-]*$/
const MEMBER = /^([0-9a-f.:]+(\/\d+)?( nomatch)?|[0-9a-f.:]+,(tcp|udp|sctp):\d+)$/

function everyToken(s: DesiredState): string[] {
  return [s.v4, s.v6].flatMap((fs) => fs.chains.flatMap((c) => c.rules.flatMap((r) => [...r.match, ...r.action])))
}

function checkSafe(t: Test, s: DesiredState): void {
  const bad = everyToken(s).filter((tok) => !TOKEN.test(tok))
  t.same(bad, [], 'every token is from the safe alphabet')
  for (const fs of [s.v4, s.v6]) {
    for (const c of fs.chains) for (const r of c.rules) if (!COMMENT.test(r.comment) || r.comment.length > 240) t.fail(`unsafe comment ${JSON.stringify(r.comment)}`)
    for (const set of fs.sets) {
      t.match(set.comment, COMMENT)
      for (const m of set.members) if (!MEMBER.test(m)) t.fail(`unsafe member ${JSON.stringify(m)}`)
    }
  }
}

t.test('hostile names and labels stay data', async (t) => {
  const nsName = EVIL[0]
  const pods = [
    pod(nsName, EVIL[1], { labels: { [EVIL[2]]: EVIL[3], app: 'web' }, ips: ['10.0.0.1'], ports: [{ name: EVIL[4], containerPort: 80 }] }),
    pod(nsName, 'cli', { labels: { [EVIL[2]]: EVIL[3] }, ips: ['10.0.0.2'] }),
    pod(nsName, 'other', { labels: { [EVIL[2]]: 'plain' }, ips: ['10.0.0.3'] }),
  ]
  const policies: NetworkPolicy[] = EVIL.map((name) =>
    policy(nsName, name, { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { [EVIL[2]]: EVIL[3] } } }, { namespaceSelector: { matchLabels: { [EVIL[5]]: EVIL[6] } } }] }] }),
  )
  const s = compile(snapshot({ namespaces: [ns(nsName, { [EVIL[7]]: EVIL[8] })], pods, policies, workloads: [workload('wrenweb', nsName, EVIL[1]), workload('wrenother', nsName, 'other')] }), DEFAULT_ENFORCER_CONFIG)
  t.same(s.problems, [])
  checkSafe(t, s)
  const text = JSON.stringify(s)
  // Values made only of safe characters ('sp ace') may legitimately show up in comments.
  for (const e of EVIL.filter((x) => !COMMENT.test(x))) t.notOk(text.includes(JSON.stringify(e).slice(1, -1)), `${JSON.stringify(e)} appears nowhere verbatim`)
  t.ok(s.v4.chains.some((c) => c.rules.some((r) => r.comment.includes('x -j ACCEPT'))), 'comments keep the readable part')
  // Matching still uses the exact strings: the pod with the odd label is a peer, the other is not.
  t.equal(flow(s, { ip: '10.0.0.2' }, { ip: '10.0.0.1', iface: 'wrenweb' }, 80), 'ACCEPT')
  t.equal(flow(s, { ip: '10.0.0.3', iface: 'wrenother' }, { ip: '10.0.0.1', iface: 'wrenweb' }, 80), 'DROP')
})

t.test('hostile values in fields that reach rules are refused', async (t) => {
  const web = pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1', '10.0.0.9 -j ACCEPT', '10.0.0.8\n', ' 10.0.0.7', 'fe80::1%eth0'] })
  const specs: NetworkPolicy['spec'][] = [
    { podSelector: {}, ingress: [{ ports: [{ port: '-j ACCEPT' as never }] }] },
    { podSelector: {}, ingress: [{ ports: [{ port: 'http" ' }] }] },
    { podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP -j ACCEPT', port: 80 }] }] },
    { podSelector: {}, ingress: [{ ports: [{ port: '80' as never }] }] },
    { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8 -j ACCEPT' } }] }] },
    { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16\n'] } }] }] },
    { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '010.0.0.0/8' } }] }] },
  ]
  for (const [i, spec] of specs.entries()) {
    const s = compile(snapshot({ pods: [web], policies: [policy('a', `p${i}`, spec)], workloads: [workload('wrenweb', 'a', 'web')] }), DEFAULT_ENFORCER_CONFIG)
    checkSafe(t, s)
    t.ok(s.problems.some((p) => p.object === `NetworkPolicy a/p${i}`), `policy ${i} reported`)
    t.equal(s.problems.filter((p) => p.object === 'Pod a/web').length, 4, 'four bad pod IPs reported')
    t.equal(flow(s, { ip: '10.0.0.2' }, { ip: '10.0.0.1', iface: 'wrenweb' }, 80), 'DROP', `policy ${i} isolates and allows nothing`)
  }
})

t.test('hostile interface names never reach a rule', async (t) => {
  const web = pod('a', 'web', { ips: ['10.0.0.1'] })
  const bad = ['wren0;reboot', 'wren0 -j ACCEPT', 'WREN0', 'wren', 'wren0123456789ab', 'wren+', '']
  const s = compile(snapshot({ pods: [web], workloads: bad.map((i) => workload(i, 'a', 'web')) }), DEFAULT_ENFORCER_CONFIG)
  checkSafe(t, s)
  t.same(s.workloads, [])
  t.equal(s.problems.length, bad.length)
})

t.test('a long hostile policy name is cut in comments', async (t) => {
  const name = 'n'.repeat(400) + '"'
  const s = compile(snapshot({ pods: [pod('a', 'web', { ips: ['10.0.0.1'] })], policies: [policy('a', name, { podSelector: {}, ingress: [{}] })], workloads: [workload('wrenweb', 'a', 'web')] }), DEFAULT_ENFORCER_CONFIG)
  checkSafe(t, s)
})
