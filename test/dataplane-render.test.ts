import t from 'tap'
import {
  COMMENT_MAX,
  commentText,
  renderChain,
  renderSetCreate,
  ruleHashes,
  sanitiseComment,
} from '../enforcer/dataplane/render.ts'
import { canonicalMember } from '../enforcer/dataplane/members.ts'
import type { Rule } from '../enforcer/dataplane/types.ts'

const H = '[0-9a-f]{16}'
const line = (rule: Rule) => renderChain('wren-test', [rule]).lines[0]

t.test('one rendered line per match kind', async (t) => {
  const cases: { name: string; rule: Rule; want: RegExp }[] = [
    {
      name: 'interface goto',
      rule: { match: ['-i', 'wren1a2b3c4d5e6'], action: ['-g', 'wren-fw-wren1a2b3c4d5e6'], comment: 'to workload' },
      want: new RegExp(`^-A wren-test -i wren1a2b3c4d5e6 -m comment --comment "wren:${H}; to workload" -g wren-fw-wren1a2b3c4d5e6$`),
    },
    {
      name: 'interface wildcard',
      rule: { match: ['-o', 'wren+'], action: ['-j', 'wren-to-wl-dispatch'], comment: '' },
      want: new RegExp(`^-A wren-test -o wren\\+ -m comment --comment "wren:${H}" -j wren-to-wl-dispatch$`),
    },
    {
      name: 'set match and ports',
      rule: { match: ['-p', 'tcp', '-m', 'set', '--match-set', 'wren4i-abc', 'src', '-m', 'multiport', '--dports', '80,443,8000:8080'], action: ['-j', 'MARK', '--set-xmark', '0x10000/0x10000'], comment: 'policy default/web ingress' },
      want: new RegExp(`^-A wren-test -p tcp -m set --match-set wren4i-abc src -m multiport --dports 80,443,8000:8080 -m comment --comment "wren:${H}; policy default/web ingress" -j MARK --set-xmark 0x10000/0x10000$`),
    },
    {
      name: 'negated set',
      rule: { match: ['-m', 'set', '!', '--match-set', 'wren4n-x', 'dst'], action: ['-j', 'DROP'], comment: 'except' },
      want: new RegExp(`^-A wren-test -m set ! --match-set wren4n-x dst -m comment --comment "wren:${H}; except" -j DROP$`),
    },
    {
      name: 'conntrack',
      rule: { match: ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED'], action: ['-j', 'ACCEPT'], comment: 'established' },
      want: new RegExp(`^-A wren-test -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "wren:${H}; established" -j ACCEPT$`),
    },
    {
      name: 'mark',
      rule: { match: ['-m', 'mark', '--mark', '0x10000/0x10000'], action: ['-j', 'RETURN'], comment: 'accepted' },
      want: new RegExp(`^-A wren-test -m mark --mark 0x10000/0x10000 -m comment --comment "wren:${H}; accepted" -j RETURN$`),
    },
    {
      name: 'comment with quotes, newlines and shell characters',
      rule: { match: [], action: ['-j', 'DROP'], comment: 'policy "evil"\n-A FORWARD -j ACCEPT $(reboot) `x`; \'q\'' },
      want: new RegExp(`^-A wren-test -m comment --comment "wren:${H}; policy _evil_ -A FORWARD -j ACCEPT _\\(reboot\\) _x__ _q_" -j DROP$`),
    },
  ]
  for (const c of cases) t.match(line(c.rule), c.want, c.name)
})

t.test('comments are cut to what xt_comment keeps', async (t) => {
  const text = commentText('0123456789abcdef', 'x'.repeat(1000))
  t.equal(text.length, COMMENT_MAX)
  t.ok(text.startsWith('wren:0123456789abcdef; xxx'))
  t.equal(sanitiseComment('  a\t\tb\r\nc  '), 'a b c')
})

t.test('unsafe tokens are rejected, never quoted', async (t) => {
  const bad = ['a b', 'x"y', "x'y", 'a\nb', '$(x)', '`x`', 'a;b', '', 'a|b', '-A', '--comment', 'COMMIT', '-X', '--delete-chain', 'x'.repeat(200)]
  for (const tok of bad) {
    t.throws(() => line({ match: ['-i', tok], action: ['-j', 'ACCEPT'], comment: '' }), { name: 'RenderError' }, `match ${JSON.stringify(tok)}`)
    t.throws(() => line({ match: [], action: ['-j', tok], comment: '' }), { name: 'RenderError' }, `action ${JSON.stringify(tok)}`)
  }
  t.throws(() => line({ match: ['-i', 'x'], action: [], comment: '' }), /empty action/)
  t.throws(() => renderChain('KUBE-FOO', []), /must start with wren/)
  t.throws(() => renderChain('wren-' + 'x'.repeat(30), []), /at most 28/)
  t.throws(() => renderChain('wren x', []), { name: 'RenderError' })
})

t.test('rule hashes: content, not position; duplicates distinct; stable', async (t) => {
  const a: Rule = { match: ['-p', 'tcp', '--dport', '80'], action: ['-j', 'ACCEPT'], comment: 'a' }
  const b: Rule = { match: ['-p', 'tcp', '--dport', '81'], action: ['-j', 'ACCEPT'], comment: 'a' }
  const [ha, hb] = ruleHashes('c', [a, b])
  t.not(ha, hb)
  t.same(ruleHashes('c', [b, a]), [hb, ha], 'moving a rule moves its hash')
  t.same(ruleHashes('other', [a]), [ha], 'the chain name is not part of the hash')
  const dup = ruleHashes('c', [a, a, a])
  t.equal(new Set(dup).size, 3, 'identical rules get distinct hashes')
  t.equal(dup[0], ha)
  t.not(ruleHashes('c', [{ ...a, action: ['-j', 'DROP'] }])[0], ha, 'action counts')
  t.not(ruleHashes('c', [{ ...a, comment: 'b' }])[0], ha, 'comment counts')
  // token boundaries: ['-p','tcp80'] must not collide with ['-p','tcp','80']
  t.not(ruleHashes('c', [{ match: ['ab', 'c'], action: ['-j', 'X'], comment: '' }])[0], ruleHashes('c', [{ match: ['a', 'bc'], action: ['-j', 'X'], comment: '' }])[0])
})

t.test('ipset create lines', async (t) => {
  t.equal(renderSetCreate('wren4i-a', 'hash:ip', 4, 65536), 'create wren4i-a hash:ip family inet maxelem 65536')
  t.equal(renderSetCreate('wren6n-a', 'hash:net', 6, 1024), 'create wren6n-a hash:net family inet6 maxelem 1024')
  t.equal(renderSetCreate('wren4p-a', 'hash:ip,port', 4, 10), 'create wren4p-a hash:ip,port family inet maxelem 10')
  t.throws(() => renderSetCreate('kube-a', 'hash:ip', 4, 10), /must start with wren/)
  t.throws(() => renderSetCreate('wren4i-' + 'x'.repeat(30), 'hash:ip', 4, 10), /at most 31/)
  t.throws(() => renderSetCreate('wren4l-a', 'list:set' as never, 6, 100), /unsupported type/, 'list:sets are only ever destroyed (left by an earlier layout)')
  t.throws(() => renderSetCreate('wren4i-a', 'bitmap:port' as never, 4, 10), /unsupported type/)
  t.throws(() => renderSetCreate('wren4i-a', 'hash:ip', 4, 0), /maxelem/)
})

t.test('members are spelled the way ipset save prints them', async (t) => {
  const cases: [Parameters<typeof canonicalMember>[0], 4 | 6, string, string][] = [
    ['hash:ip', 4, '10.0.0.1', '10.0.0.1'],
    ['hash:ip', 4, '10.0.0.1/32', '10.0.0.1'],
    ['hash:net', 4, '10.0.0.5/24', '10.0.0.0/24'],
    ['hash:net', 4, '10.2.0.1/32', '10.2.0.1'],
    ['hash:net', 4, '10.1.0.0/28 nomatch', '10.1.0.0/28 nomatch'],
    ['hash:ip,port', 4, '10.0.0.1,tcp:80', '10.0.0.1,tcp:80'],
    ['hash:ip,port', 4, '10.0.0.1,sctp:05', '10.0.0.1,sctp:5'],
    ['hash:ip', 6, 'FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['hash:net', 6, 'fd00:1:0:0:1:0:0:0/128', 'fd00:1:0:0:1::'],
    ['hash:net', 6, '1:0:0:0:0:0:0:8/127', '1::8/127'],
    ['hash:net', 6, 'fd00:0:0:1:ffff::/64', 'fd00:0:0:1::/64'],
    ['hash:ip', 6, '::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['hash:ip', 6, '::1.2.3.4', '::1.2.3.4'],
    ['hash:ip', 6, '::1', '::1'],
    ['hash:ip', 6, '1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
    ['hash:ip', 6, '1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['hash:ip,port', 6, 'fd00::0001,udp:53', 'fd00::1,udp:53'],
  ]
  for (const [type, fam, input, want] of cases) t.equal(canonicalMember(type, fam, input, 't'), want, `${type} ${input}`)
  const bad: [Parameters<typeof canonicalMember>[0], 4 | 6, string][] = [
    ['hash:ip', 4, '10.0.0.0/24'],
    ['hash:ip', 4, '10.0.0.256'],
    ['hash:ip', 4, 'fd00::1'],
    ['hash:ip', 6, '10.0.0.1'],
    ['hash:ip', 4, '10.0.0.1 nomatch'],
    ['hash:net', 4, '0.0.0.0/0'],
    ['hash:net', 4, '10.0.0.0/33'],
    ['hash:net', 4, '10.0.0.0/24\nflush'],
    ['hash:ip,port', 4, '10.0.0.1,icmp:8'],
    ['hash:ip,port', 4, '10.0.0.1,tcp:70000'],
    ['hash:ip,port', 4, '10.0.0.1'],
    ['hash:ip', 6, '1::2::3'],
    ['hash:ip', 6, '1:2:3:4:5:6:7:8:9'],
    ['hash:ip', 4, 'wren; destroy'],
  ]
  for (const [type, fam, input] of bad) t.throws(() => canonicalMember(type, fam, input, 't'), { name: 'MemberError' }, `${type} ${JSON.stringify(input)}`)
})
