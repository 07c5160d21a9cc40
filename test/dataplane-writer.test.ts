import t from 'tap'
import { createLogger, nullLogger } from '../shared/log.ts'
import { tempSetName } from '../shared/names.ts'
import { FakeKernel } from './lib/fake-kernel.ts'
import { Dataplane, DataplaneError } from '../enforcer/dataplane/writer.ts'
import type { Chain, DesiredState, IpSet, Rule } from '../enforcer/dataplane/types.ts'

const accept = (comment: string, match: string[] = []): Rule => ({ match, action: ['-j', 'ACCEPT'], comment })
const ips = (n: number, base = 0) => Array.from({ length: n }, (_, i) => `10.1.${Math.floor((base + i) / 250)}.${((base + i) % 250) + 1}`)

function sampleState(members = ips(50)): DesiredState {
  const peers: IpSet = { name: 'wren4i-peers', type: 'hash:ip', family: 4, members, comment: 'peers' }
  const chains: Chain[] = [
    { name: 'wren-FORWARD', table: 'filter', rules: [{ match: ['-i', 'wren+'], action: ['-j', 'wren-from-wl-dispatch'], comment: 'from workloads' }] },
    { name: 'wren-from-wl-dispatch', table: 'filter', rules: [{ match: ['-i', 'wrenaaaa'], action: ['-g', 'wren-fw-wrenaaaa'], comment: '' }, { match: [], action: ['-j', 'DROP'], comment: 'unknown' }] },
    { name: 'wren-fw-wrenaaaa', table: 'filter', rules: [accept('peers', ['-m', 'set', '--match-set', 'wren4i-peers', 'dst']), { match: [], action: ['-j', 'DROP'], comment: 'isolated' }] },
    { name: 'wren-PREROUTING', table: 'raw', rules: [{ match: ['-i', 'wren+', '-m', 'rpfilter', '--invert'], action: ['-j', 'DROP'], comment: 'anti-spoof' }] },
  ]
  const v6set: IpSet = { name: 'wren6n-blk', type: 'hash:net', family: 6, members: ['fd00::/64', 'fd00::8/125 nomatch'], comment: '' }
  return {
    v4: { family: 4, hooks: [{ table: 'filter', chain: 'FORWARD', target: 'wren-FORWARD' }, { table: 'raw', chain: 'PREROUTING', target: 'wren-PREROUTING' }], chains, sets: [peers] },
    v6: {
      family: 6,
      hooks: [{ table: 'filter', chain: 'FORWARD', target: 'wren6-FORWARD' }],
      chains: [{ name: 'wren6-FORWARD', table: 'filter', rules: [accept('block', ['-m', 'set', '--match-set', 'wren6n-blk', 'src'])] }],
      sets: [v6set],
    },
    problems: [],
    workloads: ['wrenaaaa'],
  }
}

function setup(opts: { resyncMs?: number; now?: () => number } = {}) {
  const k = new FakeKernel()
  // someone else's objects, which wren must never touch
  k.table(4, 'filter').set('KUBE-FORWARD', ['-j ACCEPT'])
  k.table(4, 'filter').get('FORWARD')!.push('-m comment --comment "kube" -j KUBE-FORWARD')
  k.sets.set('KUBE-x', { type: 'hash:ip', family: 'inet', maxelem: 10, members: new Set(['1.1.1.1']) })
  const logs: string[] = []
  const dp = new Dataplane({ exec: k.exec, log: createLogger((l) => logs.push(l), 'debug'), backend: 'nft', resyncMs: 0, ...opts })
  return { k, dp, logs }
}
const chainNames = (k: FakeKernel, fam: 4 | 6, table: string) => [...k.table(fam, table).keys()].filter((c) => c.startsWith('wren'))
const inputs = (k: FakeKernel, from = 0) => k.writes(from).map((c) => `${c.cmd}\n${c.input ?? c.args.join(' ')}`)

