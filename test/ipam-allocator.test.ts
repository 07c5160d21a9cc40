import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type IpamContext } from '../cni/ipam/index.ts'
import { claim, release, sweepTemps } from '../cni/ipam/store.ts'
import { parseIp } from '../cni/ipam/ipmath.ts'
import { CniError } from '../cni/errors.ts'
import { exec } from '../shared/exec.ts'
import { nullLogger } from '../shared/log.ts'

/** A fresh data folder per test, removed even when the test fails. */
function setup(t: Test, ipam: Record<string, unknown>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'wren-ipam-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const dir = join(dataDir, 'net1')
  const ctx = (containerId: string, ifname = 'eth0'): IpamContext => ({
    network: 'net1', containerId, ifname, ipam: { type: 'wren', dataDir, ...ipam }, netconf: {}, stateDir: '/nonexistent', env: {}, exec, log: nullLogger,
  })
  const add = async (id: string, ifname = 'eth0') => (await ipamAdd(ctx(id, ifname))).ips.map((i) => i.address)
  const files = () => readdirSync(dir).filter((n) => parseIp(n)).sort()
  return { ctx, add, files, dir, dataDir }
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

t.test('sequential allocation skips network, broadcast, gateway and excluded addresses', async (t) => {
  const { add, files } = setup(t, { ranges: [[{ subnet: '10.91.3.0/29', gateway: '10.91.3.1' }]], exclude: ['10.91.3.3'] })
  const got = []
  for (const id of ['a', 'b', 'c', 'd']) got.push(...(await add(id)))
  t.same(got, ['10.91.3.2/29', '10.91.3.4/29', '10.91.3.5/29', '10.91.3.6/29'])
  t.same(files(), ['10.91.3.2', '10.91.3.4', '10.91.3.5', '10.91.3.6'])
  const e = await rejects(add('e'))
  t.equal(e.code, 11)
  t.equal(e.message, 'no free address in range 10.91.3.0/29')
  t.equal(files().length, 4, 'a failed ADD reserves nothing')
})

t.test('result carries gateway, routes and dns; files name the attachment', async (t) => {
  const { ctx, dir } = setup(t, {
    ranges: [[{ subnet: '10.5.0.0/24', gateway: '10.5.0.1' }]], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.96.0.10'] },
  })
  const r = await ipamAdd(ctx('cid-1', 'net0'))
  t.same(r, { ips: [{ address: '10.5.0.2/24', gateway: '10.5.0.1' }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.96.0.10'] } })
  t.equal(readFileSync(join(dir, '10.5.0.2'), 'utf8'), 'cid-1\nnet0\n')
})

t.test('round-robin: a released address is not reused before the range wraps', async (t) => {
  const { add, ctx } = setup(t, { ranges: [[{ subnet: '10.0.0.0/29' }]] })
  t.same(await add('a'), ['10.0.0.1/29'])
  t.same(await add('b'), ['10.0.0.2/29'])
  await ipamDel(ctx('a'))
  t.same(await add('c'), ['10.0.0.3/29'])
  t.same(await add('d'), ['10.0.0.4/29'])
  t.same(await add('e'), ['10.0.0.5/29'])
  t.same(await add('f'), ['10.0.0.6/29'])
  t.same(await add('g'), ['10.0.0.1/29'], 'wraps to the freed address')
})

t.test('a range set of several subnets is one ring', async (t) => {
  const { add, ctx } = setup(t, { ranges: [[{ subnet: '10.0.0.0/30' }, { subnet: '10.0.1.0/30' }]] })
  const got = []
  for (const id of ['a', 'b', 'c', 'd']) got.push(...(await add(id)))
  t.same(got, ['10.0.0.1/30', '10.0.0.2/30', '10.0.1.1/30', '10.0.1.2/30'], 'each address carries its own subnet prefix')
  t.equal((await rejects(add('e'))).message, 'no free address in range 10.0.0.0/30, 10.0.1.0/30')
  await ipamDel(ctx('b'))
  t.same(await add('e'), ['10.0.0.2/30'], 'wraps from the last subnet to the first')
})

t.test('the hint is only a hint: garbage or an address outside the range is ignored', async (t) => {
  const { add, dir } = setup(t, { ranges: [[{ subnet: '10.0.0.0/29' }]] })
  t.same(await add('a'), ['10.0.0.1/29'])
  writeFileSync(join(dir, 'last_reserved_ip.0'), 'not an ip')
  t.same(await add('b'), ['10.0.0.2/29'])
  writeFileSync(join(dir, 'last_reserved_ip.0'), '192.168.9.9')
  t.same(await add('c'), ['10.0.0.3/29'])
  writeFileSync(join(dir, 'last_reserved_ip.0'), '10.0.0.2') // stale: points at a taken address
  t.same(await add('d'), ['10.0.0.4/29'])
})

t.test('ADD is idempotent per attachment; ifname is part of the identity', async (t) => {
  const { add, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }]] })
  const first = await add('a')
  t.same(await add('a'), first)
  t.same(await add('a'), first)
  t.same(await add('a', 'net1'), ['10.0.0.2/24'], 'a second interface of the same container gets its own address')
  t.equal(files().length, 2)
})

