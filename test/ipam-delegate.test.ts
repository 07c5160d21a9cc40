// Delegation to a real IPAM plugin (Debian's host-local) and to small fake
// plugins that misbehave in the ways a real one can.
import t, { type Test } from 'tap'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type IpamContext } from '../cni/ipam/index.ts'
import { toIpamResult } from '../cni/ipam/delegate.ts'
import { listEntries, writeEntry } from '../cni/ipam/journal.ts'
import { CniError } from '../cni/errors.ts'
import { exec } from '../shared/exec.ts'
import { nullLogger } from '../shared/log.ts'

const SYSTEM_CNI = '/usr/lib/cni'

function setup(t: Test) {
  const root = mkdtempSync(join(tmpdir(), 'wren-ipam-deleg-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const fakes = join(root, 'bin')
  const data = join(root, 'data')
  writeFileSync(join(root, '.keep'), '')
  const plugin = (name: string, body: string, mode = 0o755) => {
    writeFileSync(join(root, name), `#!/bin/sh\n${body}\n`)
    chmodSync(join(root, name), mode)
  }
  const ctx = (ipam: Record<string, unknown>, containerId = 'c1', cniVersion = '1.0.0'): IpamContext => {
    const netconf = { cniVersion, name: 'dnet', ipam }
    const env = { PATH: process.env.PATH, CNI_PATH: `${fakes}:${root}:${SYSTEM_CNI}`, CNI_CONTAINERID: 'stale', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'stale', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p' }
    return { network: 'dnet', containerId, ifname: 'eth0', ipam, netconf, stateDir: root, env, exec, log: nullLogger }
  }
  return { root, data, plugin, ctx }
}

async function rejects(p: Promise<unknown>): Promise<CniError> {
  try {
    await p
  } catch (e) {
    if (e instanceof CniError) return e
    throw e
  }
  throw new Error('expected a CniError')
}

const hostLocal = (data: string) => ({ type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.88.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] })

t.test('host-local: ADD, repeated ADD, CHECK, DEL', { skip: !existsSync(join(SYSTEM_CNI, 'host-local')) && 'no host-local' }, async (t) => {
  const { data, ctx } = setup(t)
  for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
    const c = ctx(hostLocal(data), `c-${version}`, version)
    const r = await ipamAdd(c)
    t.match(r.ips, [{ address: /^10\.88\.0\.\d+\/24$/, gateway: '10.88.0.1' }], `a ${version} result converts`)
    t.same(r.routes, [{ dst: '0.0.0.0/0' }])
    t.ok(existsSync(join(data, 'dnet', r.ips[0].address.split('/')[0])), 'host-local reserved it on disk')
    t.same(await ipamAdd(c), r, 'a repeated ADD returns the same addresses (host-local alone would refuse it)')
    const withPrev = { ...c, netconf: { ...c.netconf, prevResult: { cniVersion: version, ips: r.ips } } }
    if (version === '0.3.1') t.match((await rejects(ipamCheck(withPrev))).message, /CHECK/, 'CHECK needs 0.4.0 or later')
    else t.same((await ipamCheck(withPrev)).ips, r.ips, 'CHECK answers with prevResult')
    await ipamDel(c)
    await ipamDel(c)
    t.notOk(existsSync(join(data, 'dnet', r.ips[0].address.split('/')[0])), 'DEL released it')
  }
  t.equal((await rejects(ipamCheck(ctx(hostLocal(data), 'never')))).code, 999, 'host-local CHECK of an unknown container fails')
  const { containerId: _c, ifname: _i, ...net } = ctx(hostLocal(data), 'x', '1.1.0')
  await ipamGc(net, []) // host-local (CNI 1.0) knows no GC: skipped rather than failed
  await ipamStatus(net)
})

t.test('host-local: a retry after an interrupted ADD, and GC of a delegate that predates it', async (t) => {
  const { data, ctx } = setup(t)
  const held = () => readdirSync(join(data, 'dnet')).filter((n) => /^10\./.test(n))
  const c = ctx(hostLocal(data), 'crashed')
  // As left by wren killed while host-local was answering: the delegate holds an address, the journal says pending.
  const r = await exec(join(SYSTEM_CNI, 'host-local'), [], { input: JSON.stringify(c.netconf), env: { ...c.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'crashed', CNI_IFNAME: 'eth0' } })
  t.equal(r.code, 0, r.stdout)
  writeEntry(c.stateDir, 'dnet', { containerId: 'crashed', ifname: 'eth0' })
  t.equal(held().length, 1)
  const again = await ipamAdd(c)
  t.equal(again.ips.length, 1)
  t.same(held(), [again.ips[0].address.split('/')[0]], 'the interrupted reservation was released, not leaked')
  await ipamAdd(ctx(hostLocal(data), 'kept'))
  t.equal(held().length, 2)
  const { containerId: _c, ifname: _i, ...net } = ctx(hostLocal(data), 'x', '1.0.0')
  await ipamGc(net, [{ containerId: 'kept', ifname: 'eth0' }])
  t.equal(held().length, 1, 'GC released the attachment that is no longer valid')
  t.same(listEntries(c.stateDir, 'dnet'), [{ containerId: 'kept', ifname: 'eth0' }])
  await ipamDel(ctx(hostLocal(data), 'kept'))
  t.same(held(), [])
  t.same(listEntries(c.stateDir, 'dnet'), [])
})

t.test('the delegate gets our CNI_* env, the attachment and the whole netconf', async (t) => {
  const { root, plugin, ctx } = setup(t)
  const rec = join(root, 'rec')
  const result = JSON.stringify({
    cniVersion: '0.3.1', ips: [{ version: '4', address: '10.9.0.5/16', gateway: '10.9.0.1', interface: 0 }, { version: '6', address: 'FD00::5/64' }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }], dns: { nameservers: ['10.9.0.2'], domain: 'cluster.local', bogus: 1 },
  })
  plugin('rec-ipam', `[ "$CNI_COMMAND" = VERSION ] && echo '{"supportedVersions":["1.0.0","1.1.0"]}' && exit 0\necho "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $CNI_NETNS $CNI_ARGS" >> ${rec}; cat >> ${rec}; echo >> ${rec}\n[ "$CNI_COMMAND" = ADD ] && echo '${result}'\nexit 0`)
  const c = ctx({ type: 'rec-ipam', anything: ['goes'] })
  const r = await ipamAdd(c)
  t.same(r, {
    ips: [{ address: '10.9.0.5/16', gateway: '10.9.0.1' }, { address: 'fd00::5/64' }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }], dns: { nameservers: ['10.9.0.2'], domain: 'cluster.local' },
  })
  await ipamDel(c)
  t.same(await ipamCheck(c), { ips: [], routes: [] }, 'CHECK with no output and no prevResult')
  const { containerId: _c, ifname: _i, ...net } = c
  await ipamGc(net, [{ containerId: 'keep', ifname: 'eth0' }])
  await ipamStatus(net)
  const lines = readFileSync(rec, 'utf8').trim().split('\n')
  const conf = JSON.stringify(c.netconf)
  t.same(lines.slice(0, 8), [
    'ADD c1 eth0 /var/run/netns/x IgnoreUnknown=1;K8S_POD_NAME=p', conf,
    'DEL c1 eth0 /var/run/netns/x IgnoreUnknown=1;K8S_POD_NAME=p', conf,
    'CHECK c1 eth0 /var/run/netns/x IgnoreUnknown=1;K8S_POD_NAME=p', conf,
    'GC stale stale /var/run/netns/x IgnoreUnknown=1;K8S_POD_NAME=p', JSON.stringify({ ...c.netconf, 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }),
  ])
  t.equal(lines[8], 'STATUS stale stale /var/run/netns/x IgnoreUnknown=1;K8S_POD_NAME=p')
})

