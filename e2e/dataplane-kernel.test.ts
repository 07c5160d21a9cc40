// The writer against the real kernel: apply, read back, real TCP between two
// network namespaces routed through the host, set and chain updates, drift
// repair, restart, cleanup.
//
// Everything here lives under the owner prefix `wrendp` (chains, sets) so that
// other wren tests running on this machine at the same time are neither seen as
// stale nor removed by this test's cleanup; host veths are `wdp*`, outside
// `wren+`, so a concurrently running agent's fail-closed dispatch never sees
// this test's packets.
import t from 'tap'
import { spawn } from 'node:child_process'
import { Cleanup, addNetns, blackhole, exclusiveKernel, sh, trySh } from './lib/host.ts'
import { exec, type Exec } from '../shared/exec.ts'
import { nullLogger } from '../shared/log.ts'
import { Dataplane } from '../enforcer/dataplane/writer.ts'
import type { DesiredState, Rule } from '../enforcer/dataplane/types.ts'

const OWNER = 'wrendp'
const A = { ns: 'wd-a', host: 'wdpa', hostIp: '10.96.7.1', ip: '10.96.7.2' }
const B = { ns: 'wd-b', host: 'wdpb', hostIp: '10.96.7.5', ip: '10.96.7.6' }

function state(opts: { peers: string[]; drop81: boolean }): DesiredState {
  const rule = (match: string[], action: string[], comment: string): Rule => ({ match, action, comment })
  const pol = [
    rule(['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED'], ['-j', 'ACCEPT'], 'established'),
    ...(opts.drop81 ? [rule(['-p', 'tcp', '--dport', '81'], ['-j', 'DROP'], 'no 81')] : []),
    rule(['-p', 'tcp', '--dport', '82', '-m', 'set', '--match-set', 'wrendp4-peers', 'src'], ['-j', 'ACCEPT'], 'peers may use 82'),
    rule(['-p', 'tcp', '--dport', '82'], ['-j', 'DROP'], 'others may not'),
  ]
  return {
    v4: {
      family: 4,
      hooks: [{ table: 'filter', chain: 'FORWARD', target: 'wrendp-FWD' }],
      chains: [
        { name: 'wrendp-FWD', table: 'filter', rules: [rule(['-i', A.host, '-o', B.host], ['-j', 'wrendp-pol'], 'a to b')] },
        { name: 'wrendp-pol', table: 'filter', rules: pol },
      ],
      sets: [{ name: 'wrendp4-peers', type: 'hash:ip', family: 4, members: opts.peers, comment: 'peers' }],
    },
    v6: {
      family: 6,
      hooks: [{ table: 'filter', chain: 'FORWARD', target: 'wrendp-FWD6' }],
      chains: [{ name: 'wrendp-FWD6', table: 'filter', rules: [rule(['-m', 'set', '--match-set', 'wrendp6-blk', 'src'], ['-j', 'DROP'], 'blocked')] }],
      // spelled unlike ipset prints them: a second apply must still find nothing to do
      sets: [{ name: 'wrendp6-blk', type: 'hash:net', family: 6, members: ['FD00:0:0:0:0:0:0:1', 'fd00:1::5/64', 'fd00:1::8/126 nomatch'], comment: '' }],
    },
    problems: [],
    workloads: [],
  }
}

