// Lifecycle behaviours with real traffic: a pod added under default-deny is
// never reachable before its chains exist and works as soon as ADD returns;
// established connections survive a new deny policy (Calico-like); an agent
// restart with traffic flowing changes no verdict and rewrites nothing; the
// node always reaches its pods and back; a pod's IP change is a set edit.
import t, { type Test } from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { blackhole, sh, trySh } from './lib/host.ts'
import { delay, stopProcess } from './lib/cluster.ts'
import { WREN, save, expectFlows, removeSandbox, serveAccepting, serveEcho, session, startAgent, startLoop, startStream, stopAgent, to, wrenRules, wrenSets, type Session } from './lib/behaviour.ts'

const sel = (labels: Record<string, string>) => ({ matchLabels: labels })
const policy = (namespace: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec })
const fromApp = (app: string, port = 80) => [{ from: [{ podSelector: sel({ app }) }], ports: [{ protocol: 'TCP', port }] }]
const nextIp = (ip: string, by: number) => ip.replace(/\d+$/, (d) => String(Number(d) + by)) // within one /24 in these tests

async function podAddedUnderDefaultDeny(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'lc-add' })
  const client = await c.addPod({ namespace: 'lc-add', name: 'client', labels: { app: 'client' } })
  const intruder = await c.addPod({ namespace: 'lc-add', name: 'intruder', labels: { app: 'intruder' } })
  const sink = await c.addPod({ namespace: 'lc-add', name: 'sink', labels: { app: 'sink' }, ports: [{ containerPort: 80 }] })
  c.applyPolicy(policy('lc-add', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }))
  c.applyPolicy(policy('lc-add', 'to-srv', { podSelector: sel({ app: 'srv' }), ingress: fromApp('client') }))
  c.applyPolicy(policy('lc-add', 'to-sink', { podSelector: sel({ app: 'sink' }), ingress: fromApp('srv') }))
  await c.sync()
  // IPAM hands out the address after the last one: hammer the next few
  const num = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0)
  const last = [...c.pods.values()].map((p) => p.ip).sort((a, b) => num(a) - num(b)).at(-1)!
  const candidates = [1, 2, 3, 4].map((i) => nextIp(last, i))
  const hammer = startLoop(s, intruder.netns, candidates.map((ip) => ({ name: ip, host: ip, port: 80, timeoutMs: 150, concurrency: 16 })))
  await delay(500)
  const srv = await c.addPod({ namespace: 'lc-add', name: 'srv', labels: { app: 'srv' }, ports: [{ containerPort: 80 }] }, async (pod) => {
    // right after ADD returned, before any sync: no server yet, so "refused" proves the SYN got through
    const [fromClient] = await Promise.all([
      trySh('ip', ['netns', 'exec', client.netns, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${pod.ip}/80`]),
      expectFlows(t, pod, [to(sink, 80, 'ok')]),
    ])
    t.match(fromClient.stderr, /refused/, `client reached the new pod as soon as ADD returned (${fromClient.stderr.trim() || 'connected'})`)
    await c.serveBanners(pod)
  })
  await expectFlows(t, client, [to(srv, 80, 'ok')])
  await delay(500)
  const tally = await hammer.stop()
  t.ok(candidates.includes(srv.ip), `the new pod's IP ${srv.ip} was among the hammered ${candidates.join(', ')}`)
  const row = tally[srv.ip]
  t.ok(row && row.x > 100, `hammered the new pod's IP (${row?.x ?? 0} attempts, all before, during and after ADD)`)
  for (const [ip, r] of Object.entries(tally)) t.same({ ok: r.ok, refused: r.refused, error: r.error }, { ok: 0, refused: 0, error: 0 }, `intruder never reached ${ip}: ${r.samples.join('; ')}`)
  await expectFlows(t, intruder, [to(srv, 80, 'x')])
}

async function establishedSurvive(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'lc-est' })
  const client = await c.addPod({ namespace: 'lc-est', name: 'client', labels: { app: 'client' } })
  const echo = await c.addPod({ namespace: 'lc-est', name: 'echo', labels: { app: 'echo' } }, (pod) => serveEcho(s, pod, 7000))
  const stream = startStream(s, client.netns, echo.ip, 7000)
  for (let i = 0; i < 50 && stream.state.echoes < 3; i++) await delay(100)
  t.ok(stream.state.echoes >= 3, `long-lived connection flowing before the policy (${stream.state.echoes} echoes)`)
  c.applyPolicy(policy('lc-est', 'deny-echo', { podSelector: sel({ app: 'echo' }), policyTypes: ['Ingress'] }))
  await c.sync()
  const before = stream.state.echoes
  await delay(1500)
  t.ok(stream.state.echoes >= before + 10, `established connection keeps exchanging data under the deny policy (${before} → ${stream.state.echoes})`)
  t.equal(stream.state.error, '', 'established connection not broken')
  const fresh = trySh('ip', ['netns', 'exec', client.netns, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${echo.ip}/7000`])
  t.equal(fresh.code, 124, `a new connection to the same server is dropped (exit ${fresh.code} ${fresh.stderr.trim()})`)
  await stream.stop()
}

/** SYNs a netns's listeners dropped because their accept queue was full (absolute, history untouched). */
function listenDrops(netns: string): number {
  const out = sh('ip', ['netns', 'exec', netns, 'nstat', '-asz', 'TcpExtListenDrops'])
  return Number(/TcpExtListenDrops\s+(\d+)/.exec(out)?.[1] ?? NaN)
}

/** `iptables-save -c` rule lines of wren's rules with their packet counters. */
function ruleCounters(): Map<string, number> {
  const m = new Map<string, number>()
  for (const l of save('iptables-save', ['-c']).split('\n')) {
    const r = /^\[(\d+):\d+\] (-A .*)$/.exec(l)
    if (r && WREN.test(r[2]!)) m.set(r[2]!, (m.get(r[2]!) ?? 0) + Number(r[1]))
  }
  return m
}

async function restartWithTraffic(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'lc-rs' })
  const a = await c.addPod({ namespace: 'lc-rs', name: 'a', labels: { app: 'a' } })
  const srv = await c.addPod({ namespace: 'lc-rs', name: 'srv', labels: { app: 'srv' }, ports: [{ containerPort: 80 }, { containerPort: 81 }] }, (pod) => serveAccepting(s, pod, [80, 81]))
  c.applyPolicy(policy('lc-rs', 'srv-80', { podSelector: sel({ app: 'srv' }), ingress: fromApp('a', 80) }))
  await c.sync()
  const rules = wrenRules()
  const sets = wrenSets()
  const loop = startLoop(s, a.netns, [
    { name: 'allowed', host: srv.ip, port: 80, timeoutMs: 1000, concurrency: 2 },
    { name: 'denied', host: srv.ip, port: 81, timeoutMs: 300, concurrency: 2 },
  ])
  await delay(700)
  const counters = ruleCounters()
  const logFile = join(c.logDir, 'agent.log')
  await stopAgent(c)
  t.same(wrenRules(), rules, 'stopping the agent left every rule in place')
  await delay(1000)
  const logFrom = statSync(logFile).size
  await startAgent(s)
  await delay(1000)
  const tally = await loop.stop()
  t.same(wrenRules(), rules, 'the restarted agent converged on the same rules')
  t.same(wrenSets(), sets, 'and the same set members')
  const after = ruleCounters()
  const reset = [...counters].filter(([rule, n]) => n > 0 && (after.get(rule) ?? 0) < n).map(([r]) => r)
  t.same(reset, [], 'no counter went back to zero: no chain was rewritten')
  const restartLog = readFileSync(logFile, 'utf8').slice(logFrom)
  t.notMatch(restartLog, /"dataplane applied"|dataplane applied/, 'the restarted agent wrote nothing to the kernel')
  t.ok(tally.allowed && tally.allowed.ok > 20, `allowed connections kept being made (${tally.allowed?.ok})`)
  t.same({ x: tally.allowed?.x, refused: tally.allowed?.refused, error: tally.allowed?.error }, { x: 0, refused: 0, error: 0 }, `no allowed connection failed: ${tally.allowed?.samples.join('; ')}`)
  t.equal(listenDrops(srv.netns), 0, "the server's accept queue dropped no SYN (a failure above would be the dataplane's)")
  t.ok(tally.denied && tally.denied.x > 5, `denied attempts kept being made (${tally.denied?.x})`)
  t.same({ ok: tally.denied?.ok, refused: tally.denied?.refused }, { ok: 0, refused: 0 }, `no denied connection got through: ${tally.denied?.samples.join('; ')}`)
}

async function nodeAndPods(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'lc-host' })
  const h = await c.addPod({ namespace: 'lc-host', name: 'h', labels: { app: 'h' }, ports: [{ containerPort: 80 }] })
  const other = await c.addPod({ namespace: 'lc-host', name: 'other', labels: { app: 'other' }, ports: [{ containerPort: 80 }] })
  c.applyPolicy(policy('lc-host', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }))
  await c.sync()
  blackhole(s.cleanup, '10.97.0.0/16')
  trySh('ip', ['link', 'del', 'wtst-host'])
  sh('ip', ['link', 'add', 'wtst-host', 'type', 'veth', 'peer', 'name', 'wtst-hostp'])
  s.cleanup.push('link wtst-host', () => void trySh('ip', ['link', 'del', 'wtst-host']))
  sh('ip', ['addr', 'add', '10.97.255.1/32', 'dev', 'wtst-host'])
  for (const l of ['wtst-host', 'wtst-hostp']) sh('ip', ['link', 'set', l, 'up'])
  const server = spawn('socat', ['TCP4-LISTEN:9797,bind=10.97.255.1,fork,reuseaddr', 'SYSTEM:echo node'], { stdio: 'ignore', detached: true })
  s.cleanup.push('host server', () => stopProcess(server, 2000, true))
  for (let i = 0; i < 50 && !trySh('ss', ['-Hlnt', 'sport = :9797']).stdout.trim(); i++) await delay(50)
  await expectFlows(t, '', [to(h, 80, 'ok')])
  await expectFlows(t, h, [{ what: 'a listener on the node', to: '10.97.255.1', port: 9797, expect: 'ok', banner: 'node' }, to(other, 80, 'x')])
}

async function ipChangeIsSetEdit(t: Test, s: Session): Promise<void> {
  const c = s.cluster
  c.setNamespace({ name: 'lc-ip' })
  const spec = { namespace: 'lc-ip', name: 'c', labels: { app: 'c' } }
  const old = await c.addPod(spec)
  const srv = await c.addPod({ namespace: 'lc-ip', name: 's', labels: { app: 's' }, ports: [{ containerPort: 80 }] })
  c.applyPolicy(policy('lc-ip', 's-from-c', { podSelector: sel({ app: 's' }), ingress: fromApp('c') }))
  await c.sync()
  await expectFlows(t, old, [to(srv, 80, 'ok')])
  const rules = wrenRules()
  const holders = [...wrenSets()].filter(([, m]) => m.includes(old.ip)).map(([n]) => n)
  t.ok(holders.length > 0, `the client's IP ${old.ip} is in a peer set (${holders.join(', ')})`)
  await removeSandbox(c, old)
  const fresh = await c.addPod(spec)
  await c.sync()
  t.not(fresh.ip, old.ip, `the re-added pod has a new IP (${old.ip} → ${fresh.ip})`)
  const sets = wrenSets()
  for (const n of holders) t.ok(sets.get(n)?.includes(fresh.ip) && !sets.get(n)?.includes(old.ip), `set ${n} now holds ${fresh.ip} instead of ${old.ip}`)
  t.same(wrenRules(), rules, 'chains unchanged apart from counters')
  await expectFlows(t, fresh, [to(srv, 80, 'ok')])
}


// waits for the kernel lock and for other runs' agents: longer than tap's default
t.setTimeout(20 * 60_000)

t.test('policy lifecycle with real traffic', async (t) => {
  await session(t, async (s) => {
    await t.test('pod added while default-deny exists', (t) => podAddedUnderDefaultDeny(t, s))
    await t.test('established connections survive a new deny policy', (t) => establishedSurvive(t, s))
    await t.test('agent restart with traffic flowing', (t) => restartWithTraffic(t, s))
    await t.test('node to pod and pod to node under default-deny', (t) => nodeAndPods(t, s))
    await t.test('pod IP change is a set edit', (t) => ipChangeIsSetEdit(t, s))
  })
})
