// NetworkPolicy on IPv6 traffic: a dual-stack cluster (every pod has an IPv4
// and an IPv6 address, every banner server listens on both), then the same
// policies as on IPv4 — pod selectors, ipBlock with except, egress — judged
// with real IPv6 TCP and UDP, the IPv4 side checked alongside so a policy is
// seen to act on both families at once. Anti-spoofing for IPv6 is only wren's
// doing: the kernel has no IPv6 rp_filter sysctl.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sh, trySh } from './lib/host.ts'
import { POD_CIDR6, delay, stopProcess, type Pod } from './lib/cluster.ts'
import { expectFlows, save, session, to, to6, wrenSets, type Session } from './lib/behaviour.ts'

const NS = 'six'
const HTTP = 80
const DNS = 5353
const RECORDER = 5000
const sel = (labels: Record<string, string>) => ({ matchLabels: labels })
const policy = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: NS }, spec })
const ports = [
  { containerPort: HTTP, protocol: 'TCP' as const },
  { containerPort: DNS, protocol: 'UDP' as const },
]

interface World {
  server: Pod
  client: Pod
  other: Pod
  /** Datagrams the server's IPv6 UDP recorder got, one per line. */
  recorded: () => string
}

/** A UDP server on the pod's IPv6 address that appends every datagram to a file. */
async function udp6Recorder(s: Session, pod: Pod, port: number): Promise<string> {
  const file = join(s.cluster.logDir, `udp6-${pod.netns}.log`)
  const child = spawn('ip', ['netns', 'exec', pod.netns, 'socat', '-u', `UDP6-RECV:${port},ipv6only=1`, `OPEN:${file},creat,append`], { stdio: 'ignore', detached: true })
  s.cleanup.push(`udp6 recorder ${pod.netns}`, () => stopProcess(child, 2000, true))
  for (let i = 0; i < 100 && !trySh('ip', ['netns', 'exec', pod.netns, 'ss', '-6Hlnu', `sport = :${port}`]).stdout.trim(); i++) await delay(50)
  return file
}

function sendUdp6(pod: Pod, host: string, port: number, text: string, bind?: string): void {
  const r = trySh('ip', ['netns', 'exec', pod.netns, 'socat', '-u', '-', `UDP6-SENDTO:[${host}]:${port}${bind ? `,bind=[${bind}]` : ''}`], `${text}\n`)
  if (r.code !== 0) throw new Error(`sending from ${pod.netns}: ${r.stderr}`)
}

async function build(s: Session): Promise<World> {
  const c = s.cluster
  c.setNamespace({ name: NS })
  let file = ''
  const server = await c.addPod({ namespace: NS, name: 'server', labels: { app: 'server' }, ports }, async (pod) => {
    file = await udp6Recorder(s, pod, RECORDER)
    await c.serveBanners(pod)
  })
  const client = await c.addPod({ namespace: NS, name: 'client', labels: { app: 'client' }, ports })
  const other = await c.addPod({ namespace: NS, name: 'other', labels: { app: 'other' }, ports })
  return { server, client, other, recorded: () => (existsSync(file) ? readFileSync(file, 'utf8') : '') }
}

/** Applies (or deletes, with null) policies by name and waits until the kernel holds them. */
async function setPolicies(s: Session, apply: Record<string, unknown>[], remove: string[] = []): Promise<void> {
  for (const p of apply) s.cluster.applyPolicy(p)
  for (const name of remove) s.cluster.deletePolicy(`${NS}/${name}`)
  await s.cluster.sync()
}

/** Runs a step and says how long it took. */
async function timed(t: Test, name: string, fn: (t: Test) => Promise<void>): Promise<void> {
  const t0 = Date.now()
  await t.test(name, fn)
  t.comment(`${name}: ${Date.now() - t0} ms`)
}

function ip6save(table: string): string {
  return save('ip6tables-save', ['-t', table])
}

