// Unit tables for the compiler's building blocks: addresses, selectors, match tokens.
import t from 'tap'
import { canonicalAddr, formatCidr, formatNet, parseCidr, storableNets, strictlyContains, subtractNets } from '../enforcer/compile/ip.ts'
import { clearMark, comment, markBits, protoPorts, validIface } from '../enforcer/compile/match.ts'
import { describeSelector, labelMap, matches, parseSelector, selectorKey } from '../enforcer/compile/selector.ts'
import type { LabelSelector } from '../enforcer/model.ts'

t.test('addresses: canonical text or null', async (t) => {
  const table: [string, string | null][] = [
    ['10.0.0.1', '10.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['256.0.0.1', null],
    ['10.0.0', null],
    ['10.0.0.01', null],
    ['10.0.0.1 ', null],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['fd00:0000::0001', 'fd00::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
    ['2001:db8:0:1:2:3:4:5', '2001:db8:0:1:2:3:4:5'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2::3', null],
    ['1:2:3:4:5:6:7::8', null],
    ['fe80::1%eth0', null],
    ['12345::', null],
    ['', null],
  ]
  for (const [input, want] of table) t.equal(canonicalAddr(input)?.text ?? null, want, JSON.stringify(input))
  t.equal(canonicalAddr(42), null, 'non-strings are not addresses')
})

t.test('CIDRs: masked, bounded, strict containment', async (t) => {
  const table: [string, string | null][] = [
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.1/32', '10.0.0.1/32'],
    ['10.0.0.1/33', null],
    ['10.0.0.1/', null],
    ['10.0.0.1/08', null],
    ['fd00::1/64', 'fd00::/64'],
    ['fd00::/129', null],
    ['10.0.0.0', null],
  ]
  for (const [input, want] of table) {
    const c = parseCidr(input)
    t.equal(c ? formatCidr(c) : null, want, input)
  }
  const c = (s: string) => parseCidr(s)!
  t.ok(strictlyContains(c('10.0.0.0/8'), c('10.5.0.0/16')))
  t.notOk(strictlyContains(c('10.0.0.0/8'), c('10.0.0.0/8')), 'equal is not strict')
  t.notOk(strictlyContains(c('10.0.0.0/8'), c('11.0.0.0/16')))
  t.notOk(strictlyContains(c('10.0.0.0/16'), c('10.0.0.0/8')), 'wider is not inside')
  t.notOk(strictlyContains(c('0.0.0.0/0'), c('::/64')), 'other family')
  t.same(storableNets(c('::/0')).map(formatCidr), ['::/1', '8000::/1'])
  t.same(storableNets(c('10.0.0.0/8')).map(formatCidr), ['10.0.0.0/8'])
})

t.test('CIDR subtraction: disjoint positive CIDRs covering exactly the rest', async (t) => {
  const sub = (cidr: string, holes: string[]) => subtractNets(parseCidr(cidr)!, holes.map((h) => parseCidr(h)!)).map(formatNet).sort()
  const cases: [string, string[], string[]][] = [
    ['10.0.0.0/8', [], ['10.0.0.0/8']],
    ['10.0.0.0/30', ['10.0.0.1/32'], ['10.0.0.0', '10.0.0.2/31']],
    ['10.0.0.0/24', ['10.0.0.0/25', '10.0.0.128/25'], []],
    ['10.0.0.0/24', ['10.0.0.0/23'], []],
    ['0.0.0.0/0', [], ['0.0.0.0/1', '128.0.0.0/1']],
    ['0.0.0.0/0', ['10.0.0.0/8'], ['0.0.0.0/5', '11.0.0.0/8', '12.0.0.0/6', '128.0.0.0/1', '16.0.0.0/4', '32.0.0.0/3', '64.0.0.0/2', '8.0.0.0/7'].sort()],
    ['fd00::/126', ['fd00::3/128'], ['fd00::/127', 'fd00::2']],
    ['::/0', ['8000::/1'], ['::/1']],
  ]
  for (const [cidr, holes, want] of cases) t.same(sub(cidr, holes), want, `${cidr} - ${holes.join(',') || 'nothing'}`)
})

t.test('selectors: every operator', async (t) => {
  const labels = labelMap({ app: 'web', tier: 'front', version: 2, bad: { x: 1 } })
  const table: [LabelSelector, boolean][] = [
    [{}, true],
    [{ matchLabels: {} }, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'web', tier: 'back' } }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] }, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'In', values: ['x'] }] }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['web'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'missing', operator: 'Exists' }] }, false],
    [{ matchExpressions: [{ key: 'missing', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [{ matchExpressions: [{ key: 'bad', operator: 'DoesNotExist' }] }, true],
    [{ matchLabels: { version: '2' } }, true],
    [{ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] }, false],
  ]
  for (const [sel, want] of table) {
    const r = parseSelector(sel, 'sel')
    if (!r.ok) t.fail(r.error)
    else t.equal(matches(r.selector, labels), want, JSON.stringify(sel))
  }
})

