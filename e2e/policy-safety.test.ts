// Safety behaviours with real traffic: anti-spoofing, fail-closed on an
// unknown wren interface, policies wren cannot honour isolate (and say so),
// hostile names and label values inject nothing, and `wren-enforcer cleanup`
// removes wren's objects and nothing else.
import t, { type Test } from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { addNetns, blackhole, sh, trySh } from './lib/host.ts'
import { delay, stopProcess, type Pod } from './lib/cluster.ts'
import { WREN, save, expectFlows, session, status, stopAgent, to, wrenRules, wrenSets, type Session } from './lib/behaviour.ts'

const sel = (labels: Record<string, string>) => ({ matchLabels: labels })
const policy = (namespace: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec })

/** A UDP server that appends every datagram to a file in the test's temp dir. */
async function udpRecorder(s: Session, pod: Pod, port: number): Promise<string> {
  const file = join(s.cluster.logDir, `udp-${pod.netns}.log`)
  const child = spawn('ip', ['netns', 'exec', pod.netns, 'socat', '-u', `UDP4-RECV:${port}`, `OPEN:${file},creat,append`], { stdio: 'ignore', detached: true })
  s.cleanup.push(`udp recorder ${pod.netns}`, () => stopProcess(child, 2000, true))
  for (let i = 0; i < 100 && !trySh('ip', ['netns', 'exec', pod.netns, 'ss', '-Hlnu', `sport = :${port}`]).stdout.trim(); i++) await delay(50)
  return file
}

function sendUdp(netns: string, host: string, port: number, text: string, bind?: string): void {
  const r = trySh('ip', ['netns', 'exec', netns, 'socat', '-u', '-', `UDP4-SENDTO:${host}:${port}${bind ? `,bind=${bind}` : ''}`], `${text}\n`)
  if (r.code !== 0) throw new Error(`sending from ${netns}: ${r.stderr}`)
}

async function antiSpoofing(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'sf' })
  const victim = await c.addPod({ namespace: 'sf', name: 'victim', labels: { app: 'victim' } })
  const attacker = await c.addPod({ namespace: 'sf', name: 'attacker', labels: { app: 'attacker' } })
  let file = ''
  const target = await c.addPod({ namespace: 'sf', name: 'target', labels: { app: 'target' }, ports: [{ containerPort: 80 }] }, async (pod) => {
    file = await udpRecorder(s, pod, 5000)
    await c.serveBanners(pod)
  })
  c.applyPolicy(policy('sf', 'from-victim', { podSelector: sel({ app: 'target' }), ingress: [{ from: [{ podSelector: sel({ app: 'victim' }) }] }] }))
  await c.sync()
  t.equal(sh('sysctl', ['-n', 'net.ipv4.conf.all.rp_filter']).trim(), '0', 'the kernel does no reverse-path filtering itself: only wren can stop the spoof')
  sh('ip', ['-n', attacker.netns, 'addr', 'add', `${victim.ip}/32`, 'dev', 'eth0'])
  sendUdp(victim.netns, target.ip, 5000, 'from-victim')
  sendUdp(attacker.netns, target.ip, 5000, 'from-attacker')
  sendUdp(attacker.netns, target.ip, 5000, 'spoofed', victim.ip)
  await expectFlows(t, attacker, [{ ...to(target, 80, 'x'), what: 'target with the victim as source', bind: victim.ip }, to(target, 80, 'x')])
  await expectFlows(t, victim, [to(target, 80, 'ok')])
  const got = existsSync(file) ? readFileSync(file, 'utf8') : ''
  t.match(got, /from-victim/, 'the real victim gets through (policy allows it)')
  t.notMatch(got, /from-attacker/, "the attacker's own address is denied")
  t.notMatch(got, /spoofed/, "the attacker forging the victim's address gets nothing through")
}

