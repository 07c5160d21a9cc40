// Set members in the spelling `ipset save` prints them, so that desired and
// kernel contents compare as plain strings: host bits of a CIDR cleared, a
// full-length prefix dropped, IPv6 compressed the way glibc's inet_ntop does.
// Anything that is not an address, CIDR or address,proto:port throws: a member is written into an `ipset restore` file, so it
// must never carry anything else.
import type { Family, SetType } from './types.ts'

export class MemberError extends Error {
  override name = 'MemberError'
}

const PROTOS = new Set(['tcp', 'udp', 'sctp', 'udplite'])
/** An IPv4 address already in canonical dotted-quad form (no leading zeros): the common case, checked without BigInt. */
const PLAIN_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

export function canonicalMember(type: SetType, family: Family, member: string, where: string): string {
  if (family === 4 && type !== 'hash:ip,port' && PLAIN_V4.test(member)) return member
  const fail = (why: string) => new MemberError(`${where}: member ${JSON.stringify(member)} ${why}`)
  let text = member.trim()
  let nomatch = false
  if (text.endsWith(' nomatch')) {
    if (type !== 'hash:net') throw fail('nomatch is only for hash:net')
    nomatch = true
    text = text.slice(0, -' nomatch'.length).trim()
  }
  let port = ''
  if (type === 'hash:ip,port') {
    const m = /^([^,]+),([a-z]+):(\d{1,5})$/.exec(text)
    if (!m || !PROTOS.has(m[2]) || Number(m[3]) > 65535) throw fail('is not ADDR,PROTO:PORT')
    text = m[1]
    port = `,${m[2]}:${Number(m[3])}`
  }
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const bits = family === 4 ? 32 : 128
  let prefix = bits
  if (slash >= 0) {
    if (!/^\d{1,3}$/.test(text.slice(slash + 1))) throw fail('has a bad prefix length')
    prefix = Number(text.slice(slash + 1))
    if (prefix > bits || (prefix < 1 && type === 'hash:net')) throw fail(`prefix must be 1..${bits}`)
    if (prefix !== bits && type !== 'hash:net') throw fail(`only a single address fits ${type}`)
  }
  const value = family === 4 ? parseV4(addr) : parseV6(addr)
  if (value === undefined) throw fail(`is not an IPv${family} address`)
  const masked = prefix === bits ? value : value & ~((1n << BigInt(bits - prefix)) - 1n)
  const out = family === 4 ? formatV4(masked) : formatV6(masked)
  return (prefix === bits ? out : `${out}/${prefix}`) + port + (nomatch ? ' nomatch' : '')
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let v = 0n
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined
    v = (v << 8n) | BigInt(Number(p))
  }
  return v
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.')
}

function parseV6(s: string): bigint | undefined {
  let text = s.toLowerCase()
  if (text.includes('.')) {
    // trailing dotted quad (::ffff:1.2.3.4): rewrite it as two hex groups
    const cut = text.lastIndexOf(':')
    const v4 = parseV4(text.slice(cut + 1))
    if (v4 === undefined) return undefined
    text = `${text.slice(0, cut + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string) => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0])
  const rest = halves.length === 2 ? groups(halves[1]) : []
  const given = head.length + rest.length
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined
  const words = [...head, ...Array(8 - given).fill('0'), ...rest].map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN))
  if (words.some(Number.isNaN)) return undefined
  return words.reduce((v, w) => (v << 16n) | BigInt(w), 0n)
}

/** RFC 5952 compression as glibc prints it, including its ::a.b.c.d and ::ffff:a.b.c.d forms. */
function formatV6(v: bigint): string {
  const w = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(16 * (7 - i))) & 0xffffn))
  let best = { base: -1, len: 0 }
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && w[j] === 0) j++
    if (j - i > best.len) best = { base: i, len: j - i }
    i = j
  }
  if (best.len < 2) best = { base: -1, len: 0 }
  if (best.base === 0 && (best.len === 6 || (best.len === 5 && w[5] === 0xffff))) {
    const v4 = `${w[6] >> 8}.${w[6] & 255}.${w[7] >> 8}.${w[7] & 255}`
    return best.len === 5 ? `::ffff:${v4}` : `::${v4}`
  }
  if (best.base < 0) return w.map((x) => x.toString(16)).join(':')
  const left = w.slice(0, best.base).map((x) => x.toString(16)).join(':')
  const right = w.slice(best.base + best.len).map((x) => x.toString(16)).join(':')
  return `${left}::${right}`
}
