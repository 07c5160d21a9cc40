// IP addresses and CIDRs, parsed strictly and re-formatted canonically.
// Every address that reaches a rule or a set member goes through here, so the
// dataplane only ever sees text this module produced (never the user's string).
import type { Family } from '../dataplane/types.ts'

export interface Addr {
  family: Family
  bytes: Uint8Array // 4 or 16 bytes, network order
}

export interface Cidr extends Addr {
  prefix: number
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

function parseV4Bytes(text: string): number[] | null {
  const parts = text.split('.')
  if (parts.length !== 4) return null
  const out: number[] = []
  for (const p of parts) {
    // Leading zeros are rejected: "010" is octal to some parsers, decimal to others.
    if (!V4_PART.test(p)) return null
    const n = Number(p)
    if (n > 255) return null
    out.push(n)
  }
  return out
}

function parseGroups(text: string): number[] | null {
  if (text === '') return []
  const out: number[] = []
  for (const g of text.split(':')) {
    if (!HEX_GROUP.test(g)) return null
    out.push(parseInt(g, 16))
  }
  return out
}

function parseV6Bytes(text: string): number[] | null {
  let body = text
  let tail: number[] | null = null
  const lastColon = body.lastIndexOf(':')
  if (body.slice(lastColon + 1).includes('.')) {
    // An embedded IPv4 in the last 32 bits (e.g. ::ffff:10.0.0.1): parse it,
    // stand two zero groups in its place, then overwrite them.
    const v4 = parseV4Bytes(body.slice(lastColon + 1))
    if (!v4) return null
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]]
    body = body.slice(0, lastColon + 1) + '0:0'
  }
  const halves = body.split('::')
  if (halves.length > 2) return null
  const head = parseGroups(halves[0])
  const rest = halves.length === 2 ? parseGroups(halves[1]) : []
  if (!head || !rest) return null
  let groups = head
  if (halves.length === 2) {
    const zeros = 8 - head.length - rest.length
    if (zeros < 1) return null
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest]
  }
  if (groups.length !== 8) return null
  if (tail) groups.splice(6, 2, ...tail)
  return groups.flatMap((g) => [g >> 8, g & 0xff])
}

/** Parses an IPv4 or IPv6 address; null for anything else (zones, prefixes, garbage). */
export function parseAddr(text: unknown): Addr | null {
  if (typeof text !== 'string' || text.length > 45) return null
  if (text.includes(':')) {
    const b = parseV6Bytes(text)
    return b ? { family: 6, bytes: Uint8Array.from(b) } : null
  }
  const b = parseV4Bytes(text)
  return b ? { family: 4, bytes: Uint8Array.from(b) } : null
}

/**
 * Parses "addr/len". Host bits are cleared (10.0.0.1/24 → 10.0.0.0/24), as
 * the API server's ParseCIDR-based validation accepted such values.
 */
export function parseCidr(text: unknown): Cidr | null {
  if (typeof text !== 'string') return null
  const slash = text.indexOf('/')
  if (slash < 0) return null
  const addr = parseAddr(text.slice(0, slash))
  const lenText = text.slice(slash + 1)
  if (!addr || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null
  const prefix = Number(lenText)
  if (prefix > addr.bytes.length * 8) return null
  return { family: addr.family, bytes: maskBytes(addr.bytes, prefix), prefix }
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    out[i] = bytes[i] & ((0xff << (8 - bits)) & 0xff)
  }
  return out
}

export function formatAddr(a: Addr): string {
  if (a.family === 4) return Array.from(a.bytes).join('.')
  const groups: number[] = []
  for (let i = 0; i < 16; i += 2) groups.push((a.bytes[i] << 8) | a.bytes[i + 1])
  // RFC 5952: compress the longest run (≥2) of zero groups, the first on a tie.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j === i ? i + 1 : j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

export function formatCidr(c: Cidr): string {
  return `${formatAddr(c)}/${c.prefix}`
}

/** Canonical text of an address string, or null if it is not one. */
export function canonicalAddr(text: unknown): { family: Family; text: string } | null {
  const a = parseAddr(text)
  return a ? { family: a.family, text: formatAddr(a) } : null
}

/** True when `inner` is a strict subset of `outer` (same family, longer prefix, inside). */
export function strictlyContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix <= outer.prefix) return false
  const masked = maskBytes(inner.bytes, outer.prefix)
  return masked.every((b, i) => b === outer.bytes[i])
}

