// Two nodes, each a network namespace with its own agent, iptables and pods
// wired by the real bin/wren, their pod CIDRs from Node objects in the in-repo
// API server (install-cni in Kubernetes mode writes them). Run twice: on one
// L2 segment (host-gw) and across a router (VXLAN). Real traffic throughout.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expectFlows, startLoop, to } from './lib/behaviour.ts'
import { NodesCluster, WHOAMI_PORT, type NodePod, type Underlay } from './lib/nodes.ts'
import { delay, stopProcess } from './lib/cluster.ts'
import { hostLinks, sh, trySh } from './lib/host.ts'
import { probeFrom } from './lib/probe.ts'

const NODES = [
  { name: 'a', podCidrs: ['10.98.1.0/24'] },
  { name: 'b', podCidrs: ['10.98.2.0/24'] },
]

async function whoami(from: NodePod, host: string, port = WHOAMI_PORT): Promise<string> {
  const [r] = await probeFrom(from.netns, [{ kind: 'tcp', host, port }])
  return r!.outcome === 'ok' ? (r!.reply ?? '').trim() : `(${r!.outcome})`
}

async function reach(from: NodePod, pod: NodePod, port = 80): Promise<string> {
  const [r] = await probeFrom(from.netns, [{ kind: 'tcp', host: pod.ip, port }])
  return r!.outcome
}

function wrenRoutes(c: NodesCluster, node: string): string[] {
  return c.routes(node).map((r) => r.trim()).filter((r) => r.includes('proto 87'))
}

/** Starts the cluster with namespace demo: client and other on node a, web on node b. */
async function startWithPods(c: NodesCluster): Promise<{ client: NodePod; other: NodePod; web: NodePod }> {
  await c.start()
  c.setNamespace('demo')
  const client = await c.addPod('a', 'demo', 'client', { app: 'client' })
  const other = await c.addPod('a', 'demo', 'other', { app: 'other' })
  const web = await c.addPod('b', 'demo', 'web', { app: 'web' })
  await c.sync()
  return { client, other, web }
}

