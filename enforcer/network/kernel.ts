/*
 * The routes between nodes in the kernel, over rtnetlink (the `netlink`
 * package): routes in the main table, the VXLAN device with its addresses,
 * its neighbour entries (gateway → VTEP MAC) and FDB entries (MAC → underlay
 * address).
 *
 * Model: hostAddresses() reads links and addresses once per sync (the
 * planner needs the connected subnets, the apply the device and its
 * addresses); apply(plan, host) reads the routes and the device's entries,
 * then adds, replaces and deletes
 * until the kernel matches the plan. Ownership: a route is wren's when its
 * protocol is ROUTE_PROTOCOL; a neighbour or FDB entry when it sits on the
 * VXLAN device, which is wren's by name. A route of someone else to the same
 * destination is never replaced or deleted: the destination is reported and
 * skipped.
 * Invariants: nothing is written for a plan that holds; the device exists
 * before any route through it, and its neighbour and FDB entries before the
 * routes that need them.
 * Concurrency: one apply at a time (the agent's runner never overlaps syncs),
 * and one request at a time on the socket: the package groups one multipart
 * answer at a time, so two dumps in flight mix their parts;
 * the socket is opened by start(), never by the constructor.
 */
import netlink from 'netlink'
import type { RtNetlinkSocket } from 'netlink'
import { bitsOf, formatIp, parseCidr, parseIp, type Ip } from '../../cni/ipam/ipmath.ts'
import type { Logger } from '../../shared/log.ts'
import { ROUTE_PROTOCOL, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI } from '../../shared/names.ts'
import type { Problem } from '../dataplane/types.ts'
import type { PlannedRoute, RoutePlan, VxlanDevice } from './plan.ts'

const { createRtNetlink, ifla, AttrStream, FlagsNew } = netlink
const AF_INET = 2
const AF_INET6 = 10
const AF_BRIDGE = 7
const MAIN_TABLE = 254
/** RTNH_F_ONLINK: the VXLAN gateway is not on any subnet of the device. */
const ONLINK = 4
const CREATE = FlagsNew.CREATE | FlagsNew.REPLACE

/** What one read of the host's links and addresses found: the planner's input and the apply's starting point. */
export interface HostAddresses {
  /** Subnets of this host's global addresses (directly connected). */
  connected: string[]
  links: netlink.rt.LinkMessage[]
  addresses: netlink.rt.AddressMessage[]
}

export interface RoutesApplied {
  added: number
  removed: number
  problems: Problem[]
}

function bytes(ip: Ip): Buffer {
  const n = bitsOf(ip.family) / 8
  const out = Buffer.alloc(n)
  let v = ip.value
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function ipOf(text: string): Ip {
  const ip = parseIp(text)
  if (!ip) throw new Error(`not an IP address: ${text}`)
  return ip
}

function fromBytes(b: Buffer | undefined): string | undefined {
  if (!b || (b.length !== 4 && b.length !== 16)) return undefined
  let v = 0n
  for (const x of b) v = (v << 8n) | BigInt(x)
  return formatIp({ family: b.length === 4 ? 4 : 6, value: v })
}

const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)))
const macText = (b: Buffer | undefined): string => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '')

function attrs(data: ReturnType<typeof ifla.formatVxlan>): Buffer {
  if (typeof data !== 'function') return Buffer.concat(([] as Uint8Array[]).concat(data))
  const s = new AttrStream()
  data(s)
  return Buffer.concat(s.bufs)
}

/** A route as the kernel holds it, reduced to what the plan compares. */
interface KernelRoute {
  family: number
  dst: string
  ours: boolean
  type: string | number
  gateway?: string
  oif?: number
}

function deviceOf(links: netlink.rt.LinkMessage[]): netlink.rt.LinkMessage | undefined {
  return links.find((l) => l.attrs.ifname === VXLAN_DEVICE)
}