/**
 * ipset hash:net cannot hold a /0, so a /0 becomes its two /1 halves, which
 * cover exactly the same addresses.
 */
export function storableNets(c: Cidr): Cidr[] {
  if (c.prefix > 0) return [c]
  const low = new Uint8Array(c.bytes.length)
  const high = new Uint8Array(c.bytes.length)
  high[0] = 0x80
  return [
    { family: c.family, bytes: low, prefix: 1 },
    { family: c.family, bytes: high, prefix: 1 },
  ]
}

/** `inner` lies within `outer` (same family, at least as long a prefix). */
function within(inner: Cidr, outer: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false
  const masked = maskBytes(inner.bytes, outer.prefix)
  return masked.every((b, i) => b === outer.bytes[i])
}

function width(family: Family): number {
  return family === 4 ? 32 : 128
}

/** 2^k for every block size a range can need. */
const POW: bigint[] = Array.from({ length: 130 }, (_, k) => 1n << BigInt(k))

function toBig(bytes: Uint8Array): bigint {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  return n
}

function fromBig(n: bigint, family: Family): Uint8Array {
  const out = new Uint8Array(width(family) / 8)
  for (let i = out.length - 1; i >= 0; i--, n >>= 8n) out[i] = Number(n & 0xffn)
  return out
}

/** The addresses of a CIDR as a half-open range [start, end). */
function span(c: Cidr): [bigint, bigint] {
  const start = toBig(c.bytes)
  return [start, start + POW[width(c.family) - c.prefix]]
}

/**
 * The largest aligned blocks covering [lo, hi), in address order, appended to
 * `out`. A block of 2^k addresses may start at lo when lo is a multiple of 2^k
 * and it fits before hi. Along a range the best k rises then falls, so it is
 * tracked rather than searched: O(width) steps per range, plus one per block.
 */
function appendBlocks(out: Cidr[], lo: bigint, hi: bigint, family: Family): void {
  const bits = width(family)
  let k = 0
  while (lo < hi) {
    // lo is a multiple of 2^k here; it is one of 2^(k+1) when bit k is clear.
    while (k < bits && (lo & POW[k]) === 0n && lo + POW[k + 1] <= hi) k++
    while (lo + POW[k] > hi) k--
    out.push(...storableNets({ family, bytes: fromBig(lo, family), prefix: bits - k }))
    lo += POW[k]
  }
}

/**
 * The addresses of `c` outside every hole, as disjoint CIDRs (storable: no /0),
 * in address order, each as large as it can be.
 * An ipBlock with `except` becomes plain positive entries this way, so it can
 * share a set with other peers: a set mixing positive and `nomatch` entries
 * answers by its most specific entry, which is not the union of the peers.
 * Holes are sorted and the gaps between them swept once, so a policy with
 * thousands of `except` entries costs n·log n, not n² (issue 8: a bisection
 * that filtered every hole at every step let one policy stall the agent).
 */
export function subtractNets(c: Cidr, holes: Cidr[]): Cidr[] {
  if (holes.some((h) => within(c, h))) return []
  const inside = holes.filter((h) => within(h, c)).map(span)
  inside.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const [start, end] = span(c)
  const out: Cidr[] = []
  let cursor = start
  for (const [lo, hi] of inside) {
    if (lo > cursor) appendBlocks(out, cursor, lo, c.family)
    if (hi > cursor) cursor = hi
  }
  appendBlocks(out, cursor, end, c.family)
  return out
}

/** A CIDR as ipset prints a hash:net member: a whole-address prefix as the bare address. */
export function formatNet(c: Cidr): string {
  return c.prefix === (c.family === 4 ? 32 : 128) ? formatAddr(c) : formatCidr(c)
}
