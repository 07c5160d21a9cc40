/*
 * The host half of a pod's wiring over rtnetlink (the `netlink` package), for
 * the plugin run inside the agent (cni/serve.ts). Same outcome as the
 * `ip -batch` host script in cni/veth.ts, in the same order: the pair is
 * created with its peer straight in the pod's namespace (IFLA_NET_NS_FD), the
 * host half gets the IPv6 gateway (nodad), goes up, and routes each pod
 * address (`ip route replace … scope link`, protocol boot as ip writes it).
 *
 * Names, MAC and MTU travel as attributes, never as text, so no value can end
 * a command early or add one (an IFNAME of `e#th0` is just a name here).
 *
 * The pod half stays `nsenter --net=PATH ip -batch` (cni/veth.ts wirePod): its
 * address can be added over netlink from outside (IFLA_TARGET_NETNSID) but its
 * routes cannot (RTM_NEWROUTE has no target namespace), and Node cannot enter
 * a namespace for one socket without moving the thread every await shares
 * (shared/netns.ts).
 *
 * Model: one socket per instance, opened on first use, shared by concurrent
 * invocations (the package matches replies to requests by sequence number;
 * it groups only one multipart answer at a time, so no dump may be asked on
 * this shared socket: every request here names one object);
 * it holds the event loop only while a request is pending. Not bundled into
 * the fallback plugin (dist/wren.cjs), which has no native addon beside it:
 * only cni/serve.ts imports this module.
 */
import netlink from 'netlink'
import type { RtNetlinkSocket } from 'netlink'
import { closeSync, constants, openSync } from 'node:fs'
import { isNetns } from '../shared/netns.ts'
import { bitsOf, parseCidr } from './ipam/ipmath.ts'
import { ipFamily } from './result.ts'
import { families, GW6, IfnameTakenError, type HostLinks, type HostSide, type Wiring } from './veth.ts'

const { createRtNetlink, ifla, rt, AttrStream, FlagsNew } = netlink
const AF_INET = 2
const AF_INET6 = 10
const MAIN_TABLE = 254
/** A request the kernel has not answered by then fails the step (and the ADD rolls back). */
const REQUEST_TIMEOUT_MS = 10_000

function flatten(data: netlink.StreamData): Buffer {
  if (typeof data !== 'function') return Buffer.concat(([] as Uint8Array[]).concat(data))
  const s = new AttrStream()
  data(s)
  return Buffer.concat(s.bufs)
}

const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)))
const macText = (b: Buffer | undefined): string => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '')

/** An address or CIDR's address, in network byte order. */
function ipBytes(text: string): Buffer {
  const c = parseCidr(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`)
  if (!c) throw new Error(`not an IP address: ${text}`)
  const out = Buffer.alloc(bitsOf(c.ip.family) / 8)
  let v = c.ip.value
  for (let i = out.length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn)
  return out
}

/** The errno name of a rejected request ('EEXIST'), from the package's "Request rejected: EEXIST". */
export function errnoOf(e: unknown): string | undefined {
  return /Request rejected: (E[A-Z0-9]+)/.exec((e as Error)?.message ?? '')?.[1]
}

/** VETH_INFO_PEER: a struct ifinfomsg (all zero) followed by the peer's own link attributes. */
export function vethLinkInfo(w: Pick<Wiring, 'ifname' | 'mtu' | 'mac'>, netnsFd: number): Buffer {
  const peerAttrs = flatten(ifla.formatLinkAttrs({ ifname: w.ifname, mtu: w.mtu, address: macBytes(w.mac), netNsFd: netnsFd }))
  const peer = Buffer.concat([rt.formatLink({}), peerAttrs])
  return flatten(ifla.formatInfo({ kind: 'veth', data: flatten(ifla.formatVethInfo({ peer })) }))
}

export class NetlinkHostLinks implements HostLinks {
  readonly kind = 'netlink'
  private sock?: RtNetlinkSocket

  private get s(): RtNetlinkSocket {
    return (this.sock ??= createRtNetlink())
  }

  close(): void {
    this.sock?.socket.close()
    this.sock = undefined
  }

  async wire(w: Wiring): Promise<HostSide> {
    // a crashed ADD's host veth of the same name: replaced, as the ip script does
    if ((await this.link(w.hostIface)) !== undefined) await this.unwire(w.hostIface)
    await this.createPair(w)
    const host = await this.link(w.hostIface)
    if (!host) throw new Error(`veth ${w.hostIface} vanished right after it was created`)
    const opt = { timeout: REQUEST_TIMEOUT_MS }
    if (families(w.addrs).has(6)) {
      const gw = ipBytes(GW6)
      await this.s.newAddress({ family: AF_INET6, prefixlen: 64, index: host.index, scope: 253, flags: { nodad: true } }, { local: gw, address: gw }, opt)
    }
    await this.s.setLink({ index: host.index, flags: { up: true }, change: { up: true } }, {}, opt)
    for (const a of w.addrs) {
      const family = ipFamily(a) === 4 ? AF_INET : AF_INET6
      await this.s.newRoute(
        { family, dstLen: Number(a.split('/')[1]), table: MAIN_TABLE, protocol: 'BOOT', scope: 'LINK', type: 'UNICAST' },
        { dst: ipBytes(a), oif: host.index },
        { ...opt, flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      )
    }
    return { mac: host.mac }
  }

  async unwire(hostIface: string): Promise<boolean> {
    try {
      await this.s.delLink({}, { ifname: hostIface }, { timeout: REQUEST_TIMEOUT_MS })
      return true
    } catch (e) {
      // absent (never made, or a concurrent DEL won the race) is what DEL wants
      if (errnoOf(e) === 'ENODEV') return false
      throw new Error(`deleting veth ${hostIface}: ${(e as Error).message}`)
    }
  }

  /** The pair, its peer moved into the pod's namespace by an fd open only for this request. */
  private async createPair(w: Wiring): Promise<void> {
    // statfs first: opening a FIFO or a device named by CNI_NETNS could block or act; O_NONBLOCK as well
    if (!isNetns(w.netns)) throw new Error(`${w.netns} is not a network namespace`)
    const fd = openSync(w.netns, constants.O_RDONLY | constants.O_NONBLOCK) // libuv adds O_CLOEXEC
    try {
      const linkinfo = vethLinkInfo(w, fd)
      await this.s.newLink({}, { ifname: w.hostIface, mtu: w.mtu, linkinfo }, { timeout: REQUEST_TIMEOUT_MS, flags: FlagsNew.CREATE | FlagsNew.EXCL })
    } catch (e) {
      // EEXIST with our host name free: the pod already has an interface of that name
      if (errnoOf(e) === 'EEXIST' && (await this.link(w.hostIface)) === undefined) {
        throw new IfnameTakenError(`interface ${w.ifname} already exists in ${w.netns}`)
      }
      throw new Error(`creating veth ${w.hostIface} (peer ${w.ifname} in ${w.netns}): ${(e as Error).message}`)
    } finally {
      closeSync(fd)
    }
  }

  /** A host link by name (asked of this socket's namespace, not of whatever /sys shows). */
  private async link(name: string): Promise<{ index: number; mac: string } | undefined> {
    try {
      const [m] = await this.s.getLink({}, { ifname: name }, { timeout: REQUEST_TIMEOUT_MS })
      return m?.data.index ? { index: m.data.index, mac: macText(m.attrs.address) } : undefined
    } catch (e) {
      if (errnoOf(e) === 'ENODEV') return undefined
      throw e
    }
  }
}
