// Routes between nodes, as plain data: (this node, every Node object, the
// host's directly connected subnets, the mode) → the routes, VXLAN peers and
// problems the kernel should reflect. Pure: no I/O, no clock.
//
// For each other node, each of its pod ranges goes:
// - host-gw: via the node's InternalIP of the same family, when that address
//   is on a subnet this host is directly connected to (one L2 hop; nothing
//   between the nodes needs to know pod addresses);
// - vxlan: otherwise, or always with mode 'vxlan': through the VXLAN device
//   to a gateway that is the range's network address (held by the other
//   node's VXLAN device, as flannel does), resolved by one permanent
//   neighbour entry (gateway → the node's VTEP MAC) and one FDB entry (that
//   MAC → the node's IPv4 InternalIP, the outer destination).
// This node's own ranges are blackholed: an address no pod holds goes nowhere
// instead of bouncing out of the default route (a pod's /32 route is more
// specific and wins).
//
// Faults never widen what is routed: a node without InternalIP or pod ranges,
// or with a range overlapping another node's, gets no new route, and keeps the
// routes the last plan gave it while its object exists (nothing that worked is
// removed by a bad update). A node deleted from the API loses its routes. When
// this node's own object is missing or unusable, the plan holds: the kernel
// keeps what it has.
import { contains, formatCidr, formatIp, networkOf, parseCidr, parseIp, type Cidr, type Ip } from '../../cni/ipam/ipmath.ts'
import { vtepMac } from '../../shared/names.ts'
import type { Problem } from '../dataplane/types.ts'
import type { Node } from '../model.ts'

export type OverlayMode = 'auto' | 'vxlan' | 'host-gw'

export type PlannedRoute =
  | { dst: string; kind: 'blackhole' }
  | { dst: string; kind: 'host-gw'; via: string }
  | { dst: string; kind: 'vxlan'; via: string }

/** One other node reached over VXLAN. */
export interface VxlanPeer {
  node: string
  mac: string
  /** Outer destination: the node's IPv4 InternalIP. */
  underlay: string
  /** Its VXLAN device's addresses: the network address of each of its pod ranges (our routes' gateways). */
  gateways: string[]
}

export interface VxlanDevice {
  mac: string
  /** This node's IPv4 InternalIP, the outer source. */
  local: string
  /** The network address of each own pod range, as /32 or /128 on the device. */
  addresses: string[]
  peers: VxlanPeer[]
}

export interface RoutePlan {
  /** This node's object is missing or unusable: change nothing in the kernel. */
  hold: boolean
  routes: PlannedRoute[]
  /** Absent: no node needs the overlay, the device is removed. */
  vxlan?: VxlanDevice
  /** Per node, what it was given: the next plan keeps it for a node whose object turns bad. */
  byNode: Map<string, NodeRoutes>
  problems: Problem[]
}

export interface NodeRoutes {
  routes: PlannedRoute[]
  peer?: VxlanPeer
}

export interface PlanInput {
  self: string
  nodes: readonly Node[]
  mode: OverlayMode
  /** Subnets of this host's own addresses (directly connected). */
  connected: readonly string[]
  last?: RoutePlan
}

/** A Node's usable parts; problems name what is missing or wrong. */
interface NodeView {
  name: string
  ips: Ip[]
  cidrs: Cidr[]
  problems: string[]
}

function view(n: Node): NodeView {
  const problems: string[] = []
  const ips: Ip[] = []
  for (const a of n.status?.addresses ?? []) {
    const ip = parseIp(a.address)
    if (ip) ips.push(ip)
    else problems.push(`InternalIP ${JSON.stringify(a.address)} is not an IP address`)
  }
  if (!ips.length) problems.push('no InternalIP address')
  const texts = n.spec?.podCIDRs ?? []
  const cidrs: Cidr[] = []
  for (const t of texts) {
    const c = parseCidr(t)
    if (!c) problems.push(`pod CIDR ${JSON.stringify(t)} is not a CIDR`)
    else if (cidrs.some((o) => o.ip.family === c.ip.family)) problems.push(`more than one IPv${c.ip.family} pod CIDR`)
    else cidrs.push({ ip: networkOf(c), prefix: c.prefix })
  }
  if (!texts.length) problems.push('no pod CIDRs (spec.podCIDRs)')
  return { name: n.metadata.name, ips, cidrs, problems }
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.ip.family === b.ip.family && (contains(a, b.ip) || contains(b, a.ip))
}

