// Rules and sets as data → `iptables-restore` and `ipset restore` text, in one
// place. Pure: no I/O.
//
// Every rule carries `-m comment --comment "wren:HASH; <comment>"`. HASH is
// taken over the rule's tokens, its sanitised comment and its occurrence index
// among identical rules of the same chain, so the writer compares kernel and
// desired state by reading hashes back instead of parsing rule text (which
// iptables-save reorders and normalises).
//
// The renderer is the last line of defence against a compiler bug injecting
// something into a restore file: a token outside a strict alphabet, or one
// that would start a second command, throws instead of being quoted.
import { hash } from 'node:crypto'
import { CHAIN_MAX, OWNER_PREFIX, SET_MAX } from '../../shared/names.ts'
import type { Family, IpSet, Rule, SetType } from './types.ts'
import { canonicalMember } from './members.ts'

export const HASH_LEN = 16
/** xt_comment keeps 256 bytes including the terminating NUL. */
export const COMMENT_MAX = 255
export const HASH_PREFIX = `${OWNER_PREFIX}:`

/** Letters, digits and the punctuation iptables arguments need ('wren+', '0x1/0x1', 'RELATED,ESTABLISHED', '!'). */
const SAFE_TOKEN = /^[A-Za-z0-9_.:/,+!-]{1,128}$/
/** Tokens that would start another command or smuggle a second comment. */
const FORBIDDEN_TOKENS = new Set([
  '-A', '--append', '-I', '--insert', '-D', '--delete', '-R', '--replace', '-F', '--flush', '-X', '--delete-chain',
  '-N', '--new-chain', '-P', '--policy', '-E', '--rename-chain', '-Z', '--zero', '-L', '--list', '-S', '--list-rules',
  '--comment', 'COMMIT',
])
const CHAIN_NAME = /^[A-Za-z0-9_.+-]+$/
const SET_NAME = /^[A-Za-z0-9_.:~-]+$/
const COMMENT_UNSAFE = /[^A-Za-z0-9 _.:/,+=@()<>[\]-]/g

export class RenderError extends Error {
  override name = 'RenderError'
}

export function checkToken(token: string, where: string): string {
  if (!SAFE_TOKEN.test(token)) throw new RenderError(`${where}: unsafe token ${JSON.stringify(token)}`)
  if (FORBIDDEN_TOKENS.has(token)) throw new RenderError(`${where}: token ${token} is not allowed in a rule`)
  return token
}

export function checkChainName(name: string): string {
  if (!name.startsWith(OWNER_PREFIX) || name.length > CHAIN_MAX || !CHAIN_NAME.test(name))
    throw new RenderError(`bad chain name ${JSON.stringify(name)}: must start with ${OWNER_PREFIX}, at most ${CHAIN_MAX} safe characters`)
  return name
}

export function checkSetName(name: string): string {
  if (!name.startsWith(OWNER_PREFIX) || name.length > SET_MAX || !SET_NAME.test(name))
    throw new RenderError(`bad set name ${JSON.stringify(name)}: must start with ${OWNER_PREFIX}, at most ${SET_MAX} safe characters`)
  return name
}

/** Comment text reduced to characters that survive restore quoting; newlines and runs of blanks become one space. */
export function sanitiseComment(comment: string): string {
  return comment.replace(/\s+/g, ' ').replace(COMMENT_UNSAFE, '_').trim()
}

/** The full comment text: "wren:HASH; comment", cut to what the kernel keeps. */
export function commentText(hash: string, comment: string): string {
  const clean = sanitiseComment(comment)
  const text = clean ? `${HASH_PREFIX}${hash}; ${clean}` : `${HASH_PREFIX}${hash}`
  return text.length > COMMENT_MAX ? text.slice(0, COMMENT_MAX).trimEnd() : text
}

/**
 * The same digest as shared/names.ts hashParts (SHA-256 of the NUL-terminated
 * parts, hex, cut), computed natively: a cold apply hashes every rule, and the
 * plain-JS SHA-256 there (kept for the CNI plugin's start-up) costs ~10x more.
 * A collision-resistant hash matters: a rule whose hash equals that of the rule
 * the kernel holds would never be rewritten.
 */
function ruleDigest(parts: readonly string[], hexLen: number): string {
  return hash('sha256', parts.map((p) => p + '\0').join('')).slice(0, hexLen)
}

/**
 * One hash per rule. Identical rules in one chain get distinct hashes through
 * their occurrence index, so the chain's hash list identifies its content in order.
 */
export function ruleHashes(chain: string, rules: readonly Rule[]): string[] {
  const seen = new Map<string, number>()
  return rules.map((r, i) => {
    const where = `chain ${chain} rule ${i}`
    if (r.action.length === 0) throw new RenderError(`${where}: empty action`)
    for (const t of r.match) checkToken(t, where)
    for (const t of r.action) checkToken(t, where)
    const key = ruleDigest([...r.match, '\x01', ...r.action, '\x01', sanitiseComment(r.comment)], 32)
    const n = seen.get(key) ?? 0
    seen.set(key, n + 1)
    return n === 0 ? key.slice(0, HASH_LEN) : ruleDigest([key, String(n)], HASH_LEN)
  })
}

/** `-A chain <match> -m comment --comment "wren:HASH; …" <action>` (tokens already checked by ruleHashes). */
export function renderRule(verb: string, chain: string, rule: Rule, hash: string): string {
  const parts = [verb, chain, ...rule.match, '-m', 'comment', '--comment', `"${commentText(hash, rule.comment)}"`, ...rule.action]
  return parts.join(' ')
}

export interface RenderedChain {
  name: string
  hashes: string[]
  /** `-A name …` lines in order. */
  lines: string[]
}

export function renderChain(name: string, rules: readonly Rule[]): RenderedChain {
  checkChainName(name)
  const hashes = ruleHashes(name, rules)
  return { name, hashes, lines: rules.map((r, i) => renderRule('-A', name, r, hashes[i])) }
}

// ---- ipset ----

export function ipsetFamily(family: Family): 'inet' | 'inet6' {
  return family === 4 ? 'inet' : 'inet6'
}

export function renderSetCreate(name: string, type: SetType, family: Family, maxelem: number): string {
  checkSetName(name)
  if (!['hash:ip', 'hash:net', 'hash:ip,port'].includes(type)) throw new RenderError(`set ${name}: unsupported type ${type}`)
  if (!Number.isInteger(maxelem) || maxelem < 1) throw new RenderError(`set ${name}: bad maxelem ${maxelem}`)
  return `create ${name} ${type} family ${ipsetFamily(family)} maxelem ${maxelem}`
}

export function renderMember(verb: 'add' | 'del', name: string, member: string): string {
  return `${verb} ${name} ${member}`
}

/** Desired members in the kernel's own spelling, so set contents compare textually with `ipset save`. */
export function canonicalMembers(set: IpSet): Set<string> {
  checkSetName(set.name)
  const out = new Set<string>()
  for (const m of set.members) out.add(canonicalMember(set.type, set.family, m, `set ${set.name}`))
  return out
}