t.test('cold apply creates sets, then chains, then hooks; a second apply writes nothing', async (t) => {
  const { k, dp } = setup()
  const r = await dp.apply(sampleState())
  t.match(r, { read: true, setsCreated: 2, chainsWritten: 5, hooksInserted: 3, restores: 3 })
  const w = k.writes()
  t.same(w.map((c) => c.cmd).sort(), ['ip6tables-nft-restore', 'ipset', 'iptables-nft-restore'])
  t.equal(w[0].cmd, 'ipset', 'sets before any rule that uses them')
  t.same(w[1].args, ['--noflush', '--wait=10'])
  t.match(w.find((c) => c.cmd === 'iptables-nft-restore')!.input, /^\*filter\n[^]*COMMIT\n\*raw\n[^]*COMMIT\n$/, 'one restore per family, a COMMIT per table')
  t.same(chainNames(k, 4, 'filter'), ['wren-FORWARD', 'wren-from-wl-dispatch', 'wren-fw-wrenaaaa'])
  t.same(chainNames(k, 4, 'raw'), ['wren-PREROUTING'])
  t.same(chainNames(k, 6, 'filter'), ['wren6-FORWARD'])
  t.match(k.table(4, 'filter').get('FORWARD')!, [/-j wren-FORWARD$/, /KUBE-FORWARD$/], 'hook heads FORWARD, kube rule kept')
  t.equal(k.sets.get('wren4i-peers')!.members.size, 50)
  t.same([...k.sets.get('wren6n-blk')!.members], ['fd00::/64', 'fd00::8/125 nomatch'])
  t.equal(k.sets.get('wren6n-blk')!.family, 'inet6')
  t.equal(k.sets.get('wren4i-peers')!.maxelem, 1_048_576)

  const n = k.calls.length
  const again = await dp.apply(sampleState())
  t.match(again, { read: true, restores: 0, chainsWritten: 0, setsCreated: 0 })
  t.same(inputs(k, n), [], 'no-op apply writes nothing')

  const restarted = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft', resyncMs: 0 })
  const m = k.calls.length
  t.match(await restarted.apply(sampleState()), { read: true, restores: 0 })
  t.same(inputs(k, m), [], 'a new writer on an up-to-date kernel writes nothing')
  t.ok(k.sets.has('KUBE-x') && k.table(4, 'filter').has('KUBE-FORWARD'))
})

t.test('a changed chain is the only chain rewritten; a new chain is declared and filled', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const s = sampleState()
  s.v4.chains[2].rules.unshift(accept('dns', ['-p', 'udp', '--dport', '53']))
  s.v4.chains.push({ name: 'wren-po-1', table: 'filter', rules: [accept('x')] })
  s.v4.chains[1].rules.splice(1, 0, { match: ['-i', 'wrenbbbb'], action: ['-g', 'wren-po-1'], comment: '' })
  const n = k.calls.length
  const r = await dp.apply(s)
  t.match(r, { chainsWritten: 3, chainsDeleted: 0, hooksInserted: 0, setsUpdated: 0, restores: 1 })
  const [input] = k.writes(n).map((c) => c.input!)
  t.match(input, /^\*filter\n:wren-from-wl-dispatch - \[0:0\]\n:wren-fw-wrenaaaa - \[0:0\]\n:wren-po-1 - \[0:0\]\n-F wren-from-wl-dispatch\n/)
  t.notMatch(input, /wren-FORWARD/, 'the unchanged chain is not touched')
  t.match(k.table(4, 'filter').get('wren-fw-wrenaaaa')![0], /--dport 53/)
})

t.test('a stale chain is removed after the chain that jumped to it is rewritten', async (t) => {
  const { k, dp } = setup()
  const s = sampleState()
  s.v4.chains.push({ name: 'wren-po-old', table: 'filter', rules: [accept('old')] })
  s.v4.chains[1].rules.unshift({ match: ['-i', 'wrenold'], action: ['-g', 'wren-po-old'], comment: '' })
  await dp.apply(s)
  const n = k.calls.length
  const r = await dp.apply(sampleState())
  t.match(r, { chainsWritten: 1, chainsDeleted: 1, restores: 2 })
  const w = k.writes(n)
  t.match(w[0].input, /:wren-from-wl-dispatch/)
  t.equal(w[1].input, '*filter\n:wren-po-old - [0:0]\n-X wren-po-old\nCOMMIT\n')
  t.notOk(k.table(4, 'filter').has('wren-po-old'))
})

