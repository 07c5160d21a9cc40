// Delegation to another IPAM plugin (host-local, dhcp, static, ...): find it
// in CNI_PATH, run it with our CNI_* environment and the whole netconf on
// stdin, and read its answer back: an error passes through with its own
// code, a result of any version from 0.3.0 to 1.1.0 becomes an IpamResult.
//
// Error codes chosen here: plugin missing from CNI_PATH is 7 (the config asks
// for something this node cannot run), or 50 on STATUS; a plugin that fails
// without an error JSON is 999; output that is not a usable result is 6.
import { accessSync, constants, statSync } from 'node:fs'
import { join } from 'node:path'
import type { ExecResult } from '../../shared/exec.ts'
import { CniError, CNI_CODE } from '../errors.ts'
import { formatCidr, formatIp, parseCidr, parseIp } from './ipmath.ts'
import type { Attachment, IpamResult, NetworkContext } from './types.ts'

export type DelegateCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS'

const RESULT_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** The plugin's path: the first executable named `type` in the colon-separated CNI_PATH. */
export function findPlugin(type: string, cniPath: string | undefined, command: DelegateCommand): string {
  if (!type || type.includes('/') || type === '.' || type === '..') {
    throw new CniError(CNI_CODE.invalidConfig, `ipam.type ${JSON.stringify(type)} must be a plugin name, not a path`)
  }
  const dirs = (cniPath ?? '').split(':').filter(Boolean)
  for (const dir of dirs) if (isExecutable(join(dir, type))) return join(dir, type)
  const code = command === 'STATUS' ? CNI_CODE.pluginNotAvailable : CNI_CODE.invalidConfig
  throw new CniError(code, `IPAM plugin '${type}' not found in CNI_PATH ${JSON.stringify(cniPath ?? '')}`, `searched: ${dirs.join(', ') || '(nothing)'}`)
}

/** A plugin's error JSON, if `json` is one: passed through with its own code. */
function pluginError(json: unknown, plugin: string): CniError | undefined {
  if (!isObject(json) || json.code === undefined) return undefined
  const code = Number.isInteger(json.code) && (json.code as number) > 0 ? (json.code as number) : CNI_CODE.generic
  const msg = typeof json.msg === 'string' && json.msg ? json.msg : `IPAM plugin ${plugin} failed with code ${String(json.code)}`
  return new CniError(code, msg, typeof json.details === 'string' ? json.details : '')
}

/** The parsed stdout, or undefined when the plugin printed nothing (normal for DEL, CHECK, GC, STATUS). */
export function readOutput(r: ExecResult, plugin: string, command: DelegateCommand): unknown {
  const text = r.stdout.trim()
  let json: unknown
  let parsed = false
  try {
    json = text ? JSON.parse(text) : undefined
    parsed = true
  } catch {
    /* reported below, with what the plugin printed */
  }
  const err = parsed ? pluginError(json, plugin) : undefined
  if (err) throw err
  if (r.code !== 0) {
    const said = (r.stderr.trim() || text).slice(0, 2000)
    throw new CniError(CNI_CODE.generic, `IPAM plugin ${plugin} ${command} exited with code ${r.code}${said ? '' : ' and no output'}`, said)
  }
  if (!parsed) throw new CniError(CNI_CODE.decodeFailure, `IPAM plugin ${plugin} ${command} printed invalid JSON`, text.slice(0, 2000))
  return json
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined
}

const fail = (bad: string[], msg: string): never[] => {
  bad.push(msg)
  return []
}

function convertIps(raw: unknown, bad: string[]): IpamResult['ips'] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) return fail(bad, '"ips" is not a list')
  return raw.flatMap((e, i) => {
    const address = isObject(e) ? parseCidr(e.address as string) : undefined
    const gateway = isObject(e) && e.gateway !== undefined ? parseIp(e.gateway as string) : undefined
    if (!address) return fail(bad, `ips[${i}].address is not a CIDR`)
    if (isObject(e) && e.gateway !== undefined && !gateway) return fail(bad, `ips[${i}].gateway is not an IP`)
    return [gateway ? { address: formatCidr(address), gateway: formatIp(gateway) } : { address: formatCidr(address) }]
  })
}

