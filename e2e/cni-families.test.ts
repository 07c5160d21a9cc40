// IPv4-only, IPv6-only and dual-stack networks, each under a different spec
// version: addresses, routes and traffic of every family the config names.
import t from 'tap'
import { addNetns, inNetns } from './lib/host.ts'
import { echo, echoServer, leftovers, NOTHING, resultIps, runWren, wrenConf, testbed } from './lib/cni-runner.ts'

const cases = [
  { name: 'ipv4-only', cniVersion: '0.3.1', subnets: [['10.91.6.0/24']], fams: [4] },
  { name: 'ipv6-only', cniVersion: '0.4.0', subnets: [['fd00:91::6:0/112']], fams: [6] },
  { name: 'dual-stack', cniVersion: '1.0.0', subnets: [['10.91.7.0/24'], ['fd00:91::7:0/112']], fams: [4, 6] },
] as const

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { cleanup, state } = testbed(t, 'wc-fam-')
    const conf = wrenConf({ stateDir: state, cniVersion: c.cniVersion, subnets: c.subnets.map((s) => [...s]), extra: { mtu: 1400 } })
    const nss = ['wc-fa', 'wc-fb']
    const atts = nss.map((ns, i) => ({ containerId: `fam-${c.name}-${i}`, ifname: 'eth0', netns: addNetns(cleanup, ns) }))
    cleanup.push('DEL', async () => {
      for (const a of atts) await runWren('DEL', conf, a)
    })
    const results: any[] = []
    for (const a of atts) {
      const r = await runWren('ADD', conf, a)
      t.equal(r.code, 0, `ADD: ${r.stdout}`)
      results.push(r.json)
    }
    const r0 = results[0]
    t.equal(r0.cniVersion, c.cniVersion, 'result in the config version')
    t.same(r0.ips.map((i: any) => (i.address.includes(':') ? 6 : 4)), c.fams, 'one address per family')
    t.ok(r0.ips.every((i: any) => /\/(32|128)$/.test(i.address)), 'host-route prefix lengths')
    if (c.cniVersion.startsWith('0.')) t.same(r0.ips.map((i: any) => i.version), c.fams.map(String), 'legacy ip versions')
    else t.notOk('version' in r0.ips[0], 'no ip version from 1.0.0 on')
    t.equal(r0.interfaces[r0.ips[0].interface].sandbox, atts[0].netns, 'ip points at the pod interface')

    const link = JSON.parse(inNetns('wc-fa', 'ip', ['-j', 'link', 'show', 'eth0']).stdout)[0]
    t.equal(link.mtu, 1400, 'pod MTU')
    t.equal(link.address, r0.interfaces[1].mac, 'reported MAC is the pod MAC')
    const v4 = inNetns('wc-fa', 'ip', ['-4', 'route', 'show', 'default']).stdout
    const v6 = inNetns('wc-fa', 'ip', ['-6', 'route', 'show', 'default']).stdout
    t.equal(v4.includes('via 169.254.1.1'), c.fams.includes(4 as never), 'IPv4 default route only with IPv4')
    t.equal(v6.includes('via fe80::1'), c.fams.includes(6 as never), 'IPv6 default route only with IPv6')

    const peerIps = resultIps(results[1])
    for (const [i, fam] of c.fams.entries()) {
      echoServer(cleanup, 'wc-fb', 'tcp', 7100 + fam, fam)
      echoServer(cleanup, 'wc-fb', 'udp', 7200 + fam, fam)
      t.equal(await echo('wc-fa', 'tcp', peerIps[i], 7100 + fam, `tcp${fam}`), `tcp${fam}`, `TCP over IPv${fam}`)
      t.equal(await echo('wc-fa', 'udp', peerIps[i], 7200 + fam, `udp${fam}`), `udp${fam}`, `UDP over IPv${fam}`)
    }
    for (const a of atts) t.equal((await runWren('DEL', conf, a)).code, 0, 'DEL')
    t.same(leftovers(state), NOTHING, 'nothing left')
  })
}