/** A veth with a netns behind it, wired like a pod but with no workload record. */
function stray(s: Session, hostIf: string, netns: string, ip: string): void {
  addNetns(s.cleanup, netns)
  trySh('ip', ['link', 'del', hostIf])
  sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns])
  s.cleanup.push(`link ${hostIf}`, () => void trySh('ip', ['link', 'del', hostIf]))
  sh('ip', ['link', 'set', hostIf, 'up'])
  sh('sysctl', ['-qw', `net.ipv4.conf.${hostIf}.proxy_arp=1`, `net.ipv4.conf.${hostIf}.forwarding=1`])
  sh('ip', ['-n', netns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0'])
  sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up'])
  sh('ip', ['-n', netns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'])
  sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'])
  sh('ip', ['route', 'add', `${ip}/32`, 'dev', hostIf])
}

async function unknownInterface(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'sf-if' })
  const open = await c.addPod({ namespace: 'sf-if', name: 'open', labels: { app: 'open' }, ports: [{ containerPort: 80 }] })
  blackhole(s.cleanup, '10.97.0.0/16')
  stray(s, 'wrenstray0', 'wb-stray', '10.97.0.2')
  stray(s, 'wtststray0', 'wb-plain', '10.97.0.3')
  await c.sync()
  const [strayRes, plainRes] = await Promise.all([
    probe('wb-stray', open.ip),
    probe('wb-plain', open.ip),
  ])
  t.equal(strayRes, 'x', 'a hand-made wren-prefixed interface without a record is dropped')
  t.equal(plainRes, 'ok sf-if/open', 'the same wiring without the prefix is not touched by wren')
}

async function probe(netns: string, host: string): Promise<string> {
  const r = trySh('ip', ['netns', 'exec', netns, 'timeout', '1', 'socat', '-T1', '-', `TCP4:${host}:80`], '')
  return r.code === 0 ? `ok ${r.stdout.trim()}` : r.code === 124 ? 'x' : `error ${r.stderr.trim()}`
}

async function unhonourable(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'sf-bad' })
  const port80 = [{ containerPort: 80 }]
  const client = await c.addPod({ namespace: 'sf-bad', name: 'client', labels: { app: 'client' }, ports: port80 })
  const srv = await c.addPod({ namespace: 'sf-bad', name: 'srv', labels: { app: 'srv' }, ports: port80 })
  const srv2 = await c.addPod({ namespace: 'sf-bad', name: 'srv2', labels: { app: 'srv2' }, ports: port80 })
  const other = await c.addPod({ namespace: 'sf-bad', name: 'other', labels: { app: 'other' }, ports: port80 })
  c.applyPolicy(policy('sf-bad', 'good', { podSelector: sel({ app: 'srv' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [{ protocol: 'TCP', port: 80 }] }] }))
  await c.sync()
  await expectFlows(t, client, [to(srv, 80, 'ok'), to(srv2, 80, 'ok'), to(other, 80, 'ok')])
  c.applyPolicy(policy('sf-bad', 'icmp', { podSelector: sel({ app: 'srv2' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [{ protocol: 'ICMP' }] }] }))
  c.applyPolicy(policy('sf-bad', 'bigport', { podSelector: sel({ app: 'client' }), policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'TCP', port: 99999 }] }] }))
  await c.sync()
  await expectFlows(t, client, [to(srv2, 80, 'x'), to(other, 80, 'x')])
  await expectFlows(t, other, [to(srv2, 80, 'x'), to(client, 80, 'ok'), to(srv, 80, 'x')])
  const problems: { object: string; message: string; effect: string }[] = status(c).lastApply?.problems ?? []
  const named = (policy: string, what: RegExp, dir: string) => problems.some((p) => p.object.includes(policy) && what.test(p.message) && p.effect.includes(`isolated selected pods for ${dir}`))
  t.ok(named('sf-bad/icmp', /ICMP/, 'ingress'), `status names the ICMP policy, ingress isolated: ${JSON.stringify(problems)}`)
  t.ok(named('sf-bad/bigport', /99999/, 'egress'), 'status names the 99999 policy, egress isolated')
  c.deletePolicy('sf-bad/bigport')
  await c.sync()
  await expectFlows(t, client, [to(srv, 80, 'ok'), to(other, 80, 'ok'), to(srv2, 80, 'x')])
  const log = readFileSync(join(c.logDir, 'agent.log'), 'utf8')
  t.match(log, /sf-bad\/icmp[^\n]*ICMP|ICMP[^\n]*sf-bad\/icmp/, 'the log names the ICMP policy')
  t.match(log, /sf-bad\/bigport[^\n]*99999|99999[^\n]*sf-bad\/bigport/, 'the log names the 99999 policy')
}