const problem = (node: string, message: string, effect: string): Problem => ({ object: `Node ${node}`, message, effect })

/**
 * Ranges claimed by more than one node: the node that had the range in the
 * last plan keeps it; otherwise no claimant gets it (which one is right is
 * not ours to guess).
 */
function conflicts(views: NodeView[], last: RoutePlan | undefined): Map<string, string> {
  const bad = new Map<string, string>()
  const held = (v: NodeView, c: Cidr) => last?.byNode.get(v.name)?.routes.some((r) => r.dst === formatCidr(c)) ?? false
  for (const v of views) {
    for (const c of v.cidrs) {
      const rivals = views.filter((o) => o !== v && o.cidrs.some((oc) => overlaps(c, oc)))
      if (!rivals.length) continue
      const rivalHeld = rivals.some((o) => o.cidrs.some((oc) => overlaps(c, oc) && held(o, oc)))
      if (held(v, c) && !rivalHeld) continue
      bad.set(v.name, `pod CIDR ${formatCidr(c)} overlaps ${rivals.map((o) => `Node ${o.name}`).join(', ')}`)
    }
  }
  return bad
}

/**
 * A bad node keeps the routes the last plan gave it, so its old ranges are
 * still claimed even when its object no longer names them: a node that now
 * claims an overlapping range gets a problem instead of a second route.
 */
function dropClaimsOnKeptRanges(byNode: Map<string, NodeRoutes>, views: NodeView[], last: RoutePlan | undefined, problems: Problem[]): void {
  const good = new Set(views.filter((v) => !v.problems.length).map((v) => v.name))
  const kept = [...byNode].filter(([name, r]) => !good.has(name) && r === last?.byNode.get(name))
  const keptRanges = kept.flatMap(([name, r]) => r.routes.map((x) => ({ name, cidr: parseCidr(x.dst)! })))
  for (const [name, r] of [...byNode]) {
    if (!good.has(name) || r.routes.every((x) => x.kind === 'blackhole')) continue
    const clash = keptRanges.find((k) => k.name !== name && r.routes.some((x) => overlaps(parseCidr(x.dst)!, k.cidr)))
    if (!clash) continue
    byNode.delete(name)
    const had = last?.byNode.get(name)
    problems.push(problem(name, `pod CIDR overlaps ${formatCidr(clash.cidr)}, still routed to Node ${clash.name}`, had ? 'its routes from before are kept' : 'no routes to its pods'))
    if (had) byNode.set(name, had)
  }
}

function connectedTo(ip: Ip, connected: readonly Cidr[]): boolean {
  return connected.some((c) => c.ip.family === ip.family && contains(c, ip))
}

function routesFor(v: NodeView, input: PlanInput, connected: Cidr[]): NodeRoutes | string {
  const underlay = v.ips.find((ip) => ip.family === 4)
  const routes: PlannedRoute[] = []
  let peer: VxlanPeer | undefined
  for (const c of v.cidrs) {
    const dst = formatCidr(c)
    const sameFamily = v.ips.find((ip) => ip.family === c.ip.family)
    const direct = sameFamily && connectedTo(sameFamily, connected)
    if (input.mode !== 'vxlan' && direct) {
      routes.push({ dst, kind: 'host-gw', via: formatIp(sameFamily) })
      continue
    }
    if (input.mode === 'host-gw') return `InternalIP ${sameFamily ? formatIp(sameFamily) : '(none of this family)'} is not on a directly connected subnet, and --overlay host-gw forbids VXLAN`
    if (!underlay) return 'VXLAN needs an IPv4 InternalIP (the outer address)'
    const gateway = formatIp(c.ip)
    routes.push({ dst, kind: 'vxlan', via: gateway })
    peer ??= { node: v.name, mac: vtepMac(v.name), underlay: formatIp(underlay), gateways: [] }
    peer.gateways.push(gateway)
  }
  return { routes, peer }
}

