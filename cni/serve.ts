// The plugin run inside the node agent: the native shim (shim/wren-cni.c)
// sends `POST /cni` to the agent's control socket with the invocation's
// environment and stdin, and the agent answers with what the plugin process
// would have printed and its exit code. The same dispatcher runs, with every
// input taken from the request (nothing from the agent's own process.env),
// so any number of invocations can run at once, as separate processes could.
// The host half of the veth goes over rtnetlink here (cni/veth-netlink.ts), one
// socket for all invocations; the standalone plugin keeps `ip -batch` (its
// bundle carries no native addon, so nothing it imports may import this file).
//
// Frame (request body): the environment as NUL-terminated "KEY=VALUE"
// entries, one more NUL, then the stdin bytes untouched.
import type { LocalAgent } from './agent-wait.ts'
import type { Exec } from '../shared/exec.ts'
import { dispatch } from './main.ts'
import type { HostLinks } from './veth.ts'
import { NetlinkHostLinks } from './veth-netlink.ts'

export interface PluginAnswer {
  code: number
  stdout: string
}

/** Splits a request body into the environment and the stdin text; throws on a malformed frame. */
export function decodeFrame(body: Buffer): { env: NodeJS.ProcessEnv; stdin: string } {
  const env: NodeJS.ProcessEnv = {}
  let pos = 0
  for (;;) {
    const end = body.indexOf(0, pos)
    if (end < 0) throw new Error('request frame has no end of environment')
    if (end === pos) break
    const entry = body.toString('utf8', pos, end)
    const eq = entry.indexOf('=')
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1)
    pos = end + 1
  }
  return { env, stdin: body.toString('utf8', pos + 1) }
}

/** The agent's rtnetlink socket for host links, opened by the first invocation that needs it. */
let agentHostLinks: NetlinkHostLinks | undefined

/**
 * Runs one plugin invocation in this process; `agent` answers the ADD's
 * programmed wait directly; `exec` runs its commands (the agent's spawn helper);
 * `host` makes the host half of the veth (the agent's rtnetlink socket unless given).
 */
export async function runPluginRequest(body: Buffer, agent: LocalAgent, exec?: Exec, host?: HostLinks): Promise<PluginAnswer> {
  const { env, stdin } = decodeFrame(body)
  const out: string[] = []
  host ??= agentHostLinks ??= new NetlinkHostLinks()
  // the process entry prints each document followed by a newline: the same bytes here
  const code = await dispatch({ env, stdin, stdout: (t) => out.push(t + '\n'), agent, via: 'agent', exec, host })
  return { code, stdout: out.join('') }
}