t.test('selectors: invalid ones are refused with a reason', async (t) => {
  const table: [unknown, RegExp][] = [
    [{ matchExpressions: [{ key: 'a', operator: 'in', values: ['x'] }] }, /unsupported operator "in"/],
    [{ matchExpressions: [{ key: 'a', operator: 'NotIn' }] }, /needs values/],
    [{ matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] }, /takes no values/],
    [{ matchExpressions: [{ operator: 'Exists' }] }, /key must be/],
    [{ matchExpressions: [{ key: 'a', operator: 'In', values: [1] }] }, /values must be strings/],
    [{ matchExpressions: { key: 'a' } }, /must be a list/],
    [{ matchLabels: ['a'] }, /must be an object/],
    [{ matchLabels: { a: null } }, /must be a string/],
    ['app=web', /must be an object/],
  ]
  for (const [sel, err] of table) {
    const r = parseSelector(sel as LabelSelector, 'spec.podSelector')
    t.notOk(r.ok, JSON.stringify(sel))
    if (!r.ok) t.match(r.error, err)
  }
})

t.test('selector keys are canonical', async (t) => {
  const key = (s: LabelSelector) => {
    const r = parseSelector(s, 's')
    if (!r.ok) throw new Error(r.error)
    return selectorKey(r.selector)
  }
  t.equal(key({ matchLabels: { a: '1', b: '2' } }), key({ matchLabels: { b: '2', a: '1' } }))
  t.equal(key({ matchLabels: { a: '1' } }), key({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }))
  t.equal(key({ matchExpressions: [{ key: 'a', operator: 'In', values: ['2', '1', '2'] }] }), key({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }))
  t.equal(key({}), key({ matchLabels: {}, matchExpressions: [] }))
  t.not(key({ matchLabels: { a: '1' } }), key({ matchLabels: { a: '2' } }))
  t.not(key({ matchLabels: { 'a,b': 'c' } }), key({ matchLabels: { a: 'b,c' } }), 'no separator ambiguity')
  const r = parseSelector({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, 's')
  t.equal(r.ok && describeSelector(r.selector), 'app=web,x absent')
})

t.test('match tokens', async (t) => {
  t.equal(comment('policy "a"\n-j ACCEPT; $(x)'), 'policy a-j ACCEPT x')
  t.equal(comment('x'.repeat(500)).length, 240)
  t.equal(markBits(0x10000), '0x10000')
  for (const bad of [0, 3, -1, 2 ** 32, 0.5]) t.throws(() => markBits(bad), String(bad))
  t.same(clearMark(0x4), ['-j', 'MARK', '--set-xmark', '0x0/0x4'])
  t.same(protoPorts('udp'), ['-p', 'udp'])
  t.same(protoPorts('sctp', { from: 5, to: 5 }), ['-p', 'sctp', '-m', 'sctp', '--dport', '5'])
  t.same(protoPorts('tcp', { from: 80, to: 90 }), ['-p', 'tcp', '-m', 'tcp', '--dport', '80:90'])
  t.throws(() => protoPorts('tcp', { from: 0, to: 1 }))
  t.ok(validIface('wren0a1b', 'wren'))
  for (const bad of ['wren', 'eth0', 'wren0a1b2c3d4e5f6', 'wren-x', 'Wren1']) t.notOk(validIface(bad, 'wren'), bad)
})
