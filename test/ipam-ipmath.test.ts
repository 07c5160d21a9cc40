import t from 'tap'
import {
  addIp, compareIp, contains, formatCidr, formatIp, hasHostBits, lastOf, networkOf, parseCidr, parseIp, parseIpOrCidr,
} from '../cni/ipam/ipmath.ts'

t.test('parse and format round trips to canonical text', async (t) => {
  const cases: [string, string, 4 | 6][] = [
    ['0.0.0.0', '0.0.0.0', 4],
    ['10.1.2.3', '10.1.2.3', 4],
    ['255.255.255.255', '255.255.255.255', 4],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['2001:DB8::1', '2001:db8::1', 6],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6], // first of equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1', 6], // a single zero group is not compressed
    ['fd00:0:0:1::', 'fd00:0:0:1::', 6],
    ['::ffff:10.0.0.1', '::ffff:a00:1', 6],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6],
  ]
  for (const [input, out, family] of cases) {
    const ip = parseIp(input)
    t.equal(ip?.family, family, `${input} family`)
    t.equal(ip && formatIp(ip), out, `${input} formats as ${out}`)
  }
})

t.test('rejects malformed addresses', async (t) => {
  const bad = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', 'a.b.c.d', ' 1.2.3.4', '1:2:3:4:5:6:7:8:9',
    '1::2::3', ':1::', '1:', '12345::', 'g::1', '1.2.3.4::', '::1.2.3', 'fe80::1%eth0', '1:2:3:4:5:6:7::8:9']
  for (const s of bad) t.equal(parseIp(s), undefined, JSON.stringify(s))
})

t.test('CIDRs', async (t) => {
  const c = parseCidr('10.1.2.77/24')!
  t.equal(formatCidr(c), '10.1.2.77/24')
  t.ok(hasHostBits(c))
  t.equal(formatIp(networkOf(c)), '10.1.2.0')
  t.equal(formatIp(lastOf(c)), '10.1.2.255')
  t.notOk(hasHostBits(parseCidr('10.1.2.0/24')!))
  const v6 = parseCidr('fd00:1::/64')!
  t.equal(formatIp(lastOf(v6)), 'fd00:1::ffff:ffff:ffff:ffff')
  t.equal(formatIp(lastOf(parseCidr('0.0.0.0/0')!)), '255.255.255.255')
  for (const s of ['10.0.0.0', '10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/', 'x/8']) {
    t.equal(parseCidr(s), undefined, JSON.stringify(s))
  }
  t.same(parseIpOrCidr('10.0.0.9'), { ip: parseIp('10.0.0.9'), prefix: 32 })
  t.same(parseIpOrCidr('fd00::9'), { ip: parseIp('fd00::9'), prefix: 128 })
})

t.test('contains', async (t) => {
  const cases: [string, string, boolean][] = [
    ['10.1.0.0/16', '10.1.255.255', true],
    ['10.1.0.0/16', '10.2.0.0', false],
    ['10.1.0.0/16', 'fd00::1', false], // another family is never inside
    ['0.0.0.0/0', '1.2.3.4', true],
    ['fd00::/64', 'fd00::ffff:ffff:ffff:ffff', true],
    ['fd00::/64', 'fd00:0:0:1::', false],
    ['10.0.0.5/32', '10.0.0.5', true],
    ['10.0.0.5/32', '10.0.0.6', false],
  ]
  for (const [cidr, ip, want] of cases) t.equal(contains(parseCidr(cidr)!, parseIp(ip)!), want, `${cidr} ∋ ${ip}`)
})

t.test('add and compare', async (t) => {
  const ip = (s: string) => parseIp(s)!
  t.equal(formatIp(addIp(ip('10.0.0.255'), 1n)!), '10.0.1.0')
  t.equal(formatIp(addIp(ip('10.0.1.0'), -1n)!), '10.0.0.255')
  t.equal(addIp(ip('255.255.255.255'), 1n), undefined)
  t.equal(addIp(ip('0.0.0.0'), -1n), undefined)
  t.equal(formatIp(addIp(ip('fd00::ffff:ffff'), 1n)!), 'fd00::1:0:0')
  t.equal(addIp(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 1n), undefined)
  t.equal(compareIp(ip('10.0.0.2'), ip('10.0.0.10')), -1)
  t.equal(compareIp(ip('10.0.0.10'), ip('10.0.0.2')), 1)
  t.equal(compareIp(ip('10.0.0.1'), ip('10.0.0.1')), 0)
  t.equal(compareIp(ip('255.255.255.255'), ip('::')), -1, 'IPv4 sorts before IPv6')
})
