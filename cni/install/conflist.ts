// What install-cni writes into the conf dir, and the inputs it is made of:
// the pod ranges (validated here, so a wrong range is never published) and the
// pod MTU (by default derived from the host's uplink).
import { readFileSync } from 'node:fs'
import { hasHostBits, parseCidr } from '../ipam/ipmath.ts'

export const CONF_NAME = '10-wren.conflist'
/** Debian's portmap speaks up to 1.0.0; the chain's version must suit every plugin in it. */
export const CONFLIST_VERSION = '1.0.0'
/** The range of the shipped example conflist (conf/10-wren.conflist). */
export const DEFAULT_POD_CIDRS = ['10.244.0.0/24']
/**
 * Room left under the uplink's MTU for a VXLAN header, since the agent may route
 * pods to other nodes over VXLAN: outer IPv4 (20) + UDP (8) + VXLAN (8) + the
 * inner Ethernet header (14) = 50 bytes. A pod packet of uplink MTU - 50 then
 * fits the uplink once encapsulated, so it is never fragmented or dropped on the
 * way (an IPv6 underlay would need 70). Routed without overlay (host-gw) the
 * pods lose 50 bytes of MTU, which costs far less than broken large packets.
 */
export const VXLAN_OVERHEAD = 50
export const FALLBACK_UPLINK_MTU = 1500

/** Every problem with the given pod ranges at once (empty: all fine). */
export function podCidrProblems(podCidrs: string[]): string[] {
  if (!podCidrs.length) return ['at least one pod CIDR is needed']
  const problems: string[] = []
  const families = new Set<number>()
  for (const c of podCidrs) {
    const cidr = parseCidr(c)
    if (!cidr) problems.push(`pod CIDR ${JSON.stringify(c)} is not a CIDR (e.g. 10.244.1.0/24 or fd00:10:244:1::/64)`)
    else if (hasHostBits(cidr)) problems.push(`pod CIDR ${c} has host bits set: give the network address`)
    else if (families.has(cidr.ip.family)) problems.push(`pod CIDR ${c}: a second IPv${cidr.ip.family} range (one per family)`)
    else families.add(cidr.ip.family)
  }
  return problems
}

/** The pod MTU must suit the netconf's bounds, and IPv6 needs at least 1280. */
export function mtuProblems(mtu: number, podCidrs: string[]): string[] {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) return [`MTU ${mtu} is not an integer from 68 to 65535`]
  if (mtu < 1280 && podCidrs.some((c) => c.includes(':'))) return [`MTU ${mtu} is below IPv6's minimum of 1280`]
  return []
}

/** The agent's folders when not the defaults (/var/lib/wren, /var/run/wren): the plugin must use the same. */
export interface AgentDirs {
  stateDir?: string
  runDir?: string
}

export function agentDirProblems(dirs: AgentDirs): string[] {
  return Object.entries(dirs)
    .filter(([, d]) => d !== undefined && !d.startsWith('/'))
    .map(([k, d]) => `--${k === 'stateDir' ? 'state' : 'run'}-dir ${d}: must be an absolute path`)
}

/** The conflist: wren first, portmap chained after it for hostPort mappings. */
export function wrenConfList(podCidrs: string[], mtu = FALLBACK_UPLINK_MTU, dirs: AgentDirs = {}): Record<string, unknown> {
  const problems = [...podCidrProblems(podCidrs), ...mtuProblems(mtu, podCidrs), ...agentDirProblems(dirs)]
  if (problems.length) throw new Error(problems.join('; '))
  const given = Object.fromEntries(Object.entries(dirs).filter(([, d]) => d !== undefined))
  return {
    cniVersion: CONFLIST_VERSION,
    name: 'wren',
    plugins: [
      { type: 'wren', mtu, ...given, ipam: { type: 'wren', ranges: podCidrs.map((subnet) => [{ subnet }]) } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  }
}

/**
 * The interface of the host's default route, from /proc/net/route (IPv4) or
 * else /proc/net/ipv6_route: the up default route with the lowest metric.
 * Unreachable IPv6 defaults sit on `lo` and are skipped.
 */
export function defaultRouteDevice(ipv4Routes: string, ipv6Routes = ''): string | undefined {
  let best: { dev: string; metric: number } | undefined
  for (const line of ipv4Routes.split('\n').slice(1)) {
    const [dev, dest, , flags, , , metric, mask] = line.trim().split(/\s+/)
    if (dest !== '00000000' || mask !== '00000000' || !(parseInt(flags, 16) & 1)) continue
    if (!best || parseInt(metric, 10) < best.metric) best = { dev, metric: parseInt(metric, 10) }
  }
  if (best) return best.dev
  for (const line of ipv6Routes.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10 || !/^0{32}$/.test(f[0]) || f[1] !== '00' || f[9] === 'lo' || !(parseInt(f[8], 16) & 1)) continue
    if (!best || parseInt(f[5], 16) < best.metric) best = { dev: f[9], metric: parseInt(f[5], 16) }
  }
  return best?.dev
}

type ReadText = (path: string) => string

/** The default pod MTU: the default route's interface MTU (1500 when unknown) minus room for VXLAN. */
export function defaultPodMtu(read: ReadText = (p) => readFileSync(p, 'utf8')): { mtu: number; uplink?: string; uplinkMtu: number } {
  const tryRead = (p: string) => {
    try {
      return read(p)
    } catch {
      return ''
    }
  }
  const uplink = defaultRouteDevice(tryRead('/proc/net/route'), tryRead('/proc/net/ipv6_route'))
  const fromSys = uplink && /^[\w.@:-]+$/.test(uplink) ? Number(tryRead(`/sys/class/net/${uplink}/mtu`).trim()) : NaN
  const uplinkMtu = Number.isInteger(fromSys) && fromSys >= 68 + VXLAN_OVERHEAD ? fromSys : FALLBACK_UPLINK_MTU
  return { mtu: uplinkMtu - VXLAN_OVERHEAD, uplink, uplinkMtu }
}
