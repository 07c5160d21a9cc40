// Waits (bounded) until the node agent reports a new workload's chains
// programmed, so the pod's containers start with their policy in place.
// The agent is never a reason to fail a pod: no agent, a timeout or any
// error is logged and ADD carries on.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from '../shared/log.ts'

export type WaitOutcome = 'programmed' | 'no-agent' | 'timeout' | 'error'

/** Extra time the client allows on top of the agent's own deadline before giving up on it. */
const CLIENT_SLACK_MS = 1000

export async function waitProgrammed(runDir: string, hostIface: string, timeoutMs: number, log: Logger): Promise<WaitOutcome> {
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
  const ms = Date.now() - started
  if (outcome === 'timeout') log.warn('agent did not report the workload programmed in time; continuing', { hostIface, timeoutMs, ms })
  else log.debug('agent wait done', { outcome, hostIface, ms })
  return outcome
}