/** The MTU of the interface holding the underlay address (its link message carries it). */
function underlayMtu(local: string, host: HostAddresses): number | undefined {
  const addr = host.addresses.find((a) => a.data.family === AF_INET && fromBytes(a.attrs.local ?? a.attrs.address) === local)
  return addr && host.links.find((l) => l.data.index === addr.data.index)?.attrs.mtu
}

function describeRoute(r: PlannedRoute): string {
  return r.kind === 'blackhole' ? `blackhole ${r.dst}` : `${r.dst} via ${r.via} (${r.kind})`
}

export class NetlinkRoutes {
  private sock?: RtNetlinkSocket

  constructor(private readonly log: Logger) {}

  start(): void {
    this.sock ??= createRtNetlink()
  }

  stop(): void {
    this.sock?.socket.close()
    this.sock = undefined
  }

  private get s(): RtNetlinkSocket {
    if (!this.sock) this.start()
    return this.sock!
  }

  /** Subnets of the host's global addresses, for deciding which nodes are one L2 hop away. */
  async hostAddresses(): Promise<HostAddresses> {
    // one dump at a time: two on one netlink socket interleave their parts
    const links = await this.s.getLinks()
    const addresses = await this.s.getAddresses()
    const vx = deviceOf(links)?.data.index
    const connected: string[] = []
    for (const a of addresses) {
      if (a.data.scope !== 0) continue
      if (a.data.index === vx) continue
      const ip = fromBytes(a.attrs.local ?? a.attrs.address)
      if (ip) connected.push(`${ip}/${a.data.prefixlen}`)
    }
    return { connected, links, addresses }
  }

  /** Makes the kernel match `plan`, starting from `host` (read by hostAddresses just before). */
  async apply(plan: RoutePlan, host: HostAddresses): Promise<RoutesApplied> {
    const out: RoutesApplied = { added: 0, removed: 0, problems: [] }
    if (plan.hold) return out
    const index = plan.vxlan ? await this.ensureDevice(plan.vxlan, host, out) : undefined
    const have = await this.routes()
    const want = new Map(plan.routes.map((r) => [r.dst, r]))
    for (const r of have) {
      if (r.ours && !want.has(r.dst)) {
        await this.deleteRoute(r)
        out.removed++
      }
    }
    for (const r of plan.routes) {
      const existing = have.filter((h) => h.dst === r.dst)
      const foreign = existing.find((h) => !h.ours)
      if (foreign) {
        out.problems.push({ object: `route ${r.dst}`, message: `a route to ${r.dst} exists that wren did not make (type ${foreign.type}${foreign.gateway ? ` via ${foreign.gateway}` : ''})`, effect: `left alone; ${describeRoute(r)} not programmed` })
        continue
      }
      const mine = existing.find((h) => h.ours)
      if (mine && this.same(mine, r, index)) continue
      await this.s.newRoute(...this.routeMessage(parseCidr(r.dst)!.ip.family === 4 ? AF_INET : AF_INET6, r, index))
      out.added++
    }
    if (!plan.vxlan) await this.removeDevice(deviceOf(host.links)?.data.index)
    return out
  }

  /** Deletes every wren route and the VXLAN device; what others made stays. */
  async cleanup(): Promise<number> {
    let n = 0
    for (const r of await this.routes()) {
      if (!r.ours) continue
      await this.deleteRoute(r)
      n++
    }
    if (await this.removeDevice(deviceOf(await this.s.getLinks())?.data.index)) n++
    return n
  }

  /** Deletes exactly the route read (its type and protocol too: a blackhole is not matched by a unicast delete). */
  private async deleteRoute(r: KernelRoute): Promise<void> {
    const c = parseCidr(r.dst)!
    const data: netlink.rt.Route = { family: r.family, dstLen: c.prefix, table: MAIN_TABLE, protocol: ROUTE_PROTOCOL as netlink.rt.RouteProtocol, type: r.type as netlink.rt.RouteType }
    await this.s.delRoute(data, { dst: bytes(c.ip), table: MAIN_TABLE })
  }

