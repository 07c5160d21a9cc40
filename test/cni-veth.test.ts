// The host half's two ways without a kernel: the rtnetlink attributes of the
// veth (peer with its own ifinfomsg and attributes, its namespace as an fd),
// and the `ip -batch` way refusing values a batch line cannot carry before it
// runs anything. The scripts themselves are pinned so the fallback keeps
// doing exactly what it did.
import netlink from 'netlink'
import t from 'tap'
import { errnoOf, vethLinkInfo } from '../cni/veth-netlink.ts'
import { batchWordProblem, hostScript, ipHostLinks, podScript, type Wiring } from '../cni/veth.ts'
import type { Exec } from '../shared/exec.ts'

const { ifla, rt } = netlink

const w: Wiring = {
  hostIface: 'wtc0123456789ab',
  ifname: 'eth0',
  netns: '/var/run/netns/p',
  mtu: 1450,
  mac: '0a:58:0a:f4:00:05',
  addrs: ['10.244.0.5/32', 'fd00::5/128'],
  routes: [{ dst: '10.96.0.0/12' }],
}

t.test('VETH_INFO_PEER: an ifinfomsg, then the peer name, MTU, MAC and namespace fd', async (t) => {
  const info = ifla.parseInfo(vethLinkInfo({ ...w, ifname: 'e#th0' }, 42))
  t.equal(info.kind, 'veth')
  const peer = ifla.parseVethInfo(info.data!).peer!
  t.same([...peer.subarray(0, rt.__LENGTH_Link)], Array(16).fill(0), 'an all-zero struct ifinfomsg (16 bytes) first')
  const attrs = ifla.parseLinkAttrs(peer.subarray(rt.__LENGTH_Link))
  t.equal(attrs.ifname, 'e#th0', 'the name as one attribute, "#" and all')
  t.equal(attrs.mtu, 1450)
  t.equal(attrs.netNsFd, 42)
  t.same([...attrs.address!], [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05])
})

t.test("errno names from the package's rejections", async (t) => {
  t.equal(errnoOf(new Error('Request rejected: EEXIST')), 'EEXIST')
  t.equal(errnoOf(new Error('Request rejected: ENODEV')), 'ENODEV')
  t.equal(errnoOf(new Error('Timeout has been reached')), undefined)
  t.equal(errnoOf(undefined), undefined)
})

t.test('values one ip -batch word cannot carry', async (t) => {
  for (const ok of ['eth0', 'net1', 'e-th.0_1', '/var/run/netns/cni-1234', '/proc/42/ns/net', 'é']) t.equal(batchWordProblem(ok), undefined, ok)
  for (const bad of ['e#th0', 'a b', 'a\tb', '/p\nlink del eth0', 'a"b', "a'b", 'a\\b', 'a\rb', 'a\x00b', 'a\x7fb', '#']) {
    t.ok(batchWordProblem(bad), JSON.stringify(bad))
  }
})

t.test('the ip way refuses them with CNI error 4 and runs nothing', async (t) => {
  const ran: string[] = []
  const exec: Exec = async (cmd, args) => (ran.push(`${cmd} ${args.join(' ')}`), { code: 0, stdout: '', stderr: '' })
  const ip = ipHostLinks(exec)
  await t.rejects(ip.wire({ ...w, ifname: 'e#th0' }), { code: 4, message: /CNI_IFNAME "e#th0" may not contain/ })
  await t.rejects(ip.wire({ ...w, netns: '/var/run/netns/p\nlink del eth0' }), { code: 4, message: /CNI_NETNS/ })
  t.same(ran, [])
})

t.test('the fallback scripts are unchanged', async (t) => {
  t.equal(
    hostScript(w, true),
    [
      'link del wtc0123456789ab',
      'link add wtc0123456789ab mtu 1450 type veth peer name eth0 mtu 1450 address 0a:58:0a:f4:00:05 netns /var/run/netns/p',
      'addr add fe80::1/64 dev wtc0123456789ab nodad',
      'link set wtc0123456789ab up',
      'route replace 10.244.0.5/32 dev wtc0123456789ab scope link',
      'route replace fd00::5/128 dev wtc0123456789ab scope link',
      '',
    ].join('\n'),
  )
  t.equal(
    podScript(w),
    [
      'addr add 10.244.0.5/32 dev eth0',
      'addr add fd00::5/128 dev eth0 nodad',
      'link set eth0 up',
      'route add 169.254.1.1/32 dev eth0 scope link',
      'route add 0.0.0.0/0 via 169.254.1.1 dev eth0',
      'route add ::/0 via fe80::1 dev eth0',
      'route add 10.96.0.0/12 via 169.254.1.1 dev eth0',
      '',
    ].join('\n'),
  )
})