t.test('hooks: missing is inserted, duplicate removed, displaced moved back to the top', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const fwd = k.table(4, 'filter').get('FORWARD')!
  const hook = fwd[0]

  fwd.splice(0, 1)
  t.match(await dp.apply(sampleState()), { hooksInserted: 1, hooksRemoved: 0, chainsWritten: 0 })
  t.same(k.table(4, 'filter').get('FORWARD'), [hook, '-m comment --comment "kube" -j KUBE-FORWARD'])

  k.table(4, 'filter').get('FORWARD')!.push(hook)
  t.match(await dp.apply(sampleState()), { hooksInserted: 1, hooksRemoved: 2 })
  t.same(k.table(4, 'filter').get('FORWARD'), [hook, '-m comment --comment "kube" -j KUBE-FORWARD'])

  k.table(4, 'filter').get('FORWARD')!.unshift('-j ACCEPT')
  const n = k.calls.length
  t.match(await dp.apply(sampleState()), { hooksInserted: 1, hooksRemoved: 1, restores: 1 })
  t.same(k.table(4, 'filter').get('FORWARD'), [hook, '-j ACCEPT', '-m comment --comment "kube" -j KUBE-FORWARD'])
  t.match(k.writes(n)[0].input, /^\*filter\n-D FORWARD .*-j wren-FORWARD\n-I FORWARD 1 .*-j wren-FORWARD\nCOMMIT\n$/)

  const s = sampleState()
  s.v4.hooks = s.v4.hooks.filter((h) => h.table !== 'filter')
  s.v4.chains = s.v4.chains.filter((c) => c.table !== 'filter')
  t.match(await dp.apply(s), { hooksRemoved: 1, chainsDeleted: 3 })
  t.same(k.table(4, 'filter').get('FORWARD'), ['-j ACCEPT', '-m comment --comment "kube" -j KUBE-FORWARD'])
})

t.test('a few member changes are del/add on the live set, with no table write', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const members = ips(50)
  members[3] = '10.9.9.9'
  members.push('10.9.9.10')
  const n = k.calls.length
  t.match(await dp.apply(sampleState(members)), { setsUpdated: 1, setsSwapped: 0, membersAdded: 2, membersRemoved: 1, chainsWritten: 0, restores: 1 })
  t.same(inputs(k, n), ['ipset\ndel wren4i-peers 10.1.0.4\nadd wren4i-peers 10.9.9.9\nadd wren4i-peers 10.9.9.10\n'])
  t.equal(k.sets.get('wren4i-peers')!.members.size, 51)
})

t.test('a large member change fills a temporary set and swaps it in', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const tmp = tempSetName('wren4i-peers')
  k.sets.set(tmp, { type: 'hash:ip', family: 'inet', maxelem: 1_048_576, members: new Set(['1.2.3.4']) }) // left by a crash
  const next = ips(50, 30)
  const n = k.calls.length
  t.match(await dp.apply(sampleState(next)), { setsSwapped: 1, setsUpdated: 0, setsDestroyed: 0, chainsWritten: 0, restores: 1 })
  const [input] = k.writes(n).map((c) => c.input!)
  const lines = input.trim().split('\n')
  t.same(lines.slice(0, 2), [`destroy ${tmp}`, `create ${tmp} hash:ip family inet maxelem 1048576`])
  t.same(lines.slice(-2), [`swap ${tmp} wren4i-peers`, `destroy ${tmp}`])
  t.equal(lines.length, 2 + 50 + 2)
  t.same([...k.sets.get('wren4i-peers')!.members].sort(), [...next].sort())
  t.notOk(k.sets.has(tmp))
})

t.test('a set whose maxelem changed is rebuilt by swap; a type change is refused', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const big = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft', setMaxElem: 131072, resyncMs: 0 })
  t.match(await big.apply(sampleState()), { setsSwapped: 2, restores: 1 })
  t.equal(k.sets.get('wren4i-peers')!.maxelem, 131072)
  k.sets.get('wren4i-peers')!.type = 'hash:net'
  await t.rejects(big.apply(sampleState()), /exists as hash:net IPv4, desired hash:ip IPv4/)
})

t.test('a stale set is destroyed only after the rules using it are gone', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const s = sampleState()
  s.v4.sets = []
  s.v4.chains[2].rules.shift()
  const n = k.calls.length
  t.match(await dp.apply(s), { setsDestroyed: 1, chainsWritten: 1, restores: 2 })
  const w = k.writes(n)
  t.same(w.map((c) => c.cmd), ['iptables-nft-restore', 'ipset'])
  t.equal(w[1].input, 'destroy wren4i-peers\n')
  t.notOk(k.sets.has('wren4i-peers'))
  t.ok(k.sets.has('KUBE-x'))
})

