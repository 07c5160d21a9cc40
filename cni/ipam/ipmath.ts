// IPv4 and IPv6 addresses as BigInt values: parse, format, add, compare,
// contain. Everything the allocator does is arithmetic on these, so one
// representation serves both families.

export type Family = 4 | 6

export interface Ip {
  family: Family
  value: bigint
}

/** A prefix as written; `ip` may have host bits set (see `networkOf`). */
export interface Cidr {
  ip: Ip
  prefix: number
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128)

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/ // no leading zeros: "010" reads as octal in some tools
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let v = 0n
  for (const p of parts) {
    if (!V4_OCTET.test(p) || Number(p) > 255) return undefined
    v = (v << 8n) | BigInt(p)
  }
  return v
}

function parseGroups(s: string, v4Tail: boolean): bigint[] | undefined {
  if (s === '') return []
  const out: bigint[] = []
  const parts = s.split(':')
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]
    if (v4Tail && i === parts.length - 1 && p.includes('.')) {
      // an embedded IPv4 tail (::ffff:10.0.0.1) counts as two groups
      const v4 = parseV4(p)
      if (v4 === undefined) return undefined
      out.push(v4 >> 16n, v4 & 0xffffn)
    } else if (V6_GROUP.test(p)) out.push(BigInt('0x' + p))
    else return undefined
  }
  return out
}

function parseV6(s: string): bigint | undefined {
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const head = parseGroups(halves[0], halves.length === 1)
  const tail = halves.length === 2 ? parseGroups(halves[1], true) : []
  if (!head || !tail) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined
  const groups = [...head, ...Array<bigint>(missing).fill(0n), ...tail]
  return groups.reduce((v, g) => (v << 16n) | g, 0n)
}

export function parseIp(s: string): Ip | undefined {
  if (typeof s !== 'string') return undefined
  if (s.includes(':')) {
    const v = parseV6(s)
    return v === undefined ? undefined : { family: 6, value: v }
  }
  const v = parseV4(s)
  return v === undefined ? undefined : { family: 4, value: v }
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
function formatV6(v: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn))
  let best = { at: -1, len: 1 }
  for (let i = 0; i < 8; ) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > best.len) best = { at: i, len: j - i }
    i = j === i ? i + 1 : j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best.at < 0) return hex.join(':')
  return hex.slice(0, best.at).join(':') + '::' + hex.slice(best.at + best.len).join(':')
}

export function formatIp(ip: Ip): string {
  if (ip.family === 6) return formatV6(ip.value)
  return [24n, 16n, 8n, 0n].map((s) => ((ip.value >> s) & 0xffn).toString()).join('.')
}

export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined
  const slash = s.indexOf('/')
  if (slash < 0) return undefined
  const ip = parseIp(s.slice(0, slash))
  const len = s.slice(slash + 1)
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(len)) return undefined
  const prefix = Number(len)
  return prefix > bitsOf(ip.family) ? undefined : { ip, prefix }
}

/** An address or a prefix: a bare address is its own /32 or /128. */
export function parseIpOrCidr(s: string): Cidr | undefined {
  if (typeof s === 'string' && !s.includes('/')) {
    const ip = parseIp(s)
    return ip && { ip, prefix: bitsOf(ip.family) }
  }
  return parseCidr(s)
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.ip)}/${c.prefix}`

const hostMask = (c: Cidr): bigint => (1n << BigInt(bitsOf(c.ip.family) - c.prefix)) - 1n

export const networkOf = (c: Cidr): Ip => ({ family: c.ip.family, value: c.ip.value & ~hostMask(c) })
export const lastOf = (c: Cidr): Ip => ({ family: c.ip.family, value: c.ip.value | hostMask(c) })
export const hasHostBits = (c: Cidr): boolean => (c.ip.value & hostMask(c)) !== 0n

export function contains(c: Cidr, ip: Ip): boolean {
  return ip.family === c.ip.family && (ip.value & ~hostMask(c)) === networkOf(c).value
}

/** `ip + n`, or undefined when the result leaves the family's address space. */
export function addIp(ip: Ip, n: bigint): Ip | undefined {
  const value = ip.value + n
  if (value < 0n || value >= 1n << BigInt(bitsOf(ip.family))) return undefined
  return { family: ip.family, value }
}

/** Orders IPv4 before IPv6, then by value. */
export function compareIp(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0
}

export const sameIp = (a: Ip, b: Ip): boolean => compareIp(a, b) === 0