async function scenario(t: Test, underlay: Underlay, agentArgs: string[], kind: 'host-gw' | 'vxlan'): Promise<void> {
  const c = new NodesCluster({ underlay, nodes: NODES, agentArgs })
  try {
    const { client, other, web } = await startWithPods(c)
    const a = c.node('a')
    const b = c.node('b')

    // the routes each agent made, from the Node objects
    const toB = kind === 'host-gw' ? `10.98.2.0/24 via ${b.ip} dev eth0 proto 87` : '10.98.2.0/24 via 10.98.2.0 dev vxlan.wren proto 87 onlink'
    t.ok(wrenRoutes(c, 'a').includes(toB), `node a routes b's pods: ${toB} (has: ${wrenRoutes(c, 'a').join('; ')})`)
    t.ok(wrenRoutes(c, 'a').includes('blackhole 10.98.1.0/24 proto 87'), "node a blackholes its own range's unassigned addresses")
    t.equal(sh('ip', ['-n', a.netns, 'link', 'show']).includes('vxlan.wren'), kind === 'vxlan', `VXLAN device ${kind === 'vxlan' ? 'present' : 'absent'}`)
    if (kind === 'vxlan') {
      const mtu = Number(/mtu (\d+)/.exec(sh('ip', ['-n', a.netns, 'link', 'show', 'vxlan.wren']))![1])
      t.equal(mtu, 1450, 'the VXLAN device leaves 50 bytes of the 1500-byte underlay for its header')
      t.match(readFileSync(join(a.confDir, '10-wren.conflist'), 'utf8'), /"mtu": 1450/, 'install-cni gave pods the same room')
    }

    // pod to pod across nodes: reached, and the receiver sees the real source
    await expectFlows(t, client, [to(web, 80, 'ok')])
    t.equal(await whoami(client, web.ip), client.ip, 'pod-to-pod across nodes keeps its source (not masqueraded)')
    t.equal(await whoami(web, client.ip), web.ip, 'and the other way')
    // pod to outside: masqueraded to the node's address (the outside has no route to pods)
    await c.serveOutside(8080)
    t.equal(await whoami(client, c.outside.ip, 8080), a.ip, "pod → outside is masqueraded to its node's address")
    t.equal(await whoami(web, c.outside.ip, 8080), b.ip, 'on the other node too')

    // ingress judged on the receiver's node
    c.applyPolicy({ metadata: { name: 'web-from-client', namespace: 'demo' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } })
    await c.sync()
    await expectFlows(t, client, [to(web, 80, 'ok')])
    await expectFlows(t, other, [to(web, 80, 'x')])
    t.match(sh('ip', ['netns', 'exec', b.netns, 'iptables-save', '-c']), /web-from-client/, "the ingress rule lives in node b's chains")
    t.notMatch(sh('ip', ['netns', 'exec', a.netns, 'iptables-save']), /web-from-client/, 'not in node a')

    // egress judged on the sender's node
    c.applyPolicy({ metadata: { name: 'client-to-web', namespace: 'demo' }, spec: { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }] }] } })
    await c.sync()
    await expectFlows(t, client, [to(web, 80, 'ok'), { what: 'outside', to: c.outside.ip, port: 8080, expect: 'x' }])
    t.match(sh('ip', ['netns', 'exec', a.netns, 'iptables-save']), /client-to-web/, "the egress rule lives in node a's chains")

    // a label change in the API flips a verdict judged on the other node
    c.relabelPod('demo/other', { app: 'client' })
    await c.sync()
    await expectFlows(t, other, [to(web, 80, 'ok')])
    c.relabelPod('demo/other', { app: 'other' })
    await c.sync()
    await expectFlows(t, other, [to(web, 80, 'x')])

    // anti-spoofing: node b sends with a source from node a's own range; a must drop it
    await antiSpoofing(t, c, client, web)

    await followsNodeObjects(t, c, kind)

    // a Node deleted from the API withdraws its routes; added back, they return; no restart
    const bNode = c.api.read('Node', 'b')
    c.api.delete('Node', { metadata: { name: 'b' } })
    await c.sync()
    t.notOk(wrenRoutes(c, 'a').some((r) => r.startsWith('10.98.2.0/24')), 'Node b deleted: its route withdrawn on a')
    t.not(await reach(client, web), 'ok', 'and b’s pods are out of reach')
    delete bNode.metadata.resourceVersion
    c.api.create('Node', bNode)
    await c.sync()
    t.ok(wrenRoutes(c, 'a').includes(toB), 'Node b added back: its route returns')
    t.equal(await reach(client, web), 'ok', 'and its pods are reached again')

    // an agent restarted on one node loses no cross-node flow
    const loop = startLoop(c, client.netns, [{ name: 'web', host: web.ip, port: 80, timeoutMs: 1000, concurrency: 2 }])
    await delay(500)
    await c.stopAgent('a')
    c.startAgent(a)
    await c.waitAgentUp(a)
    await delay(500)
    const tally = (await loop.stop()).web!
    t.ok(tally.ok > 10, `connections kept flowing through the restart (${tally.ok} ok)`)
    t.same({ x: tally.x, refused: tally.refused, error: tally.error }, { x: 0, refused: 0, error: 0 }, `none lost: ${tally.samples.join('; ')}`)

    const status = await c.statusJson('a')
    t.same(status.routes?.problems, [], 'no routing problems reported')

    await cleanupOnNode(t, c, 'a')
  } catch (e) {
    t.fail(`scenario: ${(e as Error).stack}`)
  } finally {
    const errs = await c.teardown()
    t.same(errs, [], 'teardown without errors')
    t.same(sh('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith('wn')), [], 'no node, pod or underlay namespace left')
    t.same(hostLinks('wn-'), [], 'no host link left')
    t.notMatch(sh('ip', ['route', 'show']), /10\.95\.|10\.98\./, 'no host route left')
  }
}

/**
 * A third node that exists only as an object: its routes on node a follow it
 * joining, changing CIDR and address, turning bad (kept, reported), a rival
 * claiming its range (refused, reported) and leaving. No restart.
 */
async function followsNodeObjects(t: Test, c: NodesCluster, kind: 'host-gw' | 'vxlan'): Promise<void> {
  const ip1 = kind === 'host-gw' ? '10.95.0.3' : '10.95.5.1'
  const ip2 = kind === 'host-gw' ? '10.95.0.4' : '10.95.6.1'
  const node = (name: string, cidr: string, ip?: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDRs: [cidr] }, status: { addresses: ip ? [{ type: 'InternalIP', address: ip }] : [{ type: 'Hostname', address: name }] } })
  const route = (cidr: string, ip: string) => (kind === 'host-gw' ? `${cidr} via ${ip} dev eth0 proto 87` : `${cidr} via ${cidr.split('/')[0]} dev vxlan.wren proto 87 onlink`)
  const has = (r: string) => wrenRoutes(c, 'a').includes(r)
  const fdb = () => sh('bridge', ['-n', c.node('a').netns, 'fdb', 'show', 'dev', 'vxlan.wren'])
  const problems = async () => ((await c.statusJson('a')).routes?.problems ?? []).map((p: any) => `${p.object}: ${p.message}`).join('\n')

  // someone else's route to the range c will claim: never touched
  const a = c.node('a').netns
  sh('ip', ['-n', a, 'route', 'add', 'blackhole', '10.98.3.0/24', 'proto', 'static'])
  c.api.create('Node', node('c', '10.98.3.0/24', ip1))
  await c.sync()
  t.ok(c.routes('a').some((r) => r.trim() === 'blackhole 10.98.3.0/24 proto static'), 'a route wren did not make to the same range is left as it is')
  t.match(await problems(), /route 10\.98\.3\.0\/24: a route to 10\.98\.3\.0\/24 exists that wren did not make/, 'and status says so')
  sh('ip', ['-n', a, 'route', 'del', 'blackhole', '10.98.3.0/24', 'proto', 'static'])
  c.api.update('Node', { ...node('c', '10.98.3.0/24', ip1), metadata: { name: 'c', labels: { touched: 'yes' } } })
  await c.sync()
  t.ok(has(route('10.98.3.0/24', ip1)), `Node c joins: ${route('10.98.3.0/24', ip1)}`)
  if (kind === 'vxlan') t.match(fdb(), new RegExp(`dst ${ip1.replace(/\./g, '\\.')} self permanent`), 'one FDB entry for its VTEP')

  c.api.update('Node', node('c', '10.98.4.0/24', ip1))
  await c.sync()
  t.ok(has(route('10.98.4.0/24', ip1)) && !wrenRoutes(c, 'a').some((r) => r.startsWith('10.98.3.0/24')), 'its CIDR changes: the route moves')

  c.api.update('Node', node('c', '10.98.4.0/24', ip2))
  await c.sync()
  t.ok(has(route('10.98.4.0/24', ip2)), `its address changes: ${route('10.98.4.0/24', ip2)}`)
  if (kind === 'vxlan') t.match(fdb(), new RegExp(`dst ${ip2.replace(/\./g, '\\.')} self permanent`), 'the FDB entry follows')

  c.api.update('Node', node('c', '10.98.4.0/24'))
  await c.sync()
  t.ok(has(route('10.98.4.0/24', ip2)), 'its InternalIP disappears: the working route is kept')
  t.match(await problems(), /Node c: no InternalIP address/, 'and status says why')

  c.api.update('Node', node('c', '10.98.4.0/24', ip2))
  c.api.create('Node', node('d', '10.98.4.0/25', '10.95.0.5'))
  await c.sync()
  t.ok(has(route('10.98.4.0/24', ip2)), 'a rival claiming an overlapping range does not take the route')
  t.notOk(wrenRoutes(c, 'a').some((r) => r.startsWith('10.98.4.0/25')), 'and gets none')
  t.match(await problems(), /Node d: pod CIDR 10\.98\.4\.0\/25 overlaps Node c/, 'status names the overlap')

  c.api.delete('Node', { metadata: { name: 'd' } })
  c.api.delete('Node', { metadata: { name: 'c' } })
  await c.sync()
  t.notOk(wrenRoutes(c, 'a').some((r) => r.startsWith('10.98.4.')), 'both leave: no route left for them')
  if (kind === 'vxlan') t.notMatch(fdb(), /10\.95\.6\.1/, 'nor an FDB entry')
  t.equal(await problems(), '', 'nor a problem')
}

