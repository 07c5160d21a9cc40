// Pods wired by ./bin/wren reach each other over TCP and UDP; a third pod
// joins and is reached; DEL removes every trace.
import t from 'tap'
import { addNetns } from './lib/host.ts'
import { echo, echoServer, leftovers, NOTHING, resultIps, runWren, wrenConf, testbed } from './lib/cni-runner.ts'

t.test('pods reach each other over TCP and UDP; DEL leaves nothing', async (t) => {
  const { cleanup, state } = testbed(t, 'wc-pods-')
  const conf = wrenConf({ stateDir: state, subnets: [['10.91.1.0/24']] })
  const pods = ['wc-pa', 'wc-pb', 'wc-pc'].map((ns, i) => ({
    ns,
    att: { containerId: `pods-${i}`, ifname: 'eth0', netns: addNetns(cleanup, ns), args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: `pod-${i}` } },
  }))
  cleanup.push('DEL pods', async () => {
    for (const p of pods) await runWren('DEL', conf, p.att)
  })

  const ips: string[] = []
  for (const p of pods.slice(0, 2)) {
    const r = await runWren('ADD', conf, p.att)
    t.equal(r.code, 0, `ADD ${p.ns}: ${r.stdout}`)
    ips.push(resultIps(r.json)[0])
  }
  t.not(ips[0], ips[1], 'distinct addresses')
  for (const p of pods) {
    echoServer(cleanup, p.ns, 'tcp', 7000)
    echoServer(cleanup, p.ns, 'udp', 7001)
  }
  for (const [i, p] of pods.slice(0, 2).entries()) {
    const peer = ips[1 - i]
    t.equal(await echo(p.ns, 'tcp', peer, 7000, `tcp from ${p.ns}`), `tcp from ${p.ns}`, `${p.ns} -> ${peer} TCP`)
    t.equal(await echo(p.ns, 'udp', peer, 7001, `udp from ${p.ns}`), `udp from ${p.ns}`, `${p.ns} -> ${peer} UDP`)
  }

  const third = await runWren('ADD', conf, pods[2].att)
  t.equal(third.code, 0, `ADD third: ${third.stdout}`)
  const ip3 = resultIps(third.json)[0]
  t.notOk(ips.includes(ip3), 'third pod gets a new address')
  t.equal(await echo('wc-pa', 'tcp', ip3, 7000, 'hi third'), 'hi third', 'first pod reaches the third over TCP')
  t.equal(await echo('wc-pb', 'udp', ip3, 7001, 'hi third'), 'hi third', 'second pod reaches the third over UDP')
  t.equal(await echo('wc-pc', 'tcp', ips[0], 7000, 'back'), 'back', 'third pod reaches the first')

  const during = leftovers(state)
  t.equal(during.links.length, 3, 'three host veths')
  t.equal(during.records.length, 3, 'three records')
  t.equal(during.reservations.length, 3, 'three reservations')

  for (const p of pods) {
    const r = await runWren('DEL', conf, p.att)
    t.equal(r.code, 0, `DEL ${p.ns}`)
    t.equal(r.stdout, '', 'DEL prints nothing')
  }
  t.same(leftovers(state), NOTHING, 'no link, route, record or reservation is left')
  t.not(await echo('wc-pa', 'tcp', ips[1], 7000, 'gone', 1), 'gone', 'an unwired pod is unreachable')
})
