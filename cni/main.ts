// The plugin's entry: one dispatcher shaped like the spec's skeleton. It
// reads the command, the config and the env it needs (see cni/env.ts), runs
// one command module, and writes exactly one JSON document to stdout: the
// result or the error. Anything thrown becomes a CniError here and only here
// (code 999 for the unexpected). Diagnostics go to the config's log file.
// The executable's entry is cni/run.ts; this module only defines.
import { readFileSync } from 'node:fs'
import { exec as realExec, type Exec } from '../shared/exec.ts'
import { createLogger, fileSink, nullLogger, type Logger, type Sink } from '../shared/log.ts'
import { cmdAdd } from './add.ts'
import type { LocalAgent } from './agent-wait.ts'
import { cmdCheck } from './check.ts'
import type { Ctx } from './context.ts'
import { cmdDel } from './del.ts'
import { parseCommand, parseEnv, type Command } from './env.ts'
import { asCniError } from './errors.ts'
import { cmdGc } from './gc.ts'
import { parseNetConf } from './netconf.ts'
import { renderResult, type Result } from './result.ts'
import { cmdStatus } from './status.ts'
import { ipHostLinks, type HostLinks } from './veth.ts'
import { isSupported, LATEST, versionCommand, type SpecVersion } from './version.ts'

export interface Io {
  env: NodeJS.ProcessEnv
  stdin: string
  stdout: (text: string) => void
  exec?: Exec
  /** The host half of the wiring; defaults to `ip -batch` through `exec` (the standalone plugin). */
  host?: HostLinks
  /** Where log lines go; defaults to the config's logFile. */
  logSink?: Sink
  /** Set when the plugin runs inside the agent (cni/serve.ts): the agent to ask directly. */
  agent?: LocalAgent
  /** Logged with every line when set: which way the invocation came ('agent'). */
  via?: string
}

const HANDLERS: Record<Exclude<Command, 'VERSION'>, (ctx: Ctx) => Promise<Result | undefined>> = {
  ADD: cmdAdd,
  DEL: cmdDel,
  CHECK: cmdCheck,
  STATUS: cmdStatus,
  GC: cmdGc,
}

/** Runs one plugin invocation; returns the process exit code. */
export async function dispatch(io: Io): Promise<number> {
  let version: SpecVersion = guessVersion(io.stdin)
  let log: Logger = nullLogger
  try {
    const command = parseCommand(io.env)
    if (command === 'VERSION') {
      io.stdout(JSON.stringify(versionCommand(io.stdin)))
      return 0
    }
    const conf = parseNetConf(io.stdin)
    version = conf.cniVersion
    log = createLogger(io.logSink ?? fileSink(conf.logFile), conf.logLevel, {
      cmd: command,
      containerId: io.env.CNI_CONTAINERID,
      ifname: io.env.CNI_IFNAME,
      ...(io.via ? { via: io.via } : {}),
    })
    const env = parseEnv(command, io.env)
    const exec = io.exec ?? realExec
    const result = await HANDLERS[command]({ env, conf, rawEnv: io.env, exec, host: io.host ?? ipHostLinks(exec), log, agent: io.agent })
    if (result) io.stdout(JSON.stringify(renderResult(result, version)))
    return 0
  } catch (e) {
    const err = asCniError(e)
    log.error('failed', { code: err.code, err: err.message, details: err.details })
    io.stdout(JSON.stringify(err.toJSON(version)))
    return 1
  }
}

/** The version to answer errors in, when the config is too broken to parse fully. */
function guessVersion(stdin: string): SpecVersion {
  try {
    const v = JSON.parse(stdin)?.cniVersion
    return isSupported(v) ? v : LATEST
  } catch {
    return LATEST
  }
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8')
  } catch {
    return ''
  }
}

/** One plugin process: the real env, stdin and stdout. */
export function runProcess(): void {
  // exit as soon as the answer is out: stdout to a pipe or file is written synchronously,
  // and no idle handle may keep the runtime waiting
  void dispatch({ env: process.env, stdin: readStdin(), stdout: (t) => process.stdout.write(t + '\n') }).then((code) => process.exit(code))
}
