// The network configuration on stdin: parsed, defaulted and validated, with
// every problem reported in one error so an operator fixes them in one go.
import { CniError, CNI_CODE } from './errors.ts'
import { isObject, parseResult, type Dns, type Result } from './result.ts'
import { isSupported, SUPPORTED_VERSIONS, type SpecVersion } from './version.ts'
import type { Level } from '../shared/log.ts'

export interface Attachment {
  containerId: string
  ifname: string
}

export interface NetConf {
  cniVersion: SpecVersion
  name: string
  type: string
  ifacePrefix: string
  mtu: number
  stateDir: string
  runDir: string
  agentWaitMs: number
  logFile: string
  logLevel: Level
  dns?: Dns
  ipam: Record<string, unknown> & { type: string }
  prevResult?: Result
  /** GC only: cni.dev/valid-attachments. */
  validAttachments?: Attachment[]
  /** The whole object, handed to a delegated IPAM plugin unchanged. */
  raw: Record<string, unknown>
}

export const DEFAULTS = {
  ifacePrefix: 'wren',
  mtu: 1500,
  stateDir: '/var/lib/wren',
  runDir: '/var/run/wren',
  agentWaitMs: 3000,
  logFile: '/var/log/wren/cni.log',
  logLevel: 'info' as Level,
}

// Spec: network names are alphanumeric plus "_", ".", "-", starting alphanumeric.
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error']

/** Malformed JSON is code 6, an unknown version 1, anything else wrong 7 (all listed in details). */
export function parseNetConf(stdin: string): NetConf {
  let raw: unknown
  try {
    raw = JSON.parse(stdin)
  } catch (e) {
    throw new CniError(CNI_CODE.decodeFailure, 'network configuration on stdin is not valid JSON', (e as Error).message)
  }
  if (!isObject(raw)) throw new CniError(CNI_CODE.decodeFailure, 'network configuration on stdin is not a JSON object')
  if (raw.cniVersion !== undefined && !isSupported(raw.cniVersion)) {
    throw new CniError(
      CNI_CODE.incompatibleVersion,
      `cniVersion ${JSON.stringify(raw.cniVersion)} is not supported`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`,
    )
  }
  const problems: string[] = []
  const conf = readFields(raw, problems)
  if (problems.length) throw new CniError(CNI_CODE.invalidConfig, `invalid network configuration: ${problems[0]}`, problems.join('; '))
  return conf
}

function readFields(raw: Record<string, unknown>, problems: string[]): NetConf {
  const str = (key: string, dflt?: string): string => {
    const v = raw[key]
    if (v === undefined) {
      if (dflt === undefined) problems.push(`${key} is required`)
      return dflt ?? ''
    }
    if (typeof v !== 'string' || v === '') problems.push(`${key} must be a non-empty string`)
    return typeof v === 'string' ? v : ''
  }
  const int = (key: string, dflt: number, min: number, max: number): number => {
    const v = raw[key]
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) problems.push(`${key} must be an integer from ${min} to ${max}`)
    return typeof v === 'number' ? v : dflt
  }
  if (raw.cniVersion === undefined) problems.push('cniVersion is required')
  const name = str('name')
  if (name && !NETWORK_NAME.test(name)) problems.push(`name ${JSON.stringify(name)} must be alphanumeric plus "_", ".", "-", starting alphanumeric`)
  const ifacePrefix = str('ifacePrefix', DEFAULTS.ifacePrefix)
  if (ifacePrefix && !/^[a-z0-9]{1,10}$/.test(ifacePrefix)) problems.push(`ifacePrefix ${JSON.stringify(ifacePrefix)} must be 1-10 lowercase letters or digits`)
  const logLevel = str('logLevel', DEFAULTS.logLevel)
  if (!LEVELS.includes(logLevel)) problems.push(`logLevel must be one of ${LEVELS.join(', ')}`)
  return {
    cniVersion: raw.cniVersion as SpecVersion,
    name,
    type: str('type'),
    ifacePrefix,
    mtu: int('mtu', DEFAULTS.mtu, 68, 65535),
    stateDir: absPath(str('stateDir', DEFAULTS.stateDir), 'stateDir', problems),
    runDir: absPath(str('runDir', DEFAULTS.runDir), 'runDir', problems),
    agentWaitMs: int('agentWaitMs', DEFAULTS.agentWaitMs, 0, 600_000),
    logFile: absPath(str('logFile', DEFAULTS.logFile), 'logFile', problems),
    logLevel: logLevel as Level,
    dns: readDns(raw.dns, problems),
    ipam: readIpam(raw.ipam, problems),
    prevResult: readPrev(raw.prevResult, problems),
    validAttachments: readAttachments(raw['cni.dev/valid-attachments'], problems),
    raw,
  }
}

function absPath(p: string, key: string, problems: string[]): string {
  if (p && !p.startsWith('/')) problems.push(`${key} must be an absolute path`)
  return p
}

function readIpam(v: unknown, problems: string[]): NetConf['ipam'] {
  if (v === undefined) {
    problems.push('ipam is required')
    return { type: '' }
  }
  if (!isObject(v) || typeof v.type !== 'string' || !v.type) {
    problems.push('ipam must be an object with a non-empty "type"')
    return { type: '' }
  }
  if (v.type.includes('/')) problems.push('ipam.type must be a plugin name, not a path')
  return v as NetConf['ipam']
}

function readDns(v: unknown, problems: string[]): Dns | undefined {
  if (v === undefined) return undefined
  if (!isObject(v)) {
    problems.push('dns must be an object')
    return undefined
  }
  for (const k of ['nameservers', 'search', 'options']) {
    const list = v[k]
    if (list !== undefined && (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))) problems.push(`dns.${k} must be a list of strings`)
  }
  if (v.domain !== undefined && typeof v.domain !== 'string') problems.push('dns.domain must be a string')
  return Object.keys(v).length ? (v as Dns) : undefined
}

function readPrev(v: unknown, problems: string[]): Result | undefined {
  if (v === undefined) return undefined
  try {
    return parseResult(v)
  } catch (e) {
    problems.push((e as Error).message)
    return undefined
  }
}

function readAttachments(v: unknown, problems: string[]): Attachment[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v)) {
    problems.push('cni.dev/valid-attachments must be a list')
    return undefined
  }
  const out: Attachment[] = []
  v.forEach((a, n) => {
    if (isObject(a) && typeof a.containerID === 'string' && typeof a.ifname === 'string') out.push({ containerId: a.containerID, ifname: a.ifname })
    else problems.push(`cni.dev/valid-attachments[${n}] must have string containerID and ifname`)
  })
  return out
}