/** wren's rules with comments, policy chain and set hashes blanked: what the rules mean. */
function meaning(): string[] {
  return wrenRules()
    .map((l) => l.replace(/-m comment --comment ("(\\.|[^"\\])*"|\S+) ?/g, ''))
    .map((l) => l.replace(/wren-p([io])-[0-9a-f]+/g, 'wren-p$1-H').replace(/wren([46])([inp])-[0-9a-f]+/g, 'wren$1$2-H'))
    .sort()
}

async function injection(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'sf-inj' })
  const tgt = await c.addPod({ namespace: 'sf-inj', name: 'tgt', labels: { app: 'tgt' }, ports: [{ containerPort: 80 }] })
  const client = await c.addPod({ namespace: 'sf-inj', name: 'client', labels: { app: 'client', role: 'plain' } })
  const shaped = (name: string, role: string, value: string) =>
    policy('sf-inj', name, { podSelector: sel({ app: 'tgt' }), ingress: [{ from: [{ podSelector: { matchLabels: { role }, matchExpressions: [{ key: 'tier', operator: 'In', values: [value] }] } }] }] })
  c.applyPolicy(shaped('twin', 'plain-value', 'v'))
  await c.sync()
  const benign = meaning()
  await expectFlows(t, client, [to(tgt, 80, 'x')])
  c.deletePolicy('sf-inj/twin')
  await c.sync()
  await expectFlows(t, client, [to(tgt, 80, 'ok')])
  const evil = 'a" -j ACCEPT -m comment --comment "'
  c.applyPolicy(shaped('evil "q" -j ACCEPT\n-A wren-FORWARD -j ACCEPT', evil, "x'\n-A wren-FORWARD -j ACCEPT\n#"))
  await c.sync()
  await expectFlows(t, client, [to(tgt, 80, 'x')])
  t.same(meaning(), benign, 'the hostile policy compiles to exactly the rules of its benign twin')
  t.same(wrenRules().filter((l) => /^-A wren-FORWARD -j ACCEPT$/.test(l)), [], 'no injected unconditional ACCEPT')
}

async function cleanupOnlyWren(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  sh('iptables', ['-w', '-N', 'WTEST-KEEP'])
  s.cleanup.push('chain WTEST-KEEP', () => {
    trySh('iptables', ['-w', '-D', 'FORWARD', '-s', '10.97.9.9/32', '-j', 'WTEST-KEEP'])
    trySh('iptables', ['-w', '-F', 'WTEST-KEEP'])
    trySh('iptables', ['-w', '-X', 'WTEST-KEEP'])
  })
  sh('iptables', ['-w', '-A', 'WTEST-KEEP', '-s', '10.97.9.9/32', '-j', 'RETURN'])
  sh('iptables', ['-w', '-A', 'FORWARD', '-s', '10.97.9.9/32', '-j', 'WTEST-KEEP'])
  sh('ipset', ['create', 'wtest-keep', 'hash:ip'])
  s.cleanup.push('set wtest-keep', () => void trySh('ipset', ['destroy', 'wtest-keep']))
  sh('ipset', ['add', 'wtest-keep', '10.97.9.9'])
  const notWren = () =>
    ['iptables-save', 'ip6tables-save'].flatMap((cmd) => save(cmd).split('\n').filter((l) => !WREN.test(l) && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')))
  const otherSets = () => save('ipset', ['save']).split('\n').filter((l) => !/ wren[46][inpl]-/.test(l))
  t.ok(wrenRules().length > 20 && wrenSets().size > 0, `wren has rules and sets before cleanup (${wrenRules().length} lines, ${wrenSets().size} sets)`)
  const [rulesBefore, setsBefore] = [notWren(), otherSets()]
  await stopAgent(c)
  const r = trySh(c.enforcerBin, ['cleanup'])
  t.equal(r.code, 0, `wren-enforcer cleanup succeeded ${r.stderr.trim()}`)
  t.same([...wrenRules(), ...wrenRules('ip6tables-save')], [], 'no wren chain or rule left (IPv4, IPv6, every table)')
  t.same([...wrenSets().keys()], [], 'no wren set left')
  t.same(notWren(), rulesBefore, 'every other rule and chain untouched (WTEST-KEEP and its jump included)')
  t.same(otherSets(), setsBefore, 'every other set untouched (wtest-keep included)')
  t.match(save('iptables-save', ['-t', 'filter']), /-A WTEST-KEEP -s 10\.97\.9\.9\/32 -j RETURN/, 'WTEST-KEEP survived')
}

// waits for the kernel lock and for other runs' agents: longer than tap's default
t.setTimeout(20 * 60_000)

t.test('policy safety with real traffic', async (t) => {
  await session(t, async (s) => {
    await t.test('anti-spoofing', (t) => antiSpoofing(t, s))
    await t.test('unknown wren interface is dropped, others untouched', (t) => unknownInterface(t, s))
    await t.test('a policy wren cannot honour isolates and is reported', (t) => unhonourable(t, s))
    await t.test('hostile names and label values inject nothing', (t) => injection(t, s))
    await t.test('cleanup removes wren and nothing else', (t) => cleanupOnlyWren(t, s))
  }, () => (save('ipset', ['list', '-n']).includes('wtest-keep') || save('iptables-save').includes('WTEST-KEEP') ? ['WTEST-KEEP or wtest-keep left'] : []))
})