t.test('misbehaving delegates give clear errors', async (t) => {
  const { plugin, ctx } = setup(t)
  plugin('err-ipam', `echo '{"cniVersion":"1.0.0","code":11,"msg":"pool busy","details":"retry in 5s"}'; exit 1`)
  plugin('garbage-ipam', `echo 'hello, world'`)
  plugin('mute-ipam', 'exit 3')
  plugin('old11-ipam', `[ "$CNI_COMMAND" = VERSION ] && echo '{"supportedVersions":["0.4.0","1.0.0"]}' && exit 0\nexit 9`)
  plugin('new11-ipam', `[ "$CNI_COMMAND" = VERSION ] && echo '{"supportedVersions":["1.1.0"]}' && exit 0\necho '{"code":50,"msg":"pool offline"}'; exit 1`)
  plugin('stderr-ipam', 'echo "cannot open /var/lib/x" >&2; exit 2')
  plugin('old-ipam', `echo '{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}'`)
  plugin('badip-ipam', `echo '{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}],"routes":[{"dst":"x"}]}'`)
  plugin('noexec-ipam', `echo '{}'`, 0o644)
  const cases: [string, number, RegExp, RegExp?][] = [
    ['err-ipam', 11, /^pool busy$/, /^retry in 5s$/],
    ['garbage-ipam', 6, /IPAM plugin garbage-ipam ADD printed invalid JSON/, /hello, world/],
    ['mute-ipam', 999, /IPAM plugin mute-ipam ADD exited with code 3 and no output/],
    ['stderr-ipam', 999, /exited with code 2$/, /cannot open \/var\/lib\/x/],
    ['old-ipam', 1, /returned a cniVersion 0\.2\.0 result/],
    ['badip-ipam', 6, /invalid result: ips\[0\]\.address is not a CIDR/, /routes\[0\]\.dst is not a CIDR/],
    ['noexec-ipam', 7, /IPAM plugin 'noexec-ipam' not found in CNI_PATH/],
    ['nope', 7, /^IPAM plugin 'nope' not found in CNI_PATH ".*\/bin:.*:\/usr\/lib\/cni"$/],
    ['../bin/sh', 7, /must be a plugin name, not a path/],
  ]
  for (const [type, code, msg, details] of cases) {
    const e = await rejects(ipamAdd(ctx({ type }, `c-${type.replace(/\W/g, '')}`)))
    t.equal(e.code, code, `${type}: code`)
    t.match(e.message, msg, `${type}: msg`)
    if (details) t.match(e.details, details, `${type}: details`)
  }
  const { containerId: _c, ifname: _i, ...net } = ctx({ type: 'nope' })
  t.equal((await rejects(ipamStatus(net))).code, 50, 'a missing delegate on STATUS is "plugin not available"')
  t.equal((await rejects(ipamDel(ctx({ type: 'err-ipam' })))).code, 11, 'DEL passes errors through too')
  // a network of its own: GC DELs every journaled attachment of its network through the delegate
  const { containerId: _c1, ifname: _i1, ...old11 } = { ...ctx({ type: 'old11-ipam' }), network: 'dnet2' }
  await ipamStatus(old11)
  await ipamGc(old11, [])
  const { containerId: _c2, ifname: _i2, ...new11 } = ctx({ type: 'new11-ipam' })
  t.match(await rejects(ipamStatus(new11)), { code: 50, message: 'pool offline' }, 'a 1.1 delegate answers STATUS itself')
})

t.test('toIpamResult accepts every supported version and rejects non-objects', async (t) => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    t.same(toIpamResult({ cniVersion: v, ips: [{ address: '10.0.0.2/24' }] }, 'x'), { ips: [{ address: '10.0.0.2/24' }], routes: [] }, v)
  }
  t.throws(() => toIpamResult([1], 'x'), { code: 6 })
  t.throws(() => toIpamResult({ ips: 'no' }, 'x'), { code: 6 })
})

t.test('an ADD where nothing is installed leaves no files behind in our data dir', async (t) => {
  const { root, ctx } = setup(t)
  await rejects(ipamAdd(ctx({ type: 'nope' })))
  t.same(readdirSync(root).sort(), ['.keep'])
})
