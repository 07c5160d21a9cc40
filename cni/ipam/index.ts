// IPAM entry points for the plugin core: ipam.type "wren" is served by the
// built-in allocator (reservation files, no other binary); any other type is
// delegated to the plugin of that name found in CNI_PATH.
//
// DEL and GC of the built-in allocator need only the data folder, not valid
// ranges: a config edited after ADD must never strand an address. Delegated
// ADDs are journaled (journal.ts) so that they are idempotent too.
import { isAbsolute, join } from 'node:path'
import { CniError, CNI_CODE } from '../errors.ts'
import { checkCapacity, held, reserve, type Reservation } from './allocator.ts'
import { parseBuiltinConfig, type BuiltinConfig } from './config.ts'
import { delegate, findPlugin, gcNetconf, toIpamResult } from './delegate.ts'
import { formatCidr, formatIp } from './ipmath.ts'
import { listEntries, readEntry, removeEntry, writeEntry } from './journal.ts'
import { networkDir, owns, releaseWhere, scan, sweepTemps, type Owner } from './store.ts'
import type { Attachment, IpamContext, IpamResult, NetworkContext } from './types.ts'

export type { Attachment, IpamContext, IpamResult, NetworkContext } from './types.ts'

function ipamType(ctx: NetworkContext): string {
  const type = ctx.ipam?.type
  if (typeof type !== 'string' || !type) throw new CniError(CNI_CODE.invalidConfig, 'ipam.type is required (e.g. "wren" or "host-local")')
  return type
}

const isBuiltin = (ctx: NetworkContext): boolean => ipamType(ctx) === 'wren'

function ownerOf(ctx: IpamContext): Owner {
  // The owner is written into reservation files one per line, so neither part may hold a newline.
  if (!ctx.containerId || !ctx.ifname || /\n/.test(ctx.containerId + ctx.ifname)) {
    throw new CniError(CNI_CODE.invalidEnv, 'IPAM needs a container ID and an interface name', JSON.stringify({ containerId: ctx.containerId, ifname: ctx.ifname }))
  }
  return { containerId: ctx.containerId, ifname: ctx.ifname }
}

/** The reservation folder without validating ranges (see the header). */
function looseDir(ctx: NetworkContext): string {
  const d = ctx.ipam.dataDir
  return networkDir(typeof d === 'string' && isAbsolute(d) ? d : join(ctx.stateDir, 'ipam'), ctx.network)
}

function builtin(ctx: NetworkContext): { cfg: BuiltinConfig; dir: string } {
  const cfg = parseBuiltinConfig(ctx.ipam, ctx.stateDir)
  return { cfg, dir: networkDir(cfg.dataDir, ctx.network) }
}

function toResult(cfg: BuiltinConfig, rs: Reservation[]): IpamResult {
  const ips = rs.map(({ ip, range }) => {
    const address = formatCidr({ ip, prefix: range.subnet.prefix })
    return range.gateway ? { address, gateway: formatIp(range.gateway) } : { address }
  })
  const result: IpamResult = { ips, routes: cfg.routes.map((r) => ({ ...r })) }
  if (cfg.dns) result.dns = cfg.dns
  return result
}

/** Idempotent per containerId+ifname: a second ADD of the same attachment returns the same addresses. */
export async function ipamAdd(ctx: IpamContext): Promise<IpamResult> {
  if (!isBuiltin(ctx)) return delegatedAdd(ctx)
  const owner = ownerOf(ctx)
  const { cfg, dir } = builtin(ctx)
  const rs = reserve(cfg, dir, owner, ctx.log)
  ctx.log.info('ipam: reserved', { network: ctx.network, ...owner, addresses: rs.map((r) => formatIp(r.ip)) })
  return toResult(cfg, rs)
}

/** Idempotent: releasing what was never reserved succeeds. */
export async function ipamDel(ctx: IpamContext): Promise<void> {
  if (!isBuiltin(ctx)) return delegatedDel(ctx)
  const owner = ownerOf(ctx)
  const released = releaseWhere(looseDir(ctx), owns(owner), (msg) => ctx.log.error(msg))
  ctx.log.info('ipam: released', { network: ctx.network, ...owner, addresses: released })
}

