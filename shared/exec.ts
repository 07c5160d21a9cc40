// Running other programs (ip, iptables-restore, ipset, delegated CNI plugins).
// One function so that callers can be handed a fake in tests.
import { spawn } from 'node:child_process'

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

export interface ExecOptions {
  input?: string
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

export type Exec = (cmd: string, args: readonly string[], opts?: ExecOptions) => Promise<ExecResult>

/** Runs a command to completion; never rejects for a non-zero exit (inspect `code`). */
export const exec: Exec = (cmd, args, opts = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b) => out.push(b))
    child.stderr.on('data', (b) => err.push(b))
    child.on('error', reject)
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? signalStatus(signal) : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    )
    child.stdin.on('error', () => {}) // a child that exits without reading stdin is not our error
    child.stdin.end(opts.input ?? '')
  })

/** 128 + signo, as a shell reports a signal (and as shared/spawner.ts does). node:os is loaded
 *  only here: a static import would cost the CNI plugin ~0.3 ms of startup on every ADD. */
export function signalStatus(signal: NodeJS.Signals): number {
  return 128 + process.getBuiltinModule('node:os').constants.signals[signal]
}

export class ExecError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly result: ExecResult,
    readonly input?: string,
  ) {
    super(`${cmd} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`)
  }
}

/** Like exec, but rejects with ExecError on a non-zero exit. */
export async function execOk(run: Exec, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new ExecError(cmd, args, r, opts?.input)
  return r.stdout
}