  private same(k: KernelRoute, r: PlannedRoute, vxlanIndex: number | undefined): boolean {
    if (r.kind === 'blackhole') return k.type === 'BLACKHOLE'
    if (k.type !== 'UNICAST' || k.gateway !== r.via) return false
    return r.kind === 'host-gw' || k.oif === vxlanIndex
  }

  private routeMessage(family: number, r: PlannedRoute, vxlanIndex?: number): Parameters<RtNetlinkSocket['newRoute']> {
    const c = parseCidr(r.dst)!
    const data: netlink.rt.Route = { family, dstLen: c.prefix, table: MAIN_TABLE, protocol: ROUTE_PROTOCOL as netlink.rt.RouteProtocol, scope: 'UNIVERSE', type: r.kind === 'blackhole' ? 'BLACKHOLE' : 'UNICAST' }
    const at: netlink.rt.RouteAttrs = { dst: bytes(c.ip), table: MAIN_TABLE }
    if (r.kind !== 'blackhole') at.gateway = bytes(ipOf(r.via))
    if (r.kind === 'vxlan') {
      data.flags = { __unknown: ONLINK } as netlink.rt.RouteFlags
      at.oif = vxlanIndex
    }
    return [data, at, { flags: CREATE }]
  }

  private async routes(): Promise<KernelRoute[]> {
    const out: KernelRoute[] = []
    for (const family of [AF_INET, AF_INET6]) {
      for (const m of await this.s.getRoutes({ family })) {
        const table = m.attrs.table ?? m.data.table
        if (table !== MAIN_TABLE) continue
        const type = m.data.type ?? 'UNSPEC'
        if (type === 'LOCAL' || type === 'BROADCAST' || type === 'MULTICAST') continue
        const dst = m.attrs.dst ? fromBytes(m.attrs.dst) : family === AF_INET ? '0.0.0.0' : '::'
        out.push({ family, dst: `${dst}/${m.data.dstLen ?? 0}`, ours: (m.data.protocol as unknown) === ROUTE_PROTOCOL, type, gateway: fromBytes(m.attrs.gateway), oif: m.attrs.oif })
      }
    }
    return out
  }

  private async removeDevice(index: number | undefined): Promise<boolean> {
    if (index === undefined) return false
    await this.s.delLink({ index })
    this.log.info('removed the VXLAN device', { device: VXLAN_DEVICE })
    return true
  }

  /** The device as the plan wants it (recreated when its local address or MAC changed), with its entries; its index. */
  private async ensureDevice(want: VxlanDevice, host: HostAddresses, out: RoutesApplied): Promise<number> {
    const dev = deviceOf(host.links)
    let index = dev?.data.index
    if (dev && !this.deviceMatches(dev, want)) {
      await this.s.delLink({ index: dev.data.index })
      index = undefined
    }
    const created = index === undefined
    if (index === undefined) index = await this.createDevice(want, host, out)
    // a device made just now holds no address yet
    await this.ensureAddresses(index, want, created ? [] : host.addresses)
    await this.ensureEntries(index, want)
    return index
  }

  private deviceMatches(dev: netlink.rt.LinkMessage, want: VxlanDevice): boolean {
    if (macText(dev.attrs.address) !== want.mac || !dev.attrs.linkinfo) return false
    const info = ifla.parseInfo(dev.attrs.linkinfo)
    if (info.kind !== 'vxlan' || !info.data) return false
    const vx = ifla.parseVxlan(info.data)
    return vx.id === VXLAN_VNI && fromBytes(vx.local) === want.local && (vx.port?.readUInt16BE(0) ?? 0) === VXLAN_PORT
  }

