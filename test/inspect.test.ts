// `wren-enforcer show`: finds the workload, follows its chains into the policy
// chains they jump to, and lists the sets those match, from kernel save text.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chainsOf, rulesByChain, show } from '../enforcer/inspect.ts'
import { writeRecord } from '../shared/record.ts'
import { nullLogger } from '../shared/log.ts'
import type { Exec } from '../shared/exec.ts'

const SAVE = `*filter
:wren-to-wl-dispatch - [0:0]
[3:180] -A wren-to-wl-dispatch -o wren0000000000a -g wren-tw-wren0000000000a
[0:0] -A wren-to-wl-dispatch -o wren0000000000b -g wren-tw-wren0000000000b
[1:60] -A wren-to-wl-dispatch -j DROP
[2:120] -A wren-tw-wren0000000000a -j wren-pi-abc
[0:0] -A wren-tw-wren0000000000a -m comment --comment "no policy allowed ingress" -j DROP
[2:120] -A wren-pi-abc -m set --match-set wren4i-peers src -j MARK --set-xmark 0x10000/0x10000
[0:0] -A wren-pi-other -j DROP
[0:0] -A wren-tw-wren0000000000b -j wren-pi-other
COMMIT
`

t.test('rulesByChain keeps counters and order; chainsOf follows jumps of one interface only', async (t) => {
  const rules = rulesByChain(SAVE)
  t.same(rules.get('wren-tw-wren0000000000a'), ['[2:120] -j wren-pi-abc', '[0:0] -m comment --comment "no policy allowed ingress" -j DROP'])
  t.same(chainsOf('wren0000000000a', rules), ['wren-tw-wren0000000000a', 'wren-pi-abc'], 'the other workload’s policy chain is not shown')
})

t.test('show prints dispatch, chains and set members for a pod', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wren-inspect-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeRecord(dir, { containerId: 'c1', ifname: 'eth0', network: 'wren', namespace: 'demo', pod: 'web', netns: '/x', hostIface: 'wren0000000000a', ips: ['10.97.0.2'], mac: '', created: '' })
  const calls: string[] = []
  const exec: Exec = async (cmd, args) => {
    calls.push([cmd, ...args].join(' '))
    if (cmd.endsWith('-save')) return { code: 0, stdout: cmd.startsWith('iptables') ? SAVE : '', stderr: '' }
    if (cmd === 'ipset') return { code: 0, stdout: 'Name: wren4i-peers\nHeader: family inet hashsize 1024 maxelem 65536 comment\nMembers:\n10.97.0.3 comment "demo/client"\n', stderr: '' }
    return { code: 1, stdout: '', stderr: 'unexpected' }
  }
  const text = await show({ target: 'demo/web', stateDir: dir, exec, log: nullLogger, backend: 'nft' })
  t.match(text, /workload demo\/web {2}iface wren0000000000a/)
  t.match(text, /wren-to-wl-dispatch: \[3:180\] -o wren0000000000a/)
  t.match(text, /\[2:120\] -m set --match-set wren4i-peers src/)
  t.match(text, /set wren4i-peers: 1 members\n {2}10\.97\.0\.3/)
  t.notMatch(text, /wren-pi-other/)
  t.rejects(show({ target: 'demo/none', stateDir: dir, exec, log: nullLogger, backend: 'nft' }), /no workload demo\/none/)
})
