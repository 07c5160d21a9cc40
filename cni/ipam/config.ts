// The built-in allocator's configuration (ipam.type "wren"), shaped like
// host-local's: validated in one pass that reports every problem at once.
//
// Error codes: any invalid value is CNI code 7 (invalid config), and unknown
// keys found alongside it are listed in the same error. When unknown keys are
// the only problem the code is 2 (unsupported field): the config is otherwise
// sound but names something wren does not implement (often a typo).
import { isAbsolute, join } from 'node:path'
import { CniError, CNI_CODE } from '../errors.ts'
import {
  addIp, bitsOf, compareIp, contains, formatCidr, formatIp, hasHostBits, lastOf, networkOf, parseCidr, parseIp, parseIpOrCidr,
  type Cidr, type Ip,
} from './ipmath.ts'

/** One subnet and the addresses in it that may be handed out: [first, last], never its network or broadcast address. */
export interface Range {
  subnet: Cidr
  first: Ip
  last: Ip
  gateway?: Ip
}

export interface Dns {
  nameservers?: string[]
  domain?: string
  search?: string[]
  options?: string[]
}

export interface BuiltinConfig {
  /** Each set yields one address per attachment; its ranges share a family. */
  rangeSets: Range[][]
  exclude: Cidr[]
  routes: { dst: string; gw?: string }[]
  dns?: Dns
  dataDir: string
}

const IPAM_KEYS = ['type', 'ranges', 'exclude', 'routes', 'dataDir', 'dns']
const RANGE_KEYS = ['subnet', 'rangeStart', 'rangeEnd', 'gateway']
const ROUTE_KEYS = ['dst', 'gw']
const DNS_KEYS = ['nameservers', 'domain', 'search', 'options']

class Problems {
  invalid: string[] = []
  unknown: string[] = []
  keys(obj: Record<string, unknown>, allowed: string[], where: string): void {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) this.unknown.push(`${where}: unknown key ${JSON.stringify(k)}`)
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Subnets below /31 (/127) lose their first and last address; /31 and /32 are point-to-point and keep both. */
function usable(subnet: Cidr): [Ip, Ip] {
  const net = networkOf(subnet)
  const last = lastOf(subnet)
  if (subnet.prefix >= bitsOf(subnet.ip.family) - 1) return [net, last]
  return [addIp(net, 1n)!, addIp(last, -1n)!]
}

function optionalIp(raw: unknown, subnet: Cidr, what: string, p: Problems): Ip | undefined {
  if (raw === undefined) return undefined
  const ip = parseIp(raw as string)
  if (!ip) p.invalid.push(`${what} ${JSON.stringify(raw)} is not an IP address`)
  else if (!contains(subnet, ip)) p.invalid.push(`${what} ${formatIp(ip)} is outside subnet ${formatCidr(subnet)}`)
  else return ip
  return undefined
}

function parseRange(raw: unknown, where: string, p: Problems): Range | undefined {
  if (!isObject(raw)) return void p.invalid.push(`${where} must be an object with a "subnet"`)
  p.keys(raw, RANGE_KEYS, where)
  const subnet = parseCidr(raw.subnet as string)
  if (!subnet) return void p.invalid.push(`${where}.subnet ${JSON.stringify(raw.subnet)} is not a CIDR`)
  if (hasHostBits(subnet)) {
    const fixed = formatCidr({ ip: networkOf(subnet), prefix: subnet.prefix })
    return void p.invalid.push(`${where}.subnet ${formatCidr(subnet)} has host bits set (did you mean ${fixed}?)`)
  }
  const start = optionalIp(raw.rangeStart, subnet, `${where}.rangeStart`, p)
  const end = optionalIp(raw.rangeEnd, subnet, `${where}.rangeEnd`, p)
  const gateway = optionalIp(raw.gateway, subnet, `${where}.gateway`, p)
  const [lo, hi] = usable(subnet)
  const first = start && compareIp(start, lo) > 0 ? start : lo
  const last = end && compareIp(end, hi) < 0 ? end : hi
  if (compareIp(first, last) > 0) {
    return void p.invalid.push(`${where} holds no usable address between ${formatIp(first)} and ${formatIp(last)}`)
  }
  return { subnet, first, last, gateway }
}

function parseRangeSets(raw: unknown, p: Problems): Range[][] {
  if (!Array.isArray(raw) || raw.length === 0) {
    p.invalid.push('ipam.ranges must be a non-empty list of range sets, e.g. [[{"subnet": "10.1.0.0/24"}]]')
    return []
  }
  return raw.map((set, i) => {
    if (!Array.isArray(set) || set.length === 0) return void p.invalid.push(`ipam.ranges[${i}] must be a non-empty list of ranges`)
    const ranges = set.map((r, j) => parseRange(r, `ipam.ranges[${i}][${j}]`, p))
    if (ranges.some((r) => !r)) return undefined
    const families = new Set(ranges.map((r) => r!.subnet.ip.family))
    if (families.size > 1) return void p.invalid.push(`ipam.ranges[${i}] mixes IPv4 and IPv6 (use one range set per family)`)
    return ranges as Range[]
  }).filter((s): s is Range[] => s !== undefined)
}

/** Two range sets sharing an address would hand it out twice; so would two ranges of one set. */
function checkOverlaps(sets: Range[][], p: Problems): void {
  const all = sets.flatMap((set, i) => set.map((r, j) => ({ r, name: `ipam.ranges[${i}][${j}]` })))
  for (let a = 0; a < all.length; a++) {
    for (let b = a + 1; b < all.length; b++) {
      const x = all[a].r
      const y = all[b].r
      if (x.first.family !== y.first.family) continue
      if (compareIp(x.first, y.last) <= 0 && compareIp(y.first, x.last) <= 0) {
        p.invalid.push(`${all[a].name} (${formatCidr(x.subnet)}) overlaps ${all[b].name} (${formatCidr(y.subnet)})`)
      }
    }
  }
}

function parseExclude(raw: unknown, p: Problems): Cidr[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) {
    p.invalid.push('ipam.exclude must be a list of IPs or CIDRs')
    return []
  }
  const out: Cidr[] = []
  raw.forEach((e, i) => {
    const c = parseIpOrCidr(e)
    if (c) out.push(c)
    else p.invalid.push(`ipam.exclude[${i}] ${JSON.stringify(e)} is neither an IP nor a CIDR`)
  })
  return out
}

