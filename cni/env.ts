// The CNI_* environment: which variables each command needs (one table, as
// in the spec's skeleton), their validation, and the CNI_ARGS key=value list.
import { CniError, CNI_CODE } from './errors.ts'

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'] as const
export type Command = (typeof COMMANDS)[number]

type EnvVar = 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH'

/** Spec 1.1 "Parameters": DEL may run after the netns is gone, GC/STATUS concern no container. */
const REQUIRED: Record<Command, readonly EnvVar[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  STATUS: ['CNI_PATH'],
  GC: ['CNI_PATH'],
  VERSION: [],
}

export interface CniEnv {
  command: Command
  containerId: string
  netns: string
  ifname: string
  path: string[]
  args: Record<string, string>
}

// Spec: "alphanumeric, plus underscore, period and hyphen, starting with an alphanumeric".
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

/** Kernel rules for a link name: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
export function ifnameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty'
  if (Buffer.byteLength(name) > 15) return `is ${Buffer.byteLength(name)} bytes long (at most 15)`
  if (name === '.' || name === '..') return 'may not be "." or ".."'
  if (/[/:\s]/.test(name)) return 'may not contain "/", ":" or whitespace'
  return undefined
}

export function parseCommand(env: NodeJS.ProcessEnv): Command {
  const cmd = env.CNI_COMMAND
  if (!cmd) throw new CniError(CNI_CODE.invalidEnv, 'CNI_COMMAND is not set')
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    throw new CniError(CNI_CODE.invalidEnv, `unknown CNI_COMMAND ${JSON.stringify(cmd)}`, `expected one of ${COMMANDS.join(', ')}`)
  }
  return cmd as Command
}

/** Validates the variables `command` needs, reporting every problem at once. */
export function parseEnv(command: Command, env: NodeJS.ProcessEnv): CniEnv {
  const problems: string[] = []
  for (const v of REQUIRED[command]) if (!env[v]) problems.push(`${v} is required for ${command}`)
  const containerId = env.CNI_CONTAINERID ?? ''
  if (containerId && !CONTAINER_ID.test(containerId)) {
    problems.push(`CNI_CONTAINERID ${JSON.stringify(containerId)} must be alphanumeric plus "_", ".", "-", starting alphanumeric`)
  }
  const ifname = env.CNI_IFNAME ?? ''
  const bad = ifname ? ifnameProblem(ifname) : undefined
  if (bad) problems.push(`CNI_IFNAME ${JSON.stringify(ifname)} ${bad}`)
  let args: Record<string, string> = {}
  try {
    args = parseArgs(env.CNI_ARGS ?? '')
  } catch (e) {
    problems.push((e as Error).message)
  }
  if (problems.length) throw new CniError(CNI_CODE.invalidEnv, problems[0], problems.join('; '))
  const path = (env.CNI_PATH ?? '').split(':').filter(Boolean)
  return { command, containerId, netns: env.CNI_NETNS ?? '', ifname, path, args }
}

/** CNI_ARGS is "K1=V1;K2=V2". Unknown keys are kept and ignored (runtimes add their own). */
export function parseArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of raw.split(';')) {
    if (!pair) continue
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new Error(`CNI_ARGS entry ${JSON.stringify(pair)} is not KEY=VALUE`)
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/** Pod identity kubelet passes in CNI_ARGS. */
export function podIdentity(env: CniEnv): { namespace?: string; pod?: string; podUid?: string } {
  const a = env.args
  return { namespace: a.K8S_POD_NAMESPACE || undefined, pod: a.K8S_POD_NAME || undefined, podUid: a.K8S_POD_UID || undefined }
}
