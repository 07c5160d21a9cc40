// What every command handler receives: the validated env and config, the
// process runner, the host-side link work and the logger. Built once by the
// dispatcher.
import type { Exec } from '../shared/exec.ts'
import type { Logger } from '../shared/log.ts'
import type { LocalAgent } from './agent-wait.ts'
import type { CniEnv } from './env.ts'
import type { NetConf } from './netconf.ts'
import type { HostLinks } from './veth.ts'

export interface Ctx {
  env: CniEnv
  conf: NetConf
  /** The untouched process environment, handed to delegated plugins. */
  rawEnv: NodeJS.ProcessEnv
  exec: Exec
  /** The host half of the veth: rtnetlink inside the agent, `ip -batch` standalone. */
  host: HostLinks
  log: Logger
  /** The agent this invocation runs inside, if any (see cni/serve.ts). */
  agent?: LocalAgent
}

/** The argument every cni/ipam function takes. */
export function ipamContext(ctx: Ctx) {
  return {
    network: ctx.conf.name,
    containerId: ctx.env.containerId,
    ifname: ctx.env.ifname,
    ipam: ctx.conf.ipam,
    netconf: ctx.conf.raw,
    stateDir: ctx.conf.stateDir,
    env: ctx.rawEnv,
    exec: ctx.exec,
    log: ctx.log,
  }
}
