// GC (spec 1.1) releases everything of attachments the runtime no longer
// lists; STATUS reports readiness (50 once the range is full).
import t from 'tap'
import { addNetns, blackhole, Cleanup, tempDir } from './lib/host.ts'
import { leftovers, NOTHING, runWren, wrenConf, testbed } from './lib/cni-runner.ts'

t.test('GC removes stale attachments and keeps valid ones', async (t) => {
  const { cleanup, state } = testbed(t, 'wc-gc-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.8.0/24']] })
  const atts = [0, 1, 2].map((i) => ({ containerId: `gc-${i}`, ifname: 'eth0', netns: addNetns(cleanup, `wc-gc${i}`), args: { K8S_POD_NAMESPACE: 'gc', K8S_POD_NAME: `p${i}` } }))
  cleanup.push('DEL', async () => {
    for (const a of atts) await runWren('DEL', conf, a)
  })
  const hostIfaces: string[] = []
  for (const a of atts) {
    const r = await runWren('ADD', conf, a)
    t.equal(r.code, 0)
    hostIfaces.push(r.json.interfaces[0].name)
  }
  const gc = await runWren('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'gc-0', ifname: 'eth0' }] }, {})
  t.equal(gc.code, 0, `GC: ${gc.stdout}`)
  const after = leftovers(state)
  t.same(after.links, [hostIfaces[0]], 'only the valid pod keeps its veth')
  t.same(after.records, ['gc-0_eth0.json'], 'and its record')
  t.equal(after.reservations.length, 1, 'and its reservation')

  const old = await runWren('GC', { ...conf, cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }, {})
  t.equal(old.json?.code, 1, 'GC needs 1.1.0')
  t.equal(leftovers(state).links.length, 1, 'a refused GC changes nothing')
  t.equal((await runWren('GC', { ...conf, 'cni.dev/valid-attachments': [] }, {})).code, 0)
  t.same(leftovers(state), NOTHING, 'GC with no valid attachment leaves nothing')
})

t.test('STATUS', async (t) => {
  const cleanup = new Cleanup()
  t.teardown(async () => void (await cleanup.run()))
  blackhole(cleanup, '10.91.0.0/16')
  const state = tempDir(cleanup, 'wc-status-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.8.0/30']] })
  t.equal((await runWren('STATUS', conf, {})).code, 0, 'ready with free addresses')
  t.equal((await runWren('STATUS', { ...conf, cniVersion: '1.0.0' }, {})).json?.code, 1, 'STATUS needs 1.1.0')
  const atts = [0, 1].map((i) => ({ containerId: `st-${i}`, ifname: 'eth0', netns: addNetns(cleanup, `wc-st${i}`) }))
  cleanup.push('DEL', async () => {
    for (const a of atts) await runWren('DEL', conf, a)
  })
  for (const a of atts) t.equal((await runWren('ADD', conf, a)).code, 0)
  t.equal((await runWren('STATUS', conf, {})).json?.code, 50, 'not available once the range is full')
  for (const a of atts) await runWren('DEL', conf, a)
  t.same(leftovers(state), NOTHING)
})