/** The attachment's addresses; CniError 3 if it holds none. */
export async function ipamCheck(ctx: IpamContext): Promise<IpamResult> {
  if (!isBuiltin(ctx)) {
    // A delegate's CHECK prints nothing on success; the addresses are then the ones in prevResult.
    const out = await delegate(ctx, 'CHECK')
    const prev = out ?? ctx.netconf.prevResult ?? readEntry(ctx.stateDir, ctx.network, ownerOf(ctx))?.result
    return prev === undefined ? { ips: [], routes: [] } : toIpamResult(prev, ipamType(ctx))
  }
  const owner = ownerOf(ctx)
  const { cfg, dir } = builtin(ctx)
  const rs = held(cfg, scan(dir), owner)
  const who = `${owner.containerId}/${owner.ifname}`
  if (!rs.length) throw new CniError(CNI_CODE.unknownContainer, `no address is reserved for ${who} in network ${ctx.network}`)
  const missing = cfg.rangeSets.findIndex((_, i) => !rs.some((r) => r.set === i))
  if (missing >= 0) {
    const subnets = cfg.rangeSets[missing].map((r) => formatCidr(r.subnet)).join(', ')
    throw new CniError(CNI_CODE.generic, `${who} holds no address in range ${subnets}`)
  }
  return toResult(cfg, rs)
}

/** Releases every reservation whose attachment is not in `valid`. */
export async function ipamGc(ctx: NetworkContext, valid: Attachment[]): Promise<void> {
  if (!isBuiltin(ctx)) return delegatedGc(ctx, valid)
  const keep = new Set(valid.map((a) => `${a.containerId}\n${a.ifname}`))
  const dir = looseDir(ctx)
  const released = releaseWhere(dir, (o) => !keep.has(`${o.containerId}\n${o.ifname}`), (msg) => ctx.log.error(msg))
  sweepTemps(dir)
  if (released.length) ctx.log.info('ipam: gc released', { network: ctx.network, addresses: released })
}

/** CniError 50 when some range set has no address left to allocate. */
export async function ipamStatus(ctx: NetworkContext): Promise<void> {
  if (!isBuiltin(ctx)) return void (await delegate(ctx, 'STATUS'))
  const { cfg, dir } = builtin(ctx)
  checkCapacity(cfg, dir)
}

/** The journaled result of a completed ADD; after an interrupted one, the delegate releases before it allocates again. */
async function delegatedAdd(ctx: IpamContext): Promise<IpamResult> {
  const a = ownerOf(ctx)
  findPlugin(ipamType(ctx), ctx.env.CNI_PATH, 'ADD') // a missing plugin fails before anything is written
  const prior = readEntry(ctx.stateDir, ctx.network, a)
  if (prior?.result) return prior.result
  if (prior) {
    ctx.log.warn('ipam: an earlier ADD of this attachment did not finish; the delegate releases it first', { ...a })
    await delegate(ctx, 'DEL')
  }
  writeEntry(ctx.stateDir, ctx.network, a)
  const result = toIpamResult(await delegate(ctx, 'ADD'), ipamType(ctx))
  writeEntry(ctx.stateDir, ctx.network, { ...a, result })
  return result
}

async function delegatedDel(ctx: IpamContext): Promise<void> {
  await delegate(ctx, 'DEL')
  removeEntry(ctx.stateDir, ctx.network, ownerOf(ctx))
}

/** Journaled attachments not in `valid` are DELeted one by one, which also serves delegates that predate GC. */
async function delegatedGc(ctx: NetworkContext, valid: Attachment[]): Promise<void> {
  const keep = new Set(valid.map((a) => `${a.containerId}\n${a.ifname}`))
  for (const a of listEntries(ctx.stateDir, ctx.network)) {
    if (keep.has(`${a.containerId}\n${a.ifname}`)) continue
    await delegate({ ...ctx, ...a }, 'DEL')
    removeEntry(ctx.stateDir, ctx.network, a)
  }
  await delegate(ctx, 'GC', gcNetconf(ctx, valid))
}