function convertRoutes(raw: unknown, bad: string[]): IpamResult['routes'] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) return fail(bad, '"routes" is not a list')
  return raw.flatMap((e, i) => {
    const dst = isObject(e) ? parseCidr(e.dst as string) : undefined
    const gw = isObject(e) && e.gw !== undefined ? parseIp(e.gw as string) : undefined
    if (!dst) return fail(bad, `routes[${i}].dst is not a CIDR`)
    if (isObject(e) && e.gw !== undefined && !gw) return fail(bad, `routes[${i}].gw is not an IP`)
    return [gw ? { dst: formatCidr(dst), gw: formatIp(gw) } : { dst: formatCidr(dst) }]
  })
}

function convertDns(raw: unknown): IpamResult['dns'] {
  if (!isObject(raw)) return undefined
  const dns: NonNullable<IpamResult['dns']> = {}
  for (const k of ['nameservers', 'search', 'options'] as const) if (strings(raw[k])) dns[k] = strings(raw[k])
  if (typeof raw.domain === 'string') dns.domain = raw.domain
  return Object.keys(dns).length ? dns : undefined
}

/** A result of cniVersion 0.3.0 to 1.1.0 (they agree on ips/routes/dns) as an IpamResult. */
export function toIpamResult(raw: unknown, plugin: string): IpamResult {
  if (!isObject(raw)) throw new CniError(CNI_CODE.decodeFailure, `IPAM plugin ${plugin} printed no result object`, JSON.stringify(raw ?? null))
  const version = raw.cniVersion
  if (typeof version === 'string' && !RESULT_VERSIONS.includes(version)) {
    throw new CniError(CNI_CODE.incompatibleVersion, `IPAM plugin ${plugin} returned a cniVersion ${version} result`, `wren reads ${RESULT_VERSIONS.join(', ')}`)
  }
  const bad: string[] = []
  const result: IpamResult = { ips: convertIps(raw.ips, bad), routes: convertRoutes(raw.routes, bad) }
  const dns = convertDns(raw.dns)
  if (dns) result.dns = dns
  if (bad.length) throw new CniError(CNI_CODE.decodeFailure, `IPAM plugin ${plugin} returned an invalid result: ${bad[0]}`, bad.join('; '))
  return result
}

/** Runs the delegate for `command`; returns its parsed stdout (undefined when empty). */
export async function delegate(ctx: NetworkContext & Partial<Attachment>, command: DelegateCommand, netconf = ctx.netconf): Promise<unknown> {
  const type = ctx.ipam.type as string
  const plugin = findPlugin(type, ctx.env.CNI_PATH, command)
  const env: NodeJS.ProcessEnv = { ...ctx.env, CNI_COMMAND: command }
  if (ctx.containerId !== undefined) env.CNI_CONTAINERID = ctx.containerId
  if (ctx.ifname !== undefined) env.CNI_IFNAME = ctx.ifname
  if ((command === 'GC' || command === 'STATUS') && !(await speaks11(ctx, plugin, env))) {
    ctx.log.info('ipam: delegate predates CNI 1.1, skipping', { plugin, command })
    return undefined
  }
  ctx.log.debug('ipam: delegating', { plugin, command })
  const r = await ctx.exec(plugin, [], { input: JSON.stringify(netconf), env })
  return readOutput(r, type, command)
}

/**
 * GC and STATUS exist since CNI 1.1.0; a delegate whose VERSION answer leaves 1.1.0 out (Debian's
 * host-local speaks up to 1.0.0) would only fail with "unknown command", so it is not asked.
 * An unreadable VERSION answer proceeds: the command itself then reports what is wrong.
 */
async function speaks11(ctx: NetworkContext, plugin: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const r = await ctx.exec(plugin, [], { input: JSON.stringify({ cniVersion: ctx.netconf.cniVersion }), env: { ...env, CNI_COMMAND: 'VERSION' } })
  try {
    const versions = (JSON.parse(r.stdout) as { supportedVersions?: unknown }).supportedVersions
    return !Array.isArray(versions) || versions.includes('1.1.0')
  } catch {
    return true
  }
}

/** GC's netconf names the attachments to keep under the spec's "cni.dev/valid-attachments". */
export function gcNetconf(ctx: NetworkContext, valid: Attachment[]): Record<string, unknown> {
  return { ...ctx.netconf, 'cni.dev/valid-attachments': valid.map((a) => ({ containerID: a.containerId, ifname: a.ifname })) }
}
