// Bad input gets the right CNI error code and leaves nothing behind: no
// link on the host or in the pod, no reservation, no record.
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { addNetns, inNetns, sh, tempDir } from './lib/host.ts'
import { CNI_PATH, execPlugin, testbed, leftovers, NOTHING, runWren, WREN_BIN_PATH, wrenConf, type Attachment } from './lib/cni-runner.ts'

const { cleanup } = testbed(t, 'wc-err-')
const netns = addNetns(cleanup, 'wc-err')
const podLinks = () => inNetns('wc-err', 'ip', ['-o', 'link', 'show']).stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1].trim().split('@')[0])
const att: Attachment = { containerId: 'err-1', ifname: 'eth0', netns, args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'err', K8S_POD_NAME: 'p' } }

async function expectError(t: Test, run: Promise<{ code: number; json?: any; stdout: string }>, code: number, state: string, reservationDir?: string) {
  const r = await run
  t.not(r.code, 0, 'non-zero exit')
  t.equal(r.json?.code, code, `CNI code ${code}: ${r.stdout.trim()}`)
  t.ok(r.json?.msg, 'has a message')
  t.same(leftovers(state, reservationDir), NOTHING, 'nothing left on the host or in the state dir')
  t.same(podLinks(), ['lo'], 'nothing left in the pod')
  return r.json
}

t.test('malformed JSON is a decode failure (6)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  await expectError(t, execPlugin(WREN_BIN_PATH, 'ADD', '{"cniVersion": "1.0.0", "name": ', att, CNI_PATH), 6, state)
})

t.test('unknown cniVersion is incompatible (1)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  const e = await expectError(t, runWren('ADD', wrenConf({ stateDir: state, cniVersion: '0.2.0', subnets: [['10.91.4.0/24']] }), att), 1, state)
  t.match(e.details, /1\.1\.0/, 'lists supported versions')
})

t.test('an invalid config reports every problem (7)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  const e = await expectError(t, runWren('ADD', wrenConf({ stateDir: state, subnets: [['10.91.4.0/24']], extra: { mtu: 1, ifacePrefix: 'BAD!' } }), att), 7, state)
  t.match(e.details, /mtu/)
  t.match(e.details, /ifacePrefix/)
})

t.test('missing CNI_NETNS is an invalid env (4)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  await expectError(t, runWren('ADD', wrenConf({ stateDir: state, subnets: [['10.91.4.0/24']] }), { ...att, netns: '' }), 4, state)
})

t.test('a netns that does not exist is an unknown container (3)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  await expectError(t, runWren('ADD', wrenConf({ stateDir: state, subnets: [['10.91.4.0/24']] }), { ...att, netns: '/var/run/netns/wc-none' }), 3, state)
})

t.test('an interface name too long is an invalid env (4)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  await expectError(t, runWren('ADD', wrenConf({ stateDir: state, subnets: [['10.91.4.0/24']] }), { ...att, ifname: 'eth0-far-too-long' }), 4, state)
})

t.test('an interface name already taken in the netns is an invalid env (4), delegated reservation released', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  const dataDir = join(state, 'host-local')
  sh('ip', ['-n', 'wc-err', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'])
  t.teardown(() => void sh('ip', ['-n', 'wc-err', 'link', 'del', 'eth0']))
  const conf = wrenConf({ stateDir: state, cniVersion: '1.0.0', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.91.4.0/24' }]] } })
  const r = await runWren('ADD', conf, att)
  t.equal(r.json?.code, 4, `CNI code 4: ${r.stdout.trim()}`)
  t.match(r.json?.msg, /already exists/)
  t.same(leftovers(state, dataDir), NOTHING, 'host-local reservation released, no link, no record')
  t.same(podLinks().sort(), ['eth0', 'eth0p', 'lo'], "the pod's own eth0 is untouched")
})

t.test('an exhausted range is try-again-later (11)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.4.0/30']] }) // two usable addresses
  const others = [2, 3].map((i) => ({ containerId: `err-${i}`, ifname: 'eth0', netns: addNetns(cleanup, `wc-err${i}`) }))
  for (const o of others) t.equal((await runWren('ADD', conf, o)).code, 0, 'fills the range')
  const before = leftovers(state)
  const r = await runWren('ADD', conf, att)
  t.equal(r.json?.code, 11, `CNI code 11: ${r.stdout.trim()}`)
  t.same(leftovers(state), before, 'only the two good pods remain')
  t.same(podLinks(), ['lo'])
  for (const o of others) t.equal((await runWren('DEL', conf, o)).code, 0)
  t.same(leftovers(state), NOTHING)
})

t.test('a delegated IPAM plugin that is missing is an invalid config (7)', async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  await expectError(t, runWren('ADD', wrenConf({ stateDir: state, ipam: { type: 'wtc-no-such-ipam' } }), att), 7, state)
})

t.test("a delegated IPAM plugin that fails passes its code through", async (t) => {
  const state = tempDir(cleanup, 'wc-err-')
  const dir = tempDir(cleanup, 'wc-err-path-')
  const fake = join(dir, 'wtc-failing-ipam')
  writeFileSync(
    fake,
    `#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","code":5,"msg":"disk on fire"}'; exit 1; fi\nexit 0\n`,
  )
  chmodSync(fake, 0o755)
  const r = await runWren('ADD', wrenConf({ stateDir: state, ipam: { type: 'wtc-failing-ipam' } }), att, [dir, ...CNI_PATH])
  t.equal(r.json?.code, 5, `the plugin's code: ${r.stdout.trim()}`)
  t.match(r.json?.msg, /disk on fire/)
  t.same(leftovers(state), NOTHING)
  t.same(podLinks(), ['lo'])
})