/**
 * The README's `wren-enforcer cleanup`, run on a node once its agent stopped:
 * wren's routes, VXLAN device, chains and sets go; a route of someone else stays.
 */
async function cleanupOnNode(t: Test, c: NodesCluster, node: string): Promise<void> {
  const ns = c.node(node).netns
  sh('ip', ['-n', ns, 'route', 'add', 'blackhole', '10.98.77.0/24', 'proto', 'static'])
  await c.stopAgent(node)
  const r = await c.inNode(node, c.enforcerBin, ['cleanup'])
  t.equal(r.code, 0, `cleanup on ${node}: ${r.stderr.trim().split('\n').pop()}`)
  t.same(wrenRoutes(c, node), [], 'no wren route left')
  t.notMatch(sh('ip', ['-n', ns, 'link', 'show']), /vxlan\.wren/, 'no VXLAN device left')
  t.notMatch(sh('ip', ['netns', 'exec', ns, 'iptables-save']), /wren-/, 'no wren chain left')
  t.notMatch(sh('ip', ['netns', 'exec', ns, 'ipset', 'list', '-n']), /wren/, 'no wren set left')
  t.ok(c.routes(node).some((l) => l.trim() === 'blackhole 10.98.77.0/24 proto static'), "someone else's route survives")
}

/**
 * A packet from node b's host with a source in node a's own pod range (no pod of
 * a's could have sent it from there) must die on node a, while a real pod of b
 * gets through to the same listener.
 */
