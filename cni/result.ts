// Results: one internal shape (the 1.1.0 one) and its rendering per spec
// version. 0.3.x/0.4.0 ips carry "version": "4"|"6"; 1.1.0 adds route and
// interface fields that older versions do not define, so they are dropped.
import { CniError, CNI_CODE } from './errors.ts'
import { atLeast, type SpecVersion } from './version.ts'

export interface Iface {
  name: string
  mac?: string
  mtu?: number
  sandbox?: string
  socketPath?: string
  pciID?: string
}
export interface IpConfig {
  address: string
  gateway?: string
  /** Index into interfaces. */
  interface?: number
}
export interface Route {
  dst: string
  gw?: string
  mtu?: number
  advmss?: number
  priority?: number
  table?: number
  scope?: number
}
export interface Dns {
  nameservers?: string[]
  domain?: string
  search?: string[]
  options?: string[]
}
export interface Result {
  interfaces: Iface[]
  ips: IpConfig[]
  routes: Route[]
  dns?: Dns
}

const IFACE_11 = ['mtu', 'socketPath', 'pciID'] as const
const ROUTE_11 = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const

export function ipFamily(cidrOrIp: string): 4 | 6 {
  return cidrOrIp.includes(':') ? 6 : 4
}

/** Compresses the longest run of zero groups, the way `ip` and the records write addresses. */
export function canonicalV6(addr: string): string {
  const parts = expandV6(addr)
  let best = [-1, 0]
  for (let i = 0; i < 8; ) {
    let j = i
    while (j < 8 && parts[j] === '0') j++
    if (j - i > best[1] && j - i > 1) best = [i, j - i]
    i = j === i ? i + 1 : j
  }
  if (best[0] < 0) return parts.join(':')
  return `${parts.slice(0, best[0]).join(':')}::${parts.slice(best[0] + best[1]).join(':')}`
}

function expandV6(addr: string): string[] {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0')
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16).toString(16))
}

/** The result as the given version writes it. */
export function renderResult(r: Result, version: SpecVersion): Record<string, unknown> {
  const v11 = atLeast(version, '1.1.0')
  const legacy = !atLeast(version, '1.0.0')
  const out: Record<string, unknown> = { cniVersion: version }
  if (r.interfaces.length) out.interfaces = r.interfaces.map((i) => (v11 ? { ...i } : omit(i, IFACE_11)))
  out.ips = r.ips.map((ip) => (legacy ? { version: String(ipFamily(ip.address)), ...ip } : { ...ip }))
  if (r.routes.length) out.routes = r.routes.map((rt) => (v11 ? { ...rt } : omit(rt, ROUTE_11)))
  out.dns = r.dns ? { ...r.dns } : {}
  return out
}

function omit<T extends object>(o: T, keys: readonly string[]): Partial<T> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (!keys.includes(k)) out[k] = v
  return out as Partial<T>
}

/** Reads a result of any supported version (e.g. prevResult) into the internal shape. */
export function parseResult(raw: unknown, what = 'prevResult'): Result {
  const bad = (why: string) => new CniError(CNI_CODE.decodeFailure, `${what} is malformed: ${why}`)
  if (!isObject(raw)) throw bad('not an object')
  const interfaces = arrayOf(raw.interfaces, 'interfaces', bad).map((i, n) => {
    if (!isObject(i) || typeof i.name !== 'string') throw bad(`interfaces[${n}] has no name`)
    return { ...i } as unknown as Iface
  })
  const ips = arrayOf(raw.ips, 'ips', bad).map((ip, n) => {
    if (!isObject(ip) || typeof ip.address !== 'string' || !ip.address.includes('/')) throw bad(`ips[${n}].address is not a CIDR`)
    if (ip.interface !== undefined && (typeof ip.interface !== 'number' || ip.interface < 0 || ip.interface >= interfaces.length)) {
      throw bad(`ips[${n}].interface is not an index into interfaces`)
    }
    const { version: _v, ...rest } = ip
    return rest as unknown as IpConfig
  })
  const routes = arrayOf(raw.routes, 'routes', bad).map((rt, n) => {
    if (!isObject(rt) || typeof rt.dst !== 'string') throw bad(`routes[${n}] has no dst`)
    return { ...rt } as unknown as Route
  })
  const dns = isObject(raw.dns) && Object.keys(raw.dns).length ? (raw.dns as Dns) : undefined
  return { interfaces, ips, routes, dns }
}

function arrayOf(v: unknown, name: string, bad: (why: string) => CniError): unknown[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw bad(`${name} is not a list`)
  return v
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Appends `mine` after `prev`, shifting mine's interface indexes past prev's interfaces. */
export function chainResults(prev: Result | undefined, mine: Result): Result {
  if (!prev) return mine
  const shift = prev.interfaces.length
  return {
    interfaces: [...prev.interfaces, ...mine.interfaces],
    ips: [...prev.ips, ...mine.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + shift }))],
    routes: [...prev.routes, ...mine.routes],
    dns: mine.dns ?? prev.dns,
  }
}
