// CHECK: compares what ADD set up with what is there now and reports every
// difference at once (missing interface, wrong address, missing route).
import { readFileSync } from 'node:fs'
import { ipJsonInNetns } from '../shared/netns.ts'
import { readRecord, type WorkloadRecord } from '../shared/record.ts'
import { ipamCheck } from './ipam/index.ts'
import { ipamContext, type Ctx } from './context.ts'
import { CniError, CNI_CODE } from './errors.ts'
import { canonicalV6, ipFamily } from './result.ts'
import { requireVersion } from './version.ts'
import { GW4, GW6, hostLinkExists } from './veth.ts'

/** Plugin-specific code (the spec leaves 100+ to plugins): the attachment drifted from what ADD made. */
export const CHECK_DRIFT_CODE = 100

export async function cmdCheck(ctx: Ctx): Promise<undefined> {
  const { env, conf } = ctx
  requireVersion(conf.cniVersion, '0.4.0', 'CHECK')
  if (!conf.prevResult) throw new CniError(CNI_CODE.invalidConfig, 'CHECK needs prevResult (the result of ADD)')
  const rec = readRecord(conf.stateDir, env.containerId, env.ifname)
  if (!rec) throw new CniError(CNI_CODE.unknownContainer, `no workload record for ${env.containerId}/${env.ifname}`)
  await ipamCheck(ipamContext(ctx))
  const problems = [...checkPrevResult(ctx, rec), ...checkHost(rec), ...(await checkPod(ctx, rec))]
  if (problems.length) throw new CniError(CHECK_DRIFT_CODE, `attachment drifted: ${problems[0]}`, problems.join('; '))
  return undefined
}

function checkPrevResult(ctx: Ctx, rec: WorkloadRecord): string[] {
  const prev = ctx.conf.prevResult!
  const idx = prev.interfaces.findIndex((i) => i.name === ctx.env.ifname && i.sandbox === ctx.env.netns)
  if (idx < 0) return [`prevResult has no interface ${ctx.env.ifname} in ${ctx.env.netns}`]
  const prevIps = prev.ips.filter((ip) => ip.interface === idx).map((ip) => ip.address.split('/')[0])
  const missing = rec.ips.filter((ip) => !prevIps.includes(ip))
  return missing.length ? [`prevResult lacks ${missing.join(', ')}`] : []
}

function checkHost(rec: WorkloadRecord): string[] {
  if (!hostLinkExists(rec.hostIface)) return [`host interface ${rec.hostIface} is missing`]
  const routed = hostRoutes(rec.hostIface)
  return rec.ips.filter((ip) => !routed.has(ip)).map((ip) => `host route ${ip} dev ${rec.hostIface} is missing`)
}

/** Host routes' destinations through a device, read from /proc (no process spawned). */
function hostRoutes(dev: string): Set<string> {
  const out = new Set<string>()
  for (const line of readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)) {
    const f = line.split('\t')
    if (f[0] === dev && f[7] === 'FFFFFFFF') out.add(hexToV4(f[1]))
  }
  for (const line of readFileSync('/proc/net/ipv6_route', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f[9] === dev && f[1] === '80') out.add(hexToV6(f[0]))
  }
  return out
}

function hexToV4(hex: string): string {
  // /proc/net/route writes the address in host (little-endian) byte order
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.')
}

function hexToV6(hex: string): string {
  const groups = hex.match(/..../g)!.map((g) => parseInt(g, 16).toString(16))
  return canonicalV6(groups.join(':'))
}

async function checkPod(ctx: Ctx, rec: WorkloadRecord): Promise<string[]> {
  const { exec, env } = ctx
  const links = (await ipJsonInNetns(exec, env.netns, ['addr', 'show'])) as IpAddrJson[]
  const link = links.find((l) => l.ifname === env.ifname)
  if (!link) return [`interface ${env.ifname} is missing in ${env.netns}`]
  const problems: string[] = []
  if (!link.flags?.includes('UP')) problems.push(`interface ${env.ifname} is down`)
  if (link.address !== rec.mac) problems.push(`interface ${env.ifname} has MAC ${link.address}, expected ${rec.mac}`)
  const have = new Set((link.addr_info ?? []).map((a) => `${canonicalIp(a.local)}/${a.prefixlen}`))
  for (const ip of rec.ips) {
    const want = `${canonicalIp(ip)}/${ipFamily(ip) === 4 ? 32 : 128}`
    if (!have.has(want)) problems.push(`address ${want} is missing on ${env.ifname}`)
  }
  for (const fam of new Set(rec.ips.map(ipFamily))) {
    const routes = (await ipJsonInNetns(exec, env.netns, [`-${fam}`, 'route', 'show', 'default'])) as IpRouteJson[]
    const gw = fam === 4 ? GW4 : GW6
    if (!routes.some((r) => r.gateway === gw && r.dev === env.ifname)) problems.push(`IPv${fam} default route via ${gw} dev ${env.ifname} is missing`)
  }
  return problems
}

function canonicalIp(ip: string): string {
  return ipFamily(ip) === 6 ? canonicalV6(ip) : ip
}

interface IpAddrJson {
  ifname: string
  flags?: string[]
  address?: string
  addr_info?: { local: string; prefixlen: number }[]
}
interface IpRouteJson {
  dst: string
  gateway?: string
  dev?: string
}
