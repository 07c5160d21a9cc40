// The pod's wiring: a veth pair, the host half routed (Calico style, no
// bridge) and the pod half addressed. Two processes do all of it: one
// `ip -batch` on the host and one inside the pod's namespace. Scripts are
// built by pure functions so they can be tested without a kernel.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { ExecError, type Exec } from '../shared/exec.ts'
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

/** Creates the pair and the host half. A stale host veth of the same name (crashed ADD) is replaced. */
export async function wireHost(exec: Exec, w: Wiring): Promise<void> {
  const r = await exec('ip', ['-batch', '-'], { input: hostScript(w, hostLinkExists(w.hostIface)) })
  if (r.code === 0) return
  // "File exists" with our host name free means the pod already has an interface of that name
  if (/File exists/.test(r.stderr) && !hostLinkExists(w.hostIface)) {
    throw new IfnameTakenError(`interface ${w.ifname} already exists in ${w.netns}`)
  }
  throw new Error(`ip -batch on the host failed: ${r.stderr.trim()}`)
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

export async function wirePod(exec: Exec, w: Wiring): Promise<void> {
  await ipBatchInNetns(exec, w.netns, podScript(w))
}

/** Deletes the host veth (its peer and every route through it go with it); absent is fine. */
export async function unwireHost(exec: Exec, hostIface: string): Promise<boolean> {
  if (!hostLinkExists(hostIface)) return false
  const r = await exec('ip', ['link', 'del', hostIface])
  // a concurrent DEL may have won the race; only a link that is still there is a failure
  if (r.code !== 0 && hostLinkExists(hostIface)) throw new ExecError('ip', ['link', 'del', hostIface], r)
  return true
}