/** 0: connected, 1: refused, 124: timed out (dropped). */
function connect(port: number): number {
  return trySh('ip', ['netns', 'exec', A.ns, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${B.ip}/${port}`]).code
}

function wrenLeft(): string[] {
  const found: string[] = []
  for (const save of ['iptables-save', 'ip6tables-save', 'iptables-legacy-save', 'ip6tables-legacy-save'])
    for (const l of trySh(save, []).stdout.split('\n')) if (l.includes(OWNER)) found.push(`${save}: ${l}`)
  for (const l of sh('ipset', ['list', '-n']).split('\n')) if (l.startsWith(OWNER)) found.push(`ipset: ${l}`)
  return found
}

function wirePod(cleanup: Cleanup, p: typeof A): void {
  addNetns(cleanup, p.ns)
  trySh('ip', ['link', 'del', p.host])
  sh('ip', ['link', 'add', p.host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns])
  cleanup.push(`link ${p.host}`, () => void trySh('ip', ['link', 'del', p.host]))
  sh('ip', ['addr', 'add', `${p.hostIp}/30`, 'dev', p.host])
  sh('ip', ['link', 'set', p.host, 'up'])
  sh('sysctl', ['-qw', `net.ipv4.conf.${p.host}.forwarding=1`])
  sh('ip', ['-n', p.ns, 'addr', 'add', `${p.ip}/30`, 'dev', 'eth0'])
  sh('ip', ['-n', p.ns, 'link', 'set', 'eth0', 'up'])
  sh('ip', ['-n', p.ns, 'route', 'add', 'default', 'via', p.hostIp])
}

t.test('real kernel: apply, traffic, updates, drift, restart, cleanup', async (t) => {
  const cleanup = new Cleanup()
  const calls: string[] = []
  const recording: Exec = (cmd, args, opts) => {
    calls.push(`${cmd} ${args.join(' ')}`)
    return exec(cmd, args, opts)
  }
  const writes = () => calls.filter((c) => c.includes('restore'))
  // resyncMs 0: read the kernel on every apply, so the drift step below is seen at once
  const dp = new Dataplane({ exec: recording, log: nullLogger, owner: OWNER, resyncMs: 0 })
  t.teardown(async () => {
    const errors = await cleanup.run()
    if (errors.length) console.error('teardown:', errors)
  })
  // an agent on this machine would treat our `wrendp` objects as its own stale ones
  await exclusiveKernel(cleanup)
  cleanup.push('dataplane cleanup', async () => {
    await dp.cleanup()
    const left = wrenLeft()
    if (left.length) throw new Error(`left behind: ${left.join(', ')}`)
  })
  await dp.cleanup() // a killed earlier run
  blackhole(cleanup, '10.96.0.0/16')
  wirePod(cleanup, A)
  wirePod(cleanup, B)
  const server = spawn('ip', ['netns', 'exec', B.ns, process.execPath, '-e',
    "for (const p of [80, 81, 82]) require('net').createServer((s) => s.end()).listen(p, '" + B.ip + "'); console.log('up')"])
  cleanup.push('server', () => void server.kill())
  await new Promise((res) => server.stdout.once('data', res))

  const first = await dp.apply(state({ peers: [A.ip], drop81: true }))
  t.match(first, { setsCreated: 2, chainsWritten: 3, hooksInserted: 2, restores: 3 })
  t.match(await dp.status(), { backend: 'nft' }, "the host's own iptables is nft, which the checks below read")
  t.match(await dp.status(), { v4: { chains: 2, rules: 5, hooks: 1 }, v6: { chains: 1, rules: 1, hooks: 1 }, sets: 2, members: 4 })
  t.match(sh('iptables-save', ['-t', 'filter']), /-A FORWARD -m comment --comment "wren:[0-9a-f]{16}; wren hook from FORWARD" -j wrendp-FWD/)
  t.match(sh('ipset', ['save', 'wrendp6-blk']), /add wrendp6-blk fd00:1::\/64\n/)
  t.equal(connect(80), 0, 'port 80 allowed')
  t.equal(connect(81), 124, 'port 81 dropped')
  t.equal(connect(82), 0, 'port 82 allowed: a is a peer')

  calls.length = 0
  t.match(await dp.apply(state({ peers: [A.ip], drop81: true })), { read: true, restores: 0 }, 'no-op')
  t.same(writes(), [], 'a no-op apply writes nothing, even with members spelled differently')

  const restarted = new Dataplane({ exec: recording, log: nullLogger, owner: OWNER })
  t.match(await restarted.apply(state({ peers: [A.ip], drop81: true })), { restores: 0 })
  t.same(writes(), [], 'a restarted writer on the same state writes nothing')

  const handles = sh('nft', ['-a', 'list', 'chain', 'ip', 'filter', 'wrendp-pol']).replace(/counter packets \d+ bytes \d+/g, '')
  calls.length = 0
  t.match(await dp.apply(state({ peers: ['10.96.7.9', '10.96.7.10'], drop81: true })), { setsUpdated: 0, setsSwapped: 1, chainsWritten: 0 })
  t.same(writes(), ['ipset restore'], 'a member change is an ipset edit only')
  t.equal(sh('nft', ['-a', 'list', 'chain', 'ip', 'filter', 'wrendp-pol']).replace(/counter packets \d+ bytes \d+/g, ''), handles, 'chain rules kept their handles')
  t.equal(connect(82), 124, 'port 82 dropped once a left the peer set')
  t.equal(connect(80), 0)

  calls.length = 0
  t.match(await dp.apply(state({ peers: ['10.96.7.9', '10.96.7.10', A.ip], drop81: true })), { setsUpdated: 1, membersAdded: 1 })
  t.equal(connect(82), 0, 'port 82 allowed again after a single add')

  calls.length = 0
  t.match(await dp.apply(state({ peers: [A.ip], drop81: false })), { chainsWritten: 1, chainsDeleted: 0 })
  t.equal(writes().filter((c) => c.startsWith('iptables')).length, 1)
  t.equal(connect(81), 0, 'port 81 allowed after the chain change')

  const forward = sh('iptables', ['-S', 'FORWARD']).split('\n').filter((l) => l.startsWith('-A '))
  sh('iptables', ['-D', 'FORWARD', String(forward.findIndex((l) => l.endsWith('-j wrendp-FWD')) + 1)])
  sh('ipset', ['del', 'wrendp4-peers', A.ip])
  t.match(await dp.apply(state({ peers: [A.ip], drop81: true })), { read: true, hooksInserted: 1, membersAdded: 1, chainsWritten: 1 }, 'drift repaired')
  t.equal(connect(81), 124)
  t.equal(connect(82), 0)

  // the agent's writer trusts its cache and reads the kernel beside its applies (refresh)
  const agentLike = new Dataplane({ exec, log: nullLogger, owner: OWNER, resyncMs: Infinity })
  const same = state({ peers: [A.ip], drop81: true })
  t.match(await agentLike.apply(same), { read: true, restores: 0 }, 'a second writer finds everything in place')
  sh('ipset', ['del', 'wrendp4-peers', A.ip])
  t.match(await agentLike.apply(same), { read: false, membersAdded: 0 }, 'from the cache the deletion is not seen')
  t.equal(connect(82), 124, 'A is cut off by the deletion')
  t.equal(await agentLike.refresh(), true, 'a read with no apply beside it is kept')
  t.match(await agentLike.apply(same), { read: false, membersAdded: 1 }, 'the next apply repairs the drift the read found')
  t.equal(connect(82), 0, 'A gets through again')

  const noV6 = state({ peers: [A.ip], drop81: true })
  noV6.v6 = { family: 6, hooks: [], chains: [], sets: [] }
  t.match(await dp.apply(noV6), { hooksRemoved: 1, chainsDeleted: 1, setsDestroyed: 1, restores: 3 }, 'hook, chain, then set removed')
  t.notMatch(sh('ip6tables-save', []), /wrendp/)

  await dp.cleanup()
  t.same(wrenLeft(), [], `nothing under ${OWNER} remains`)
  t.match(await dp.status(), { v4: { chains: 0, hooks: 0 }, v6: { chains: 0, hooks: 0 }, sets: 0 })
  t.equal(connect(81), 0, 'no filtering after cleanup')
})