async function antiSpoofing(t: Test, c: NodesCluster, victim: NodePod, peer: NodePod): Promise<void> {
  const b = c.node(peer.node)
  const file = join(c.root, 'received')
  const listener = spawn('ip', ['netns', 'exec', victim.netns, 'socat', '-u', 'UDP-RECVFROM:9000,fork', `OPEN:${file},creat,append`], { stdio: 'ignore' })
  try {
    await delay(300)
    sh('ip', ['-n', b.netns, 'addr', 'add', '10.98.1.99/32', 'dev', 'lo'])
    const send = (netns: string, text: string, bind?: string) => trySh('ip', ['netns', 'exec', netns, 'socat', '-u', '-', `UDP:${victim.ip}:9000${bind ? `,bind=${bind}` : ''}`], text + '\n')
    for (let i = 0; i < 3; i++) {
      send(b.netns, 'spoofed', '10.98.1.99')
      send(peer.netns, 'legit')
      await delay(200)
    }
    const got = existsSync(file) ? readFileSync(file, 'utf8') : ''
    t.match(got, /legit/, "a pod of the other node reaches the listener (control)")
    t.notMatch(got, /spoofed/, "a source from the receiver's own pod range arriving from another node is dropped")
    const raw = sh('ip', ['netns', 'exec', c.node(victim.node).netns, 'iptables-save', '-c', '-t', 'raw'])
    const line = raw.split('\n').find((l) => l.includes('spoofed pod source'))
    t.ok(line && !/^\[0:0\]/.test(line), `the anti-spoofing rule counted them: ${line}`)
  } finally {
    await stopProcess(listener, 2000)
    trySh('ip', ['-n', b.netns, 'addr', 'del', '10.98.1.99/32', 'dev', 'lo'])
  }
}

/**
 * Dual-stack pods on one L2 segment whose nodes have only IPv4 InternalIPs:
 * IPv4 ranges go host-gw, IPv6 ranges over VXLAN (no IPv6 next hop to route
 * them through), both at once.
 */
async function dualStack(t: Test): Promise<void> {
  const nodes = [
    { name: 'a', podCidrs: ['10.98.1.0/24', 'fd00:98:1::/64'] },
    { name: 'b', podCidrs: ['10.98.2.0/24', 'fd00:98:2::/64'] },
  ]
  const c = new NodesCluster({ underlay: 'l2', nodes })
  try {
    const { client, other, web } = await startWithPods(c)
    t.ok(client.ip6 && web.ip6, `pods have both families (${client.ip6}, ${web.ip6})`)
    t.ok(wrenRoutes(c, 'a').includes(`10.98.2.0/24 via ${c.node('b').ip} dev eth0 proto 87`), 'IPv4: host-gw')
    const v6 = c.routes('a', 6).filter((r) => r.includes('proto 87'))
    t.ok(v6.some((r) => r.startsWith('fd00:98:2::/64 via fd00:98:2:: dev vxlan.wren proto 87')), `IPv6: over VXLAN (${v6.join('; ')})`)
    t.ok(v6.some((r) => r.startsWith('blackhole fd00:98:1::/64')), 'own IPv6 range blackholed')
    t.match(sh('ip', ['-n', c.node('a').netns, '-6', 'neigh', 'show', 'dev', 'vxlan.wren']), /fd00:98:2:: lladdr \S+ PERMANENT/, 'the IPv6 gateway resolved by a permanent entry')
    await expectFlows(t, client, [to(web, 80, 'ok'), { ...to(web, 80, 'ok'), to: web.ip6! }])
    const [r6] = await probeFrom(client.netns, [{ kind: 'tcp', host: web.ip6!, port: WHOAMI_PORT }])
    // socat names an IPv6 peer in brackets and in full: compare the parsed addresses
    const seen = r6!.reply?.trim().replace(/^\[|\]$/g, '') ?? ''
    t.equal(seen && new URL(`http://[${seen}]/`).hostname, `[${client.ip6}]`, `IPv6 across nodes keeps its source (seen: ${r6!.reply?.trim()} ${r6!.outcome})`)
    c.applyPolicy({ metadata: { name: 'web-from-client', namespace: 'demo' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } })
    await c.sync()
    await expectFlows(t, other, [to(web, 80, 'x'), { ...to(web, 80, 'x'), to: web.ip6! }])
    await expectFlows(t, client, [to(web, 80, 'ok'), { ...to(web, 80, 'ok'), to: web.ip6! }])
  } catch (e) {
    t.fail(`dual-stack: ${(e as Error).stack}`)
  } finally {
    t.same(await c.teardown(), [], 'teardown without errors')
    t.notMatch(sh('ip', ['-6', 'route', 'show']), /fd00:98/, 'no host route left')
  }
}

t.test('two nodes on one L2 segment: host-gw', (t) => scenario(t, 'l2', [], 'host-gw'))
t.test('two nodes across a router: VXLAN', (t) => scenario(t, 'routed', [], 'vxlan'))
t.test('dual-stack on one L2 segment: IPv4 host-gw, IPv6 over VXLAN', (t) => dualStack(t))