t.test('drift repair: read when the last read is resyncMs old, from the cache before', async (t) => {
  let clock = 0
  const { k, dp } = setup({ resyncMs: 1000, now: () => clock })
  await dp.apply(sampleState())
  k.sets.get('wren4i-peers')!.members.delete('10.1.0.1')
  k.table(4, 'filter').get('FORWARD')!.shift()
  const saves = () => k.calls.filter((c) => c.cmd.endsWith('-save') || c.args[0] === 'save').length
  const before = saves()
  clock = 999
  t.match(await dp.apply(sampleState()), { read: false, restores: 0 }, 'cache trusted within resyncMs')
  t.equal(saves(), before, 'nothing read')
  clock = 1000
  t.match(await dp.apply(sampleState()), { read: true, setsUpdated: 1, membersAdded: 1, hooksInserted: 1 })
  t.ok(k.sets.get('wren4i-peers')!.members.has('10.1.0.1'))
  t.match(k.table(4, 'filter').get('FORWARD')![0], /-j wren-FORWARD$/)

  const s = sampleState(ips(51))
  t.match(await dp.apply(s), { read: false, setsUpdated: 1, membersAdded: 1, restores: 1 }, 'a change diffed against the cache')
})

t.test('prefetch: the kernel read ahead of time is the first apply\'s cache', async (t) => {
  const { k, dp } = setup({ resyncMs: 60_000 })
  await dp.apply(sampleState())
  const restarted = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft', resyncMs: 60_000 })
  await restarted.prefetch()
  const reads = k.calls.length
  k.table(4, 'filter').get('wren-fw-wrenaaaa')!.pop() // drift after the read is not seen until the next read
  const s = sampleState()
  s.v4.sets[0].members = ips(51)
  t.match(await restarted.apply(s), { read: false, setsUpdated: 1, membersAdded: 1, chainsWritten: 0 }, 'diffed against the prefetched read')
  t.notOk(k.calls.slice(reads).some((c) => c.cmd.endsWith('-save') || c.args[0] === 'save'), 'no save after the prefetch')
  restarted.invalidate()
  t.match(await restarted.apply(s), { read: true, chainsWritten: 1 }, 'the next read repairs the drift')
})

t.test('refresh: a read beside the applies is kept only if none ran meanwhile', async (t) => {
  const { k, dp } = setup({ resyncMs: 60_000 })
  await dp.apply(sampleState())
  k.table(4, 'filter').get('wren-fw-wrenaaaa')!.pop() // someone deletes a rule
  const overlapped = dp.refresh()
  const applying = dp.apply(sampleState())
  t.equal(await overlapped, false, 'an apply ran during the read: not kept')
  t.match(await applying, { read: false, chainsWritten: 0 }, 'that apply used the cache (the drift is not seen yet)')
  t.equal(await dp.refresh(), true, 'a read with nothing beside it is kept')
  t.match(await dp.apply(sampleState()), { read: false, chainsWritten: 1 }, 'the next apply diffs against it and repairs the drift')
  t.equal(k.table(4, 'filter').get('wren-fw-wrenaaaa')!.length, 2)
  const fresh = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft' })
  t.equal(await fresh.refresh(), false, 'nothing to refresh before the first apply (no backend yet)')
})

t.test('a v6 write failing while v4 succeeds: the apply fails after both finished', async (t) => {
  const { k, dp } = setup()
  k.failures.push({ match: /^ip6tables-nft-restore/, stderr: 'ip6tables-restore: line 2 failed' })
  const err = await dp.apply(sampleState()).then(() => undefined, (e) => e)
  t.type(err, DataplaneError)
  t.equal(err.phase, 'v6 filter')
  t.same(chainNames(k, 4, 'raw'), ['wren-PREROUTING'], 'v4 landed')
  t.same(chainNames(k, 6, 'filter'), [], 'v6 did not')
  t.match(await dp.apply(sampleState()), { read: true, chainsWritten: 1, restores: 1 }, 'the retry writes only v6')
  t.same(chainNames(k, 6, 'filter'), ['wren6-FORWARD'])
})

t.test('a failed write names its input, drops the cache, and the retry completes', async (t) => {
  const { k, dp, logs } = setup({ resyncMs: 60_000 })
  await dp.apply(sampleState())
  const s = sampleState()
  s.v4.chains[2].rules.unshift(accept('new'))
  k.failures.push({ match: /^iptables-nft-restore/, stderr: 'iptables-restore: line 3 failed' })
  const err = await dp.apply(s).then(
    () => undefined,
    (e) => e,
  )
  t.type(err, DataplaneError)
  t.equal(err.phase, 'v4 filter')
  t.match(err.input, /:wren-fw-wrenaaaa - \[0:0\]/)
  t.match(logs.find((l) => l.includes('dataplane write failed')), /"stderr":"iptables-restore: line 3 failed"/)
  t.match(await dp.apply(s), { read: true, chainsWritten: 1 }, 'retry re-reads the kernel')
  t.match(k.table(4, 'filter').get('wren-fw-wrenaaaa')![0], /comment "wren:[0-9a-f]{16}; new"/)
})

