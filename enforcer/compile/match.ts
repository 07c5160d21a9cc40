// Builders for the `match` / `action` tokens of a Rule. Every token comes from
// a validated value: interface names checked here, set and chain names from
// shared/names.ts, ports as integers, marks as formatted numbers. No function
// here accepts free text from a Kubernetes object except `comment`, which
// strips everything outside a small safe alphabet.
import type { Rule } from '../dataplane/types.ts'

export type Proto = 'tcp' | 'udp' | 'sctp'

/** Workload interfaces: the plugin names them prefix + hex. */
const WORKLOAD_IFACE = /^[a-z0-9]{1,15}$/
/** Any interface a rule names: also the overlay device (`vxlan.wren`). */
const IFACE = /^[a-z0-9][a-z0-9.]{0,14}$/
const COMMENT_UNSAFE = /[^A-Za-z0-9 ./:_=,-]/g
/** iptables' comment match holds at most 255 bytes. */
const COMMENT_MAX = 240

/** Keeps only `[A-Za-z0-9 ./:_=,-]`, so a comment can never carry quotes, newlines or options. */
export function comment(text: string): string {
  return text.replace(COMMENT_UNSAFE, '').slice(0, COMMENT_MAX)
}

export function rule(match: string[], action: string[], text: string): Rule {
  return { match, action, comment: comment(text) }
}

export function validIface(name: string, prefix: string): boolean {
  return WORKLOAD_IFACE.test(name) && name.startsWith(prefix) && name.length > prefix.length
}

function iface(name: string): string {
  if (!IFACE.test(name)) throw new Error(`refusing unvalidated interface name ${JSON.stringify(name)}`)
  return name
}

export const inIface = (name: string): string[] => ['-i', iface(name)]
export const outIface = (name: string): string[] => ['-o', iface(name)]
/** `wren+` is iptables' wildcard for every interface starting with the prefix. */
export const inPrefix = (prefix: string): string[] => ['-i', iface(prefix) + '+']
export const outPrefix = (prefix: string): string[] => ['-o', iface(prefix) + '+']

export const ctEstablished = ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED']
export const ctInvalid = ['-m', 'conntrack', '--ctstate', 'INVALID']
export const rpfilterInvert = ['-m', 'rpfilter', '--invert']

export const ACCEPT = ['-j', 'ACCEPT']
export const DROP = ['-j', 'DROP']
export const RETURN = ['-j', 'RETURN']
export const jump = (chain: string): string[] => ['-j', chain]
export const goto = (chain: string): string[] => ['-g', chain]

/** The accept mark as iptables expects it; the config must name a single bit. */
export function markBits(mark: number): string {
  if (!Number.isInteger(mark) || mark <= 0 || mark > 0xffffffff || (mark & (mark - 1)) !== 0) {
    throw new Error(`acceptMark ${mark} must be a single bit of a 32-bit mark`)
  }
  return '0x' + mark.toString(16)
}

export function markIsSet(mark: number): string[] {
  const m = markBits(mark)
  return ['-m', 'mark', '--mark', `${m}/${m}`]
}

export function setMark(mark: number): string[] {
  const m = markBits(mark)
  return ['-j', 'MARK', '--set-xmark', `${m}/${m}`]
}

export function clearMark(mark: number): string[] {
  return ['-j', 'MARK', '--set-xmark', `0x0/${markBits(mark)}`]
}

/** `dirs` names which packet fields feed the set lookup: `src`, `dst`, or `dst,dst` for ip,port sets. */
export function inSet(setName: string, dirs: 'src' | 'dst' | 'dst,dst'): string[] {
  return ['-m', 'set', '--match-set', setName, dirs]
}

/** Not in the set: `! --match-set`. */
export function notInSet(setName: string, dirs: 'src' | 'dst'): string[] {
  return ['-m', 'set', '!', '--match-set', setName, dirs]
}

export const MASQUERADE = ['-j', 'MASQUERADE']

function portNumber(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`refusing port ${n}`)
  return String(n)
}

/** `-p tcp`, optionally with a destination port or an inclusive range `N:M`. */
export function protoPorts(proto: Proto, range?: { from: number; to: number }): string[] {
  const out = ['-p', proto]
  if (!range) return out
  const dport = range.from === range.to ? portNumber(range.from) : `${portNumber(range.from)}:${portNumber(range.to)}`
  return [...out, '-m', proto, '--dport', dport]
}

/** ICMPv6 neighbour discovery, which an IPv6 pod needs to reach its gateway at all. */
export function icmp6Type(type: number): string[] {
  return ['-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', String(type)]
}
