// Waits (bounded) until the node agent reports a new workload's chains
// programmed, so the pod's containers start with their policy in place.
// The agent is never a reason to fail a pod: no agent, a timeout or any
// error is logged and ADD carries on. Inside the agent (cni/serve.ts) the
// question is a direct call, provided the config names that agent's run dir;
// otherwise it goes over <runDir>/agent.sock as from a plugin process.
import { existsSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import type { Logger } from '../shared/log.ts'

export type WaitOutcome = 'programmed' | 'no-agent' | 'timeout' | 'error'

/** The agent a plugin invocation runs inside. */
export interface LocalAgent {
  runDir: string
  /** True once `iface`'s chains are in the kernel; false after `timeoutMs`. */
  waitProgrammed(iface: string, timeoutMs: number): Promise<boolean>
}

/** Extra time the client allows on top of the agent's own deadline before giving up on it. */
const CLIENT_SLACK_MS = 1000
/** The agent's socket endpoint caps every wait at this; the direct call keeps the same bound. */
const MAX_WAIT_MS = 120_000

export async function waitProgrammed(runDir: string, hostIface: string, timeoutMs: number, log: Logger, local?: LocalAgent): Promise<WaitOutcome> {
  if (timeoutMs > 0 && local && resolvePath(local.runDir) === resolvePath(runDir)) {
    const started = Date.now()
    return report(await askLocal(local, hostIface, Math.min(timeoutMs, MAX_WAIT_MS), log), started, hostIface, timeoutMs, log)
  }
  const socketPath = join(runDir, 'agent.sock')
  // checked first so a node without an agent never pays for loading node:http
  if (timeoutMs === 0 || !existsSync(socketPath)) return 'no-agent'
  const { request } = await import('node:http')
  const path = `/programmed?iface=${encodeURIComponent(hostIface)}&timeoutMs=${timeoutMs}`
  const started = Date.now()
  const outcome = await new Promise<WaitOutcome>((resolve) => {
    const req = request({ socketPath, path, method: 'GET', agent: false, timeout: timeoutMs + CLIENT_SLACK_MS }, (res) => {
      res.resume()
      const code = res.statusCode ?? 0
      resolve(code === 200 ? 'programmed' : code === 504 ? 'timeout' : 'error')
      if (code !== 200 && code !== 504) log.warn('agent answered with an unexpected status', { status: code, hostIface })
    })
    req.on('timeout', () => {
      req.destroy()
      resolve('timeout')
    })
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve('no-agent')
      else {
        log.warn('asking the agent failed', { err: e.message, hostIface })
        resolve('error')
      }
    })
    req.end()
  })
  return report(outcome, started, hostIface, timeoutMs, log)
}

async function askLocal(local: LocalAgent, hostIface: string, timeoutMs: number, log: Logger): Promise<WaitOutcome> {
  try {
    return (await local.waitProgrammed(hostIface, timeoutMs)) ? 'programmed' : 'timeout'
  } catch (e) {
    log.warn('asking the agent failed', { err: (e as Error).message, hostIface })
    return 'error'
  }
}

function report(outcome: WaitOutcome, started: number, hostIface: string, timeoutMs: number, log: Logger): WaitOutcome {
  const ms = Date.now() - started
  if (outcome === 'timeout') log.warn('agent did not report the workload programmed in time; continuing', { hostIface, timeoutMs, ms })
  else log.debug('agent wait done', { outcome, hostIface, ms })
  return outcome
}