t.test('compiler bugs are refused before anything is written', async (t) => {
  const { k, dp } = setup()
  const cases: [string, (s: DesiredState) => void, RegExp][] = [
    ['missing set', (s) => (s.v4.sets = []), /matches set wren4i-peers, which is not in the desired state/],
    ['missing chain', (s) => s.v4.chains.splice(2, 1), /jumps to wren-fw-wrenaaaa/],
    ['hook to missing chain', (s) => (s.v4.hooks[0].target = 'wren-nope'), /jumps to wren-nope/],
    ['v6 set in v4 rule', (s) => s.v4.chains[2].rules.push(accept('x', ['-m', 'set', '--match-set', 'wren6n-blk', 'src'])), /IPv4 rule matches IPv6 set/],
    ['unsafe token', (s) => (s.v4.chains[0].rules[0].match = ['-i', 'wren+ -j ACCEPT']), /unsafe token/],
    ['bad member', (s) => s.v4.sets[0].members.push('10.0.0.1\ndestroy KUBE-x'), /is not an IPv4 address/],
    ['foreign chain name', (s) => (s.v4.chains[0].name = 'KUBE-FORWARD'), /does not start with wren/],
    ['duplicate chain', (s) => s.v4.chains.push(s.v4.chains[0]), /defined twice/],
  ]
  for (const [name, mutate, want] of cases) {
    const s = sampleState()
    mutate(s)
    await t.rejects(dp.apply(s), want, name)
  }
  t.same(k.writes(), [], 'no write reached the kernel')
  const tiny = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft', setMaxElem: 10 })
  await t.rejects(tiny.apply(sampleState()), /50 members, more than maxelem 10/)
})

t.test('cleanup removes every wren object in both families and nothing else; status counts them', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  t.match(await dp.status(), { backend: 'nft', v4: { chains: 4, rules: 6, hooks: 2 }, v6: { chains: 1, rules: 1, hooks: 1 }, sets: 2, members: 52 })
  k.sets.set(tempSetName('wren4i-x'), { type: 'hash:ip', family: 'inet', maxelem: 1, members: new Set() })
  await dp.cleanup()
  for (const [key, chains] of k.tables) {
    t.same([...chains.keys()].filter((c) => c.startsWith('wren')), [], `${key}: no wren chain`)
    for (const [c, rules] of chains) t.notOk(rules.some((r) => r.includes('wren')), `${key} ${c}: no wren rule`)
  }
  t.same([...k.sets.keys()], ['KUBE-x'])
  t.same(k.table(4, 'filter').get('KUBE-FORWARD'), ['-j ACCEPT'])
  t.same(k.table(4, 'filter').get('FORWARD'), ['-m comment --comment "kube" -j KUBE-FORWARD'])
  t.match(await dp.status(), { v4: { chains: 0, rules: 0, hooks: 0 }, v6: { chains: 0, hooks: 0 }, sets: 0 })
})

t.test('an owner prefix narrower than wren leaves other wren objects alone', async (t) => {
  const { k, dp } = setup()
  await dp.apply(sampleState())
  const mine = new Dataplane({ exec: k.exec, log: nullLogger, backend: 'nft', owner: 'wrent' })
  const s: DesiredState = {
    v4: { family: 4, hooks: [{ table: 'filter', chain: 'FORWARD', target: 'wrent-F' }], chains: [{ name: 'wrent-F', table: 'filter', rules: [accept('t')] }], sets: [] },
    v6: { family: 6, hooks: [], chains: [], sets: [] },
    problems: [],
    workloads: [],
  }
  t.match(await mine.apply(s), { chainsWritten: 1, hooksInserted: 1, chainsDeleted: 0, setsDestroyed: 0, hooksRemoved: 0 })
  await mine.cleanup()
  t.same(chainNames(k, 4, 'filter'), ['wren-FORWARD', 'wren-from-wl-dispatch', 'wren-fw-wrenaaaa'])
  t.equal(k.sets.size, 3)
  t.throws(() => new Dataplane({ exec: k.exec, log: nullLogger, owner: 'kube' }), /must start with wren/)
})

t.test('applies run one at a time', async (t) => {
  const { k, dp } = setup()
  const a = sampleState(ips(50))
  const b = sampleState(ips(50, 100))
  const [ra, rb] = await Promise.all([dp.apply(a), dp.apply(b)])
  t.match(ra, { setsCreated: 2 })
  t.match(rb, { setsSwapped: 1 })
  t.same([...k.sets.get('wren4i-peers')!.members].sort(), ips(50, 100).sort())
})