/** Packets the IPv6 anti-spoofing rule dropped so far. */
function spoofDrops(): number {
  const line = save('ip6tables-save', ['-c', '-t', 'raw']).split('\n').find((l) => / -A wren-PREROUTING .*-j DROP/.test(l))
  return Number(/^\[(\d+):/.exec(line ?? '')?.[1] ?? NaN)
}

async function baseline(t: Test, s: Session, w: World): Promise<void> {
  const pods = [w.server, w.client, w.other]
  const prefix = POD_CIDR6.replace(/\/\d+$/, '')
  for (const p of pods) t.ok(p.ip6?.startsWith(prefix), `${p.spec.name} has an IPv6 address from ${POD_CIDR6} (${p.ip6})`)
  const filter = ip6save('filter')
  t.match(filter, /^-A FORWARD .*-j wren-FORWARD$/m, 'ip6tables: FORWARD jumps to wren-FORWARD')
  t.match(filter, /^-A wren-FORWARD .*-j wren-from-wl-dispatch/m, 'ip6tables: wren-FORWARD dispatches pod egress')
  t.equal((filter.match(/^:wren-tw-wren[0-9a-f]{11} /gm) ?? []).length, pods.length, 'ip6tables: one ingress chain per pod')
  t.match(ip6save('raw'), /^-A wren-PREROUTING .*rpfilter --invert .*-j DROP/m, 'ip6tables raw: anti-spoofing rule')
  for (const from of pods) {
    const peers = pods.filter((p) => p !== from)
    await expectFlows(t, from, peers.flatMap((p) => [to6(p, HTTP, 'ok'), to6(p, DNS, 'ok', true), to(p, HTTP, 'ok')]))
  }
}

async function ingressBySelector(t: Test, s: Session, w: World): Promise<void> {
  await setPolicies(s, [
    policy('deny-ingress', { podSelector: sel({ app: 'server' }), policyTypes: ['Ingress'] }),
    policy('client-http', { podSelector: sel({ app: 'server' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [{ protocol: 'TCP', port: HTTP }] }] }),
  ])
  await expectFlows(t, w.client, [to6(w.server, HTTP, 'ok'), to(w.server, HTTP, 'ok'), to6(w.server, DNS, 'x', true), to(w.server, DNS, 'x', true)])
  await expectFlows(t, w.other, [to6(w.server, HTTP, 'x'), to(w.server, HTTP, 'x'), to6(w.server, DNS, 'x', true), to6(w.client, HTTP, 'ok')])
  // the peer set of app=client, in each family, holds that pod's address of the family
  const sets = wrenSets()
  const v6 = [...sets].filter(([name]) => name.startsWith('wren6i-'))
  const v4 = [...sets].filter(([name]) => name.startsWith('wren4i-'))
  t.same(v6.map(([, m]) => m), [[w.client.ip6]], 'the IPv6 peer set holds the client pod\'s IPv6 address only')
  t.same(v4.map(([, m]) => m), [[w.client.ip]], 'the IPv4 peer set holds the client pod\'s IPv4 address only')
  for (const [name] of v6) t.match(sh('ipset', ['list', '-t', name]), /family inet6/, `${name} is an inet6 set`)
  t.match(ip6save('filter'), new RegExp(`^-A wren-tw-\\S+ .*--match-set ${v6[0]?.[0] ?? 'none'} src`, 'm'), 'ip6tables: the server\'s ingress chain matches the IPv6 peer set')
  await setPolicies(s, [], ['deny-ingress', 'client-http'])
  await expectFlows(t, w.other, [to6(w.server, HTTP, 'ok'), to(w.server, HTTP, 'ok')])
}

async function ipBlockExcept(t: Test, s: Session, w: World): Promise<void> {
  const except = `${w.other.ip6}/128`
  await setPolicies(s, [
    policy('v6-block', { podSelector: sel({ app: 'server' }), ingress: [{ from: [{ ipBlock: { cidr: POD_CIDR6, except: [except] } }], ports: [{ protocol: 'TCP', port: HTTP }] }] }),
  ])
  await expectFlows(t, w.client, [to6(w.server, HTTP, 'ok'), { ...to(w.server, HTTP, 'x'), what: 'server over IPv4 (the block is IPv6 only)' }])
  await expectFlows(t, w.other, [{ ...to6(w.server, HTTP, 'x'), what: `server from the excepted ${except}` }, to(w.server, HTTP, 'x')])
  const nets = [...wrenSets()].filter(([name]) => name.startsWith('wren6n-'))
  t.same(nets.map(([, m]) => [...m].sort()), [[`${except.replace('/128', '')} nomatch`, POD_CIDR6].sort()], 'one inet6 hash:net set: the block and its except as nomatch')
  await setPolicies(s, [], ['v6-block'])
}

async function egressToServer(t: Test, s: Session, w: World): Promise<void> {
  await setPolicies(s, [
    policy('client-egress', { podSelector: sel({ app: 'client' }), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel({ app: 'server' }) }], ports: [{ protocol: 'TCP', port: HTTP }] }] }),
  ])
  await expectFlows(t, w.client, [to6(w.server, HTTP, 'ok'), to(w.server, HTTP, 'ok'), to6(w.server, DNS, 'x', true), to6(w.other, HTTP, 'x'), to(w.other, HTTP, 'x'), to6(w.other, DNS, 'x', true)])
  await expectFlows(t, w.other, [{ ...to6(w.client, HTTP, 'ok'), what: 'client (its ingress is not isolated)' }])
  t.match(ip6save('filter'), /^-A wren-fw-\S+ .*--match-set wren6i-\S+ dst/m, 'ip6tables: the client\'s egress chain matches the IPv6 peer set')
  await setPolicies(s, [], ['client-egress'])
}

