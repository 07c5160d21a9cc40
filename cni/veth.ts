// The pod's wiring: a veth pair, the host half routed (Calico style, no
// bridge) and the pod half addressed. The host half goes through HostLinks,
// which has two implementations: rtnetlink when the plugin runs inside the
// agent (cni/veth-netlink.ts, passed by cni/serve.ts), and one `ip -batch`
// process here for the standalone plugin (dist/wren.cjs), which carries no
// native addon. The pod half is always one `ip -batch` inside the pod's
// namespace (see wirePod). Scripts are built by pure functions so they can be
// tested without a kernel.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { ExecError, type Exec } from '../shared/exec.ts'
import { CniError, CNI_CODE } from './errors.ts'
import { ipBatchInNetns } from '../shared/netns.ts'
import { hashParts } from '../shared/names.ts'
import { ipFamily, type Route } from './result.ts'

/** The pod's fake gateways: proxy_arp answers for GW4, GW6 is the host veth's link-local. */
export const GW4 = '169.254.1.1'
export const GW6 = 'fe80::1'

export interface Wiring {
  hostIface: string
  ifname: string
  netns: string
  mtu: number
  /** Pod-side MAC, fixed here so it need not be read back from inside the pod. */
  mac: string
  /** Pod addresses with /32 or /128. */
  addrs: string[]
  /** Extra routes from IPAM (never the default), installed via the gateway. */
  routes: Route[]
}

/** A stable, locally administered unicast MAC for an attachment (a re-ADD gets the same one). */
export function podMac(containerId: string, ifname: string): string {
  const h = hashParts(['mac', containerId, ifname], 12)
  const first = ((parseInt(h.slice(0, 2), 16) & 0xfc) | 0x02).toString(16).padStart(2, '0')
  return [first, ...h.slice(2).match(/../g)!].join(':')
}

export function families(addrs: readonly string[]): Set<4 | 6> {
  return new Set(addrs.map(ipFamily))
}

export function hostScript(w: Wiring, replaceStale: boolean): string {
  const lines: string[] = []
  if (replaceStale) lines.push(`link del ${w.hostIface}`)
  lines.push(`link add ${w.hostIface} mtu ${w.mtu} type veth peer name ${w.ifname} mtu ${w.mtu} address ${w.mac} netns ${w.netns}`)
  if (families(w.addrs).has(6)) lines.push(`addr add ${GW6}/64 dev ${w.hostIface} nodad`)
  lines.push(`link set ${w.hostIface} up`)
  for (const a of w.addrs) lines.push(`route replace ${a} dev ${w.hostIface} scope link`)
  return lines.join('\n') + '\n'
}

export function podScript(w: Wiring): string {
  const fams = families(w.addrs)
  const lines = w.addrs.map((a) => `addr add ${a} dev ${w.ifname}${ipFamily(a) === 6 ? ' nodad' : ''}`)
  lines.push(`link set ${w.ifname} up`)
  if (fams.has(4)) {
    lines.push(`route add ${GW4}/32 dev ${w.ifname} scope link`)
    lines.push(`route add 0.0.0.0/0 via ${GW4} dev ${w.ifname}`)
  }
  if (fams.has(6)) lines.push(`route add ::/0 via ${GW6} dev ${w.ifname}`)
  for (const r of w.routes) {
    const fam = ipFamily(r.dst)
    if (fams.has(fam)) lines.push(`route add ${r.dst} via ${fam === 4 ? GW4 : GW6} dev ${w.ifname}`)
  }
  return lines.join('\n') + '\n'
}