  private async createDevice(want: VxlanDevice, host: HostAddresses, out: RoutesApplied): Promise<number> {
    const underlay = underlayMtu(want.local, host)
    if (underlay === undefined) out.problems.push({ object: `device ${VXLAN_DEVICE}`, message: `no interface holds ${want.local}`, effect: 'MTU set to 1450' })
    const port = Buffer.alloc(2)
    port.writeUInt16BE(VXLAN_PORT)
    const data = attrs(ifla.formatVxlan({ id: VXLAN_VNI, local: bytes(ipOf(want.local)), port, learning: 0 }))
    const linkinfo = attrs(ifla.formatInfo({ kind: 'vxlan', data }))
    await this.s.newLink({}, { ifname: VXLAN_DEVICE, mtu: (underlay ?? 1500) - VXLAN_OVERHEAD, address: macBytes(want.mac), linkinfo }, { flags: FlagsNew.CREATE | FlagsNew.EXCL })
    const index = deviceOf(await this.s.getLinks())!.data.index!
    await this.s.setLink({ index, change: { up: true }, flags: { up: true } })
    this.log.info('created the VXLAN device', { device: VXLAN_DEVICE, local: want.local, mac: want.mac })
    return index
  }

  private async ensureAddresses(index: number, want: VxlanDevice, addresses: netlink.rt.AddressMessage[]): Promise<void> {
    const have = addresses.filter((a) => a.data.index === index && a.data.scope === 0)
    const haveText = new Map(have.map((a) => [fromBytes(a.attrs.local ?? a.attrs.address), a]))
    for (const text of want.addresses) {
      if (haveText.has(text)) continue
      const ip = ipOf(text)
      const b = bytes(ip)
      await this.s.newAddress({ family: ip.family === 4 ? AF_INET : AF_INET6, prefixlen: bitsOf(ip.family), index }, { local: b, address: b })
    }
    for (const [text, a] of haveText) if (text && !want.addresses.includes(text)) await this.s.delAddress(a.data, { local: a.attrs.local, address: a.attrs.address })
  }

  /** One permanent neighbour per peer gateway, one FDB entry per peer; others on the device removed. */
  private async ensureEntries(index: number, want: VxlanDevice): Promise<void> {
    const fdb = new Map(want.peers.map((p) => [p.mac, p.underlay]))
    const neigh = new Map(want.peers.flatMap((p) => p.gateways.map((g) => [g, p.mac] as const)))
    for (const n of await this.s.getNeighbors({ family: AF_BRIDGE, ifindex: index })) {
      const mac = macText(n.attrs.lladdr)
      if (n.data.ifindex !== index || mac === '00:00:00:00:00:00') continue
      if (fdb.get(mac) === fromBytes(n.attrs.dst)) fdb.delete(mac)
      else await this.s.delNeighbor(n.data, { lladdr: n.attrs.lladdr, dst: n.attrs.dst })
    }
    for (const family of [AF_INET, AF_INET6]) {
      for (const n of await this.s.getNeighbors({ family, ifindex: index })) {
        if (n.data.ifindex !== index) continue
        const ip = fromBytes(n.attrs.dst)
        if (ip && neigh.get(ip) === macText(n.attrs.lladdr) && n.data.state?.permanent) neigh.delete(ip)
        else if (ip && !neigh.has(ip)) await this.s.delNeighbor(n.data, { dst: n.attrs.dst })
      }
    }
    for (const [mac, underlay] of fdb) {
      await this.s.newNeighbor({ family: AF_BRIDGE, ifindex: index, state: { permanent: true }, flags: { self: true } }, { lladdr: macBytes(mac), dst: bytes(ipOf(underlay)) }, { flags: CREATE })
    }
    for (const [gw, mac] of neigh) {
      const ip = ipOf(gw)
      await this.s.newNeighbor({ family: ip.family === 4 ? AF_INET : AF_INET6, ifindex: index, state: { permanent: true } }, { dst: bytes(ip), lladdr: macBytes(mac) }, { flags: CREATE })
    }
  }
}
