// 32 ADDs at once: all succeed with distinct addresses and one record each;
// 32 DELs at once leave nothing.
import t from 'tap'
import { addNetns } from './lib/host.ts'
import { leftovers, NOTHING, resultIps, runWren, wrenConf, testbed } from './lib/cni-runner.ts'

const N = 32

t.test(`${N} parallel ADDs and DELs`, async (t) => {
  const { cleanup, state } = testbed(t, 'wc-par-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.3.0/24'], ['fd00:91::3:0/112']] })
  const atts = Array.from({ length: N }, (_, i) => ({
    containerId: `par-${i}`,
    ifname: 'eth0',
    netns: addNetns(cleanup, `wc-par${i}`),
    args: { K8S_POD_NAMESPACE: 'par', K8S_POD_NAME: `pod-${i}` },
  }))
  cleanup.push('DEL all', async () => {
    await Promise.all(atts.map((a) => runWren('DEL', conf, a)))
  })

  const adds = await Promise.all(atts.map((a) => runWren('ADD', conf, a)))
  const failed = adds.filter((r) => r.code !== 0)
  t.equal(failed.length, 0, `every ADD succeeds ${failed.map((r) => r.stdout).join(' ')}`)
  const ips = adds.flatMap((r) => resultIps(r.json))
  t.equal(ips.length, 2 * N, 'two addresses each')
  t.equal(new Set(ips).size, 2 * N, 'all distinct')
  const during = leftovers(state)
  t.equal(during.records.length, N, `${N} records`)
  t.equal(during.links.length, N, `${N} host veths`)
  t.equal(during.reservations.length, 2 * N, `${2 * N} reservations`)
  t.equal(during.routes.filter((r) => !r.startsWith('fe80::')).length, 2 * N, `${2 * N} host routes to pods`)
  t.comment(`ADD ms: max ${Math.max(...adds.map((r) => r.ms)).toFixed(0)}`)

  const dels = await Promise.all(atts.map((a) => runWren('DEL', conf, a)))
  t.equal(dels.filter((r) => r.code !== 0).length, 0, 'every DEL succeeds')
  t.same(leftovers(state), NOTHING, 'nothing left')
})