function parseRoutes(raw: unknown, p: Problems): { dst: string; gw?: string }[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) {
    p.invalid.push('ipam.routes must be a list of {dst, gw?}')
    return []
  }
  const out: { dst: string; gw?: string }[] = []
  raw.forEach((r, i) => {
    const where = `ipam.routes[${i}]`
    if (!isObject(r)) return void p.invalid.push(`${where} must be an object with a "dst"`)
    p.keys(r, ROUTE_KEYS, where)
    const dst = parseCidr(r.dst as string)
    const gw = r.gw === undefined ? undefined : parseIp(r.gw as string)
    if (!dst) p.invalid.push(`${where}.dst ${JSON.stringify(r.dst)} is not a CIDR`)
    if (r.gw !== undefined && !gw) p.invalid.push(`${where}.gw ${JSON.stringify(r.gw)} is not an IP address`)
    if (dst && gw && dst.ip.family !== gw.family) p.invalid.push(`${where}: dst and gw are of different IP families`)
    if (dst && (r.gw === undefined || gw)) out.push(gw ? { dst: formatCidr(dst), gw: formatIp(gw) } : { dst: formatCidr(dst) })
  })
  return out
}

function parseDns(raw: unknown, p: Problems): Dns | undefined {
  if (raw === undefined) return undefined
  if (!isObject(raw)) return void p.invalid.push('ipam.dns must be an object')
  p.keys(raw, DNS_KEYS, 'ipam.dns')
  const strings = (k: string) => Array.isArray(raw[k]) && (raw[k] as unknown[]).every((s) => typeof s === 'string')
  for (const k of ['nameservers', 'search', 'options']) {
    if (raw[k] !== undefined && !strings(k)) p.invalid.push(`ipam.dns.${k} must be a list of strings`)
  }
  if (raw.domain !== undefined && typeof raw.domain !== 'string') p.invalid.push('ipam.dns.domain must be a string')
  for (const [i, ns] of ((strings('nameservers') ? raw.nameservers : []) as string[]).entries()) {
    if (!parseIp(ns)) p.invalid.push(`ipam.dns.nameservers[${i}] ${JSON.stringify(ns)} is not an IP address`)
  }
  return raw as Dns
}

/** Validates ipam config for the built-in allocator; throws one CniError naming every problem. */
export function parseBuiltinConfig(ipam: Record<string, unknown>, stateDir: string): BuiltinConfig {
  const p = new Problems()
  p.keys(ipam, IPAM_KEYS, 'ipam')
  const rangeSets = parseRangeSets(ipam.ranges, p)
  checkOverlaps(rangeSets, p)
  const exclude = parseExclude(ipam.exclude, p)
  const routes = parseRoutes(ipam.routes, p)
  const dns = parseDns(ipam.dns, p)
  if (ipam.dataDir !== undefined && (typeof ipam.dataDir !== 'string' || !isAbsolute(ipam.dataDir))) {
    p.invalid.push(`ipam.dataDir ${JSON.stringify(ipam.dataDir)} must be an absolute path`)
  }
  const all = [...p.invalid, ...p.unknown]
  if (all.length) {
    const code = p.invalid.length ? CNI_CODE.invalidConfig : CNI_CODE.unsupportedField
    throw new CniError(code, `invalid wren ipam config: ${all[0]}${all.length > 1 ? ` (and ${all.length - 1} more)` : ''}`, all.join('; '))
  }
  return { rangeSets, exclude, routes, dns, dataDir: (ipam.dataDir as string | undefined) ?? join(stateDir, 'ipam') }
}