export function hostLinkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`)
}

export function hostMac(name: string): string {
  return readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim()
}

export class IfnameTakenError extends Error {}

/** What the host half reports back: its MAC, for the result. */
export interface HostSide {
  mac: string
}

/** The host half of the wiring and its removal. */
export interface HostLinks {
  /** Which way, for the log: 'netlink' (in the agent) or 'ip' (`ip -batch`, standalone). */
  readonly kind: 'netlink' | 'ip'
  /**
   * Creates the pair with the peer (IFNAME, MTU, MAC) in the pod's namespace, the IPv6
   * gateway on the host half (nodad), brings it up and routes each pod address through it.
   * A stale host veth of the same name (crashed ADD) is replaced. Throws IfnameTakenError
   * when the pod already has an interface named IFNAME.
   */
  wire(w: Wiring): Promise<HostSide>
  /** Deletes the host veth (its peer and every route through it go with it); absent is fine (false). */
  unwire(hostIface: string): Promise<boolean>
}

/**
 * Characters one `ip -batch` word cannot carry: '#' starts a comment anywhere on the
 * line (quoted or not), quotes and backslashes are parsed, whitespace splits, and a
 * newline ends the command (the rest becomes a command of its own).
 */
const NOT_IN_BATCH = /[\s#'"\\\x00-\x1f\x7f]/

/** Why a value cannot go into an `ip -batch` line as one word, if it cannot. */
export function batchWordProblem(value: string): string | undefined {
  return NOT_IN_BATCH.test(value) ? 'may not contain "#", quotes, backslashes, whitespace or control characters' : undefined
}

/** Throws the CNI error for a value `ip -batch` cannot carry (checked by ADD before anything is made). */
export function requireBatchWord(what: string, value: string): void {
  const bad = batchWordProblem(value)
  if (bad) throw new CniError(CNI_CODE.invalidEnv, `${what} ${JSON.stringify(value)} ${bad}`, 'ip -batch, which wires it here, cannot carry these safely')
}

/** The host half by one `ip -batch` process: the standalone plugin's way. */
export function ipHostLinks(exec: Exec): HostLinks {
  return {
    kind: 'ip',
    async wire(w) {
      requireBatchWord('CNI_NETNS', w.netns)
      requireBatchWord('CNI_IFNAME', w.ifname)
      const r = await exec('ip', ['-batch', '-'], { input: hostScript(w, hostLinkExists(w.hostIface)) })
      if (r.code === 0) return { mac: hostMac(w.hostIface) }
      // "File exists" with our host name free means the pod already has an interface of that name
      if (/File exists/.test(r.stderr) && !hostLinkExists(w.hostIface)) {
        throw new IfnameTakenError(`interface ${w.ifname} already exists in ${w.netns}`)
      }
      throw new Error(`ip -batch on the host failed: ${r.stderr.trim()}`)
    },
    async unwire(hostIface) {
      if (!hostLinkExists(hostIface)) return false
      const r = await exec('ip', ['link', 'del', hostIface])
      // a concurrent DEL may have won the race; only a link that is still there is a failure
      if (r.code !== 0 && hostLinkExists(hostIface)) throw new ExecError('ip', ['link', 'del', hostIface], r)
      return true
    },
  }
}

/** Host sysctls: forwarding on, proxy_arp answering for GW4 without the default random delay. */
export function hostSysctls(w: Wiring): void {
  const fams = families(w.addrs)
  if (fams.has(4)) {
    ensureSysctl('net/ipv4/ip_forward', '1')
    ensureSysctl(`net/ipv4/conf/${w.hostIface}/proxy_arp`, '1')
    ensureSysctl(`net/ipv4/neigh/${w.hostIface}/proxy_delay`, '0')
  }
  if (fams.has(6)) {
    ensureSysctl('net/ipv6/conf/all/forwarding', '1')
    ensureSysctl(`net/ipv6/conf/${w.hostIface}/forwarding`, '1')
  }
}

/** Writes only when the value differs: a write to conf/all/forwarding resets every interface. */
function ensureSysctl(key: string, value: string): void {
  const path = `/proc/sys/${key}`
  if (readFileSync(path, 'utf8').trim() !== value) writeFileSync(path, value)
}

/**
 * The pod half, by `ip -batch` inside the pod's namespace whichever way the host half was
 * made: over rtnetlink its address could be set from outside (IFLA_TARGET_NETNSID) but its
 * routes could not (RTM_NEWROUTE names no target namespace), and Node cannot enter the
 * namespace for a socket of its own (shared/netns.ts). So IFNAME must be one batch word.
 */
export async function wirePod(exec: Exec, w: Wiring): Promise<void> {
  requireBatchWord('CNI_IFNAME', w.ifname)
  await ipBatchInNetns(exec, w.netns, podScript(w))
}
