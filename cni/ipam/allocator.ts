// The built-in allocator: picks one address per range set, round-robin from
// the last one handed out, and turns reservations into an IPAM result.
// All the state lives in the reservation files (see store.ts); this module
// only decides which address to try next.
//
// Exhaustion is CNI code 11 (try again later): the spec has no dedicated
// code, and a full range frees up as pods are deleted, so the runtime's retry
// is the right reaction. STATUS reports the same condition as code 50.
import { CniError, CNI_CODE } from '../errors.ts'
import type { Logger } from '../../shared/log.ts'
import type { BuiltinConfig, Range } from './config.ts'
import { bitsOf, compareIp, contains, formatCidr, formatIp, lastOf, parseIp, type Cidr, type Ip } from './ipmath.ts'
import { claim, ensureDir, owns, readHint, release, scan, writeHint, type Owner } from './store.ts'

export interface Reservation {
  set: number
  ip: Ip
  range: Range
}

const next = (ip: Ip, by = 1n): Ip => ({ family: ip.family, value: ip.value + by })
const within = (r: Range, ip: Ip): boolean => compareIp(r.first, ip) <= 0 && compareIp(ip, r.last) <= 0

/** The addresses from..to that are neither excluded nor a gateway; an excluded prefix is skipped in one step. */
function* walk(from: Ip, to: Ip, skip: Cidr[]): Generator<Ip> {
  let ip = from
  while (compareIp(ip, to) <= 0) {
    const hit = skip.find((c) => contains(c, ip))
    if (hit) ip = next(lastOf(hit))
    else {
      yield ip
      ip = next(ip)
    }
  }
}

/** Every allocatable address of a range set once, starting just after `hint` and wrapping around. */
export function* candidates(set: Range[], exclude: Cidr[], hint?: Ip): Generator<Ip> {
  const gateways = set.flatMap((r) => (r.gateway ? [{ ip: r.gateway, prefix: bitsOf(r.gateway.family) }] : []))
  const skip = [...exclude, ...gateways]
  const at = hint ? set.findIndex((r) => within(r, hint)) : -1
  if (at < 0) {
    for (const r of set) yield* walk(r.first, r.last, skip)
    return
  }
  const order = [...set.slice(at + 1), ...set.slice(0, at)]
  yield* walk(next(hint!), set[at].last, skip)
  for (const r of order) yield* walk(r.first, r.last, skip)
  yield* walk(set[at].first, hint!, skip)
}

const describe = (set: Range[]): string => set.map((r) => formatCidr(r.subnet)).join(', ')

function exhausted(set: Range[]): CniError {
  return new CniError(CNI_CODE.tryAgainLater, `no free address in range ${describe(set)}`, 'every allocatable address is reserved or excluded')
}

/** The attachment's reservations, at most one per range set (the lowest if an old config left several). */
export function held(cfg: BuiltinConfig, all: Map<string, Owner>, owner: Owner): Reservation[] {
  const mine = [...all].filter(([, o]) => owns(owner)(o)).map(([name]) => parseIp(name)!).sort(compareIp)
  const out: Reservation[] = []
  cfg.rangeSets.forEach((set, i) => {
    for (const ip of mine) {
      const range = set.find((r) => contains(r.subnet, ip))
      if (range) return void out.push({ set: i, ip, range })
    }
  })
  return out
}

function claimNext(cfg: BuiltinConfig, dir: string, i: number, taken: Set<string>, owner: Owner): Reservation {
  const set = cfg.rangeSets[i]
  for (const ip of candidates(set, cfg.exclude, readHint(dir, i))) {
    if (taken.has(formatIp(ip)) || !claim(dir, ip, owner)) continue
    writeHint(dir, i, ip)
    return { set: i, ip, range: set.find((r) => contains(r.subnet, ip))! }
  }
  throw exhausted(set)
}

/**
 * One address per range set for `owner`, reusing what it already holds, so a retried ADD
 * (even after a SIGKILL mid-way) gets the same addresses. On failure, releases only what this call claimed.
 */
export function reserve(cfg: BuiltinConfig, dir: string, owner: Owner, log: Logger): Reservation[] {
  ensureDir(dir)
  const all = scan(dir)
  const have = held(cfg, all, owner)
  const taken = new Set(all.keys())
  const fresh: Reservation[] = []
  try {
    for (let i = 0; i < cfg.rangeSets.length; i++) {
      if (!have.some((r) => r.set === i)) fresh.push(claimNext(cfg, dir, i, taken, owner))
    }
  } catch (e) {
    for (const r of fresh) release(dir, formatIp(r.ip), owner, (msg) => log.error(msg))
    throw e
  }
  if (have.length) log.info('ipam: reusing reservations', { addresses: have.map((r) => formatIp(r.ip)) })
  return [...have, ...fresh].sort((a, b) => a.set - b.set)
}

/** Throws CniError 50 naming the first range set with no allocatable address left. */
export function checkCapacity(cfg: BuiltinConfig, dir: string): void {
  const taken = new Set(scan(dir).keys())
  cfg.rangeSets.forEach((set) => {
    for (const ip of candidates(set, cfg.exclude)) if (!taken.has(formatIp(ip))) return
    throw new CniError(CNI_CODE.pluginNotAvailable, `no free address in range ${describe(set)}`)
  })
}
