import t from 'tap'
import { canonicalV6, chainResults, parseResult, renderResult, type Result } from '../cni/result.ts'
import { podMac } from '../cni/veth.ts'

const r: Result = {
  interfaces: [
    { name: 'wren0123456789a', mac: 'aa:bb:cc:dd:ee:01', mtu: 1500 },
    { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, sandbox: '/var/run/netns/p' },
  ],
  ips: [
    { address: '10.91.0.5/32', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00:91::5/128', gateway: 'fe80::1', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1400 }, { dst: '::/0', gw: 'fe80::1' }],
  dns: { nameservers: ['10.96.0.10'] },
}

t.test('0.3.x and 0.4.0 carry ip versions and drop 1.1 fields', async (t) => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0'] as const) {
    const out = renderResult(r, v) as any
    t.equal(out.cniVersion, v)
    t.same(out.ips.map((i: any) => i.version), ['4', '6'])
    t.same(out.ips.map((i: any) => i.interface), [1, 1])
    t.notOk('mtu' in out.interfaces[0], 'interface mtu is 1.1 only')
    t.notOk('mtu' in out.routes[0], 'route mtu is 1.1 only')
    t.equal(out.interfaces[1].sandbox, '/var/run/netns/p')
  }
})

t.test('1.0.0 has no ip versions, 1.1.0 keeps the newer fields', async (t) => {
  const v10 = renderResult(r, '1.0.0') as any
  t.notOk('version' in v10.ips[0])
  t.notOk('mtu' in v10.routes[0])
  const v11 = renderResult(r, '1.1.0') as any
  t.equal(v11.routes[0].mtu, 1400)
  t.equal(v11.interfaces[0].mtu, 1500)
  t.same(v11.dns, { nameservers: ['10.96.0.10'] })
  t.same(renderResult({ interfaces: [], ips: [], routes: [] }, '1.1.0'), { cniVersion: '1.1.0', ips: [], dns: {} })
})

t.test('a rendered result parses back, from any version', async (t) => {
  for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const) {
    const back = parseResult(JSON.parse(JSON.stringify(renderResult(r, v))))
    t.same(back.ips, r.ips, `ips round-trip through ${v}`)
  }
  t.throws(() => parseResult({ interfaces: [], ips: [{ address: '10.0.0.1/32', interface: 0 }] }), /not an index/)
  t.throws(() => parseResult('x'), /not an object/)
})

t.test('chaining shifts interface indexes past the previous result', async (t) => {
  const prev: Result = { interfaces: [{ name: 'bond0' }], ips: [{ address: '192.0.2.9/24', interface: 0 }], routes: [], dns: { domain: 'x' } }
  const c = chainResults(prev, r)
  t.same(c.interfaces.map((i) => i.name), ['bond0', 'wren0123456789a', 'eth0'])
  t.same(c.ips.map((i) => i.interface), [0, 2, 2])
  t.same(c.dns, r.dns)
  t.equal(chainResults(undefined, r), r)
})

t.test('helpers', async (t) => {
  t.equal(canonicalV6('fd00:0091:0000:0000:0000:0000:0000:0005'), 'fd00:91::5')
  t.equal(canonicalV6('fd00:91::5'), 'fd00:91::5')
  t.equal(canonicalV6('1:0:2:0:0:3:0:0'), '1:0:2::3:0:0')
  const mac = podMac('c1', 'eth0')
  t.equal(mac, podMac('c1', 'eth0'), 'stable per attachment')
  t.not(mac, podMac('c2', 'eth0'))
  t.equal(parseInt(mac.slice(0, 2), 16) & 0x03, 0x02, 'locally administered unicast')
})