t.test('release and reuse; DEL is idempotent and ignores strangers', async (t) => {
  const { add, ctx, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/30' }]] })
  t.same(await add('a'), ['10.0.0.1/30'])
  t.same(await add('b'), ['10.0.0.2/30'])
  t.equal((await rejects(add('c'))).code, 11)
  await ipamDel(ctx('a'))
  await ipamDel(ctx('a'))
  await ipamDel(ctx('never-added'))
  await ipamDel(ctx('b', 'other-if'))
  t.same(files(), ['10.0.0.2'])
  t.same(await add('c'), ['10.0.0.1/30'])
})

t.test('dual-stack: one address of each family, released together', async (t) => {
  const { add, ctx, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00:10::/120', gateway: 'fd00:10::1' }]] })
  t.same(await add('a'), ['10.0.0.1/24', 'fd00:10::2/120'])
  t.same(await add('b'), ['10.0.0.2/24', 'fd00:10::3/120'])
  t.same(await add('a'), ['10.0.0.1/24', 'fd00:10::2/120'])
  t.same(files(), ['10.0.0.1', '10.0.0.2', 'fd00:10::2', 'fd00:10::3'])
  await ipamDel(ctx('a'))
  t.same(files(), ['10.0.0.2', 'fd00:10::3'])
})

t.test('dual-stack: when one family is full, the other claim is rolled back', async (t) => {
  const { add, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/127' }]] })
  t.same(await add('a'), ['10.0.0.1/24', 'fd00::/127'])
  t.same(await add('b'), ['10.0.0.2/24', 'fd00::1/127'])
  const e = await rejects(add('c'))
  t.equal(e.code, 11)
  t.equal(e.message, 'no free address in range fd00::/127')
  t.same(files(), ['10.0.0.1', '10.0.0.2', 'fd00::', 'fd00::1'])
})

t.test('a retry after a partial ADD keeps what was reserved and completes it', async (t) => {
  const { add, dir, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/120' }]] })
  // As left by a process killed between its two claims.
  mkdirSync(dir)
  t.ok(claim(dir, parseIp('10.0.0.77')!, { containerId: 'a', ifname: 'eth0' }))
  t.same(await add('a'), ['10.0.0.77/24', 'fd00::1/120'])
  t.equal(files().length, 2)
})

t.test('CHECK returns the reservation, or code 3 when there is none', async (t) => {
  const { add, ctx } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.0.0.1' }]] })
  await add('a')
  t.same(await ipamCheck(ctx('a')), { ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }], routes: [] })
  const e = await rejects(ipamCheck(ctx('b')))
  t.equal(e.code, 3)
  t.match(e.message, /no address is reserved for b\/eth0 in network net1/)
})

t.test('GC releases every reservation not in the valid list and sweeps stale temp files', async (t) => {
  const { add, ctx, files, dir } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/120' }]] })
  for (const id of ['a', 'b', 'c']) await add(id)
  await add('a', 'net1')
  writeFileSync(join(dir, '.tmp-999999-deadbeef'), 'x\ny\n')
  const { containerId: _c, ifname: _i, ...net } = ctx('x')
  await ipamGc(net, [{ containerId: 'b', ifname: 'eth0' }, { containerId: 'a', ifname: 'net1' }, { containerId: 'zz', ifname: 'eth0' }])
  t.same(files(), ['10.0.0.2', '10.0.0.4', 'fd00::2', 'fd00::4'])
  t.same(await add('b'), ['10.0.0.2/24', 'fd00::2/120'])
  t.ok(readdirSync(dir).includes('.tmp-999999-deadbeef'), 'a fresh temp file may belong to a live process')
  sweepTemps(dir, Date.now() + 120_000)
  t.notOk(readdirSync(dir).some((n) => n.startsWith('.tmp-')))
})

t.test('STATUS: code 50 when a range set is full or wholly excluded', async (t) => {
  const full = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/30' }]] })
  const { containerId: _c, ifname: _i, ...net } = full.ctx('x')
  await ipamStatus(net)
  await full.add('a')
  await full.add('b')
  const e = await rejects(ipamStatus(net))
  t.equal(e.code, 50)
  t.equal(e.message, 'no free address in range 10.1.0.0/30')
  const excluded = setup(t, { ranges: [[{ subnet: '10.0.0.0/29' }]], exclude: ['10.0.0.0/30', '10.0.0.4/30'] })
  const { containerId: _c2, ifname: _i2, ...net2 } = excluded.ctx('x')
  t.equal((await rejects(ipamStatus(net2))).code, 50)
  t.equal((await rejects(excluded.add('a'))).code, 11)
})

t.test('DEL still releases after the ranges were edited into an invalid config', async (t) => {
  const { add, ctx, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }]] })
  await add('a')
  const broken = ctx('a')
  broken.ipam = { ...broken.ipam, ranges: 'oops' }
  t.equal((await rejects(ipamAdd(broken))).code, 7)
  await ipamDel(broken)
  t.same(files(), [])
})

t.test('a release that finds another owner puts the reservation back', async (t) => {
  const { dir, add, files } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }]] })
  await add('a')
  const conflicts: string[] = []
  t.equal(release(dir, '10.0.0.1', { containerId: 'b', ifname: 'eth0' }, (m) => conflicts.push(m)), false)
  t.same(files(), ['10.0.0.1'])
  t.equal(readFileSync(join(dir, '10.0.0.1'), 'utf8'), 'a\neth0\n')
  t.same(conflicts, [])
  t.notOk(readdirSync(dir).some((n) => n.startsWith('.tmp-')), 'no temp file left behind')
})

t.test('bad inputs', async (t) => {
  const { ctx } = setup(t, { ranges: [[{ subnet: '10.0.0.0/24' }]] })
  const noType = ctx('a')
  noType.ipam = { ranges: [] }
  t.equal((await rejects(ipamAdd(noType))).code, 7)
  const badNet = ctx('a')
  badNet.network = '../escape'
  t.equal((await rejects(ipamAdd(badNet))).code, 7)
  t.equal((await rejects(ipamAdd(ctx('a\nb')))).code, 4)
})