export function planRoutes(input: PlanInput): RoutePlan {
  const problems: Problem[] = []
  const byNode = new Map<string, NodeRoutes>()
  const views = [...input.nodes].map(view).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const self = views.find((v) => v.name === input.self)
  const hold = (message: string): RoutePlan => {
    // nothing to route yet on a cluster without Node objects (manifests mode): no problem to report
    if (input.nodes.length) problems.push(problem(input.self, message, 'routes between nodes left as they are'))
    return { hold: true, routes: [], byNode: input.last?.byNode ?? new Map(), problems, ...(input.last?.vxlan && { vxlan: input.last.vxlan }) }
  }
  if (!self) return hold(`this node's own Node object is missing`)
  if (self.problems.length) return hold(`this node's own object is unusable: ${self.problems.join('; ')}`)
  const connected = input.connected.map(parseCidr).filter((c): c is Cidr => !!c)
  const bad = conflicts(views, input.last)
  const keepLast = (v: NodeView, why: string) => {
    const had = input.last?.byNode.get(v.name)
    problems.push(problem(v.name, why, had ? 'its routes from before are kept' : 'no routes to its pods'))
    if (had) byNode.set(v.name, had)
  }
  if (bad.has(self.name)) return hold(bad.get(self.name)!)
  byNode.set(self.name, { routes: self.cidrs.map((c) => ({ dst: formatCidr(c), kind: 'blackhole' })) })
  for (const v of views) {
    if (v === self) continue
    if (v.problems.length) keepLast(v, v.problems.join('; '))
    else if (bad.has(v.name)) keepLast(v, bad.get(v.name)!)
    else {
      const r = routesFor(v, input, connected)
      if (typeof r === 'string') keepLast(v, r)
      else byNode.set(v.name, r)
    }
  }
  dropClaimsOnKeptRanges(byNode, views, input.last, problems)
  const routes = [...byNode.values()].flatMap((n) => n.routes)
  const peers = [...byNode.values()].flatMap((n) => (n.peer ? [n.peer] : []))
  const local = self.ips.find((ip) => ip.family === 4)
  let vxlan: VxlanDevice | undefined
  if (peers.length && local) vxlan = { mac: vtepMac(self.name), local: formatIp(local), addresses: self.cidrs.map((c) => formatIp(c.ip)), peers }
  else if (peers.length) {
    problems.push(problem(self.name, 'VXLAN needs an IPv4 InternalIP on this node', 'no routes to nodes reached over VXLAN'))
    for (const p of peers) byNode.delete(p.node)
    return { hold: false, routes: [...byNode.values()].flatMap((n) => n.routes), byNode, problems }
  }
  return { hold: false, routes, byNode, problems, ...(vxlan && { vxlan }) }
}

/** Every node's pod ranges (for masquerade and anti-spoofing), canonical, deduplicated, sorted. */
export function clusterPodCidrs(nodes: readonly Node[]): string[] {
  return canonicalCidrs(nodes.flatMap((n) => n.spec?.podCIDRs ?? []))
}

/** Parseable CIDRs with host bits cleared, deduplicated, sorted; the rest dropped. */
export function canonicalCidrs(texts: readonly string[]): string[] {
  const out = new Set<string>()
  for (const t of texts) {
    const c = parseCidr(t)
    if (c) out.add(formatCidr({ ip: networkOf(c), prefix: c.prefix }))
  }
  return [...out].sort()
}