async function antiSpoofing(t: Test, s: Session, w: World): Promise<void> {
  const victim = w.client
  const attacker = w.other
  await setPolicies(s, [policy('from-client', { podSelector: sel({ app: 'server' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }] }] })])
  // the attacker takes the victim's IPv6 address too (nodad: no duplicate detection to give it away);
  // from now on its own sends bind their source, or the kernel may pick either address
  sh('ip', ['-n', attacker.netns, '-6', 'addr', 'add', `${victim.ip6}/128`, 'dev', 'eth0', 'nodad'])
  const dropsBefore = spoofDrops()
  sendUdp6(victim, w.server.ip6!, RECORDER, 'from-victim')
  sendUdp6(attacker, w.server.ip6!, RECORDER, 'from-attacker', attacker.ip6)
  sendUdp6(attacker, w.server.ip6!, RECORDER, 'spoofed-allowed-source', victim.ip6)
  await expectFlows(t, attacker, [{ ...to6(w.server, HTTP, 'x'), what: 'server with the victim as IPv6 source', bind: victim.ip6 }])
  await expectFlows(t, victim, [to6(w.server, HTTP, 'ok')])
  await setPolicies(s, [], ['from-client'])
  // no policy now: the attacker's own address gets through, the forged one still does not
  sendUdp6(attacker, w.server.ip6!, RECORDER, 'own-open', attacker.ip6)
  sendUdp6(attacker, w.server.ip6!, RECORDER, 'spoofed-open', victim.ip6)
  await delay(300)
  const got = w.recorded()
  t.ok(spoofDrops() >= dropsBefore + 3, `the raw anti-spoofing rule counted the forged packets (${dropsBefore} → ${spoofDrops()})`)
  t.match(got, /from-victim/, 'the real victim gets through over IPv6 (policy allows it)')
  t.notMatch(got, /from-attacker/, "the attacker's own IPv6 address is denied by the policy")
  t.notMatch(got, /spoofed-allowed-source/, "the attacker forging the victim's IPv6 address gets nothing through, though policy allows that source")
  t.match(got, /own-open/, "with no policy, the attacker's own IPv6 address gets through")
  t.notMatch(got, /spoofed-open/, 'with no policy, the forged IPv6 source is still dropped (anti-spoofing, not policy)')
  sh('ip', ['-n', attacker.netns, '-6', 'addr', 'del', `${victim.ip6}/128`, 'dev', 'eth0'])
}

/** wren objects of either family, and anything in the dual-stack range, after teardown. */
function v6Leftovers(): string[] {
  const out: string[] = []
  for (const l of save('ipset', ['list', '-n']).split('\n')) if (/^wren[46]/.test(l)) out.push(`ipset ${l}`)
  for (const l of sh('ip', ['-6', 'rule', 'show']).split('\n')) if (/wren|fd00:92:/.test(l)) out.push(`ip -6 rule ${l}`)
  for (const l of sh('ip', ['-6', 'route', 'show', 'table', 'all']).split('\n')) if (/wren|fd00:92:/.test(l)) out.push(`ip -6 route ${l}`)
  return out
}

// waits for the kernel lock and for other runs' agents: longer than tap's default
t.setTimeout(20 * 60_000)

t.test('NetworkPolicy on IPv6 traffic (dual-stack pods)', async (t) => {
  await session(
    t,
    async (s) => {
      const t0 = Date.now()
      const w = await build(s)
      t.comment(`dual-stack cluster with 3 pods: ${Date.now() - t0} ms`)
      await timed(t, 'no policy: every pod reaches every pod over IPv6 TCP and UDP', (t) => baseline(t, s, w))
      await timed(t, 'default-deny ingress + allow app=client on TCP 80: both families', (t) => ingressBySelector(t, s, w))
      await timed(t, 'ipBlock with an IPv6 CIDR and an except', (t) => ipBlockExcept(t, s, w))
      await timed(t, 'egress default-deny + allow to app=server on TCP 80', (t) => egressToServer(t, s, w))
      await timed(t, 'anti-spoofing on IPv6', (t) => antiSpoofing(t, s, w))
    },
    v6Leftovers,
    { ipv6: true },
  )
})
