import t from 'tap'
import { parseBuiltinConfig } from '../cni/ipam/config.ts'
import { formatIp } from '../cni/ipam/ipmath.ts'
import { CniError } from '../cni/errors.ts'

const parse = (ipam: Record<string, unknown>) => parseBuiltinConfig({ type: 'wren', ...ipam }, '/run/wren')

function problems(ipam: Record<string, unknown>): CniError {
  try {
    parse(ipam)
  } catch (e) {
    if (e instanceof CniError) return e
    throw e
  }
  throw new Error('config was accepted')
}

t.test('a valid dual-stack config, normalised', async (t) => {
  const cfg = parse({
    ranges: [
      [{ subnet: '10.1.0.0/24', gateway: '10.1.0.1' }, { subnet: '10.2.0.0/24', rangeStart: '10.2.0.10', rangeEnd: '10.2.0.20' }],
      [{ subnet: 'fd00:1::/120' }],
    ],
    exclude: ['10.1.0.128/25', '10.1.0.7'],
    routes: [{ dst: '0.0.0.0/0' }, { dst: 'fd00::/8', gw: 'FD00:1::1' }],
    dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
  })
  t.equal(cfg.dataDir, '/run/wren/ipam', 'dataDir defaults under the state dir')
  t.equal(cfg.rangeSets.length, 2)
  const [a, b] = cfg.rangeSets[0]
  t.same([formatIp(a.first), formatIp(a.last), formatIp(a.gateway!)], ['10.1.0.1', '10.1.0.254', '10.1.0.1'], 'network and broadcast are cut off')
  t.same([formatIp(b.first), formatIp(b.last)], ['10.2.0.10', '10.2.0.20'])
  t.same([formatIp(cfg.rangeSets[1][0].first), formatIp(cfg.rangeSets[1][0].last)], ['fd00:1::1', 'fd00:1::fe'])
  t.same(cfg.routes, [{ dst: '0.0.0.0/0' }, { dst: 'fd00::/8', gw: 'fd00:1::1' }])
  t.equal(cfg.exclude.length, 2)
  t.same(cfg.dns, { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] })
})

t.test('point-to-point subnets keep every address', async (t) => {
  const [[r31], [r32]] = parse({ ranges: [[{ subnet: '10.0.0.0/31' }], [{ subnet: '10.0.1.5/32' }]] }).rangeSets
  t.same([formatIp(r31.first), formatIp(r31.last)], ['10.0.0.0', '10.0.0.1'])
  t.same([formatIp(r32.first), formatIp(r32.last)], ['10.0.1.5', '10.0.1.5'])
})

t.test('rangeStart/rangeEnd on the network or broadcast address are clamped', async (t) => {
  const [[r]] = parse({ ranges: [[{ subnet: '10.0.0.0/29', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.7' }]] }).rangeSets
  t.same([formatIp(r.first), formatIp(r.last)], ['10.0.0.1', '10.0.0.6'])
})

t.test('each invalid config names its problem (code 7)', async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['no ranges', {}, /ipam\.ranges must be a non-empty list/],
    ['empty set', { ranges: [[]] }, /ranges\[0\] must be a non-empty list/],
    ['bad subnet', { ranges: [[{ subnet: '10.0.0.0/33' }]] }, /subnet "10\.0\.0\.0\/33" is not a CIDR/],
    ['host bits', { ranges: [[{ subnet: '10.0.0.5/24' }]] }, /host bits set \(did you mean 10\.0\.0\.0\/24\?\)/],
    ['start outside', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }]] }, /rangeStart 10\.0\.1\.1 is outside subnet 10\.0\.0\.0\/24/],
    ['end not an ip', { ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: 'x' }]] }, /rangeEnd "x" is not an IP address/],
    ['gateway outside', { ranges: [[{ subnet: '10.0.0.0/24', gateway: '10.9.0.1' }]] }, /gateway 10\.9\.0\.1 is outside/],
    ['start after end', { ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.3' }]] }, /holds no usable address/],
    ['mixed families', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, /mixes IPv4 and IPv6/],
    ['overlapping sets', { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.128/25' }]] }, /ranges\[0\]\[0\] \(10\.0\.0\.0\/24\) overlaps ipam\.ranges\[1\]\[0\]/],
    ['overlap within a set', { ranges: [[{ subnet: '10.0.0.0/16' }, { subnet: '10.0.5.0/24' }]] }, /overlaps/],
    ['bad exclude', { ranges: [[{ subnet: '10.0.0.0/24' }]], exclude: ['10.0.0.300'] }, /exclude\[0\] "10\.0\.0\.300" is neither/],
    ['bad route', { ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'default' }] }, /routes\[0\]\.dst "default" is not a CIDR/],
    ['route family', { ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: '0.0.0.0/0', gw: 'fd00::1' }] }, /different IP families/],
    ['relative dataDir', { ranges: [[{ subnet: '10.0.0.0/24' }]], dataDir: 'var/lib' }, /dataDir "var\/lib" must be an absolute path/],
    ['bad dns', { ranges: [[{ subnet: '10.0.0.0/24' }]], dns: { nameservers: ['dns.local'] } }, /nameservers\[0\] "dns\.local" is not an IP/],
  ]
  for (const [name, ipam, re] of cases) {
    const e = problems(ipam)
    t.equal(e.code, 7, `${name}: code`)
    t.match(e.details, re, `${name}: details`)
  }
})

t.test('every problem is reported at once', async (t) => {
  const e = problems({
    ranges: [[{ subnet: 'nope' }], [{ subnet: '10.0.0.0/24', rangeStart: '10.1.0.1', colour: 'red' }]],
    exclude: ['x'],
    routes: [{ dst: 'y' }],
    dataDir: 'rel',
    extra: true,
  })
  t.equal(e.code, 7)
  const parts = e.details.split('; ')
  t.equal(parts.length, 7, parts.join('\n'))
  t.match(e.message, /^invalid wren ipam config: .* \(and 6 more\)$/)
  t.match(e.details, /ipam\.ranges\[1\]\[0\]: unknown key "colour"/)
  t.match(e.details, /ipam: unknown key "extra"/)
})

t.test('unknown keys alone are code 2 (unsupported field)', async (t) => {
  const e = problems({ ranges: [[{ subnet: '10.0.0.0/24' }]], rangeStart: '10.0.0.5', routes: [{ dst: '0.0.0.0/0', metric: 5 }] })
  t.equal(e.code, 2)
  t.match(e.details, /ipam: unknown key "rangeStart"/)
  t.match(e.details, /ipam\.routes\[0\]: unknown key "metric"/)
})
