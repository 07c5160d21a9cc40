// The README's commands as a user types them (e2e/readme.test.ts): extracted
// from its ```sh blocks, run as `sh -c TEXT` from the repository root, in the
// foreground or in the background, and the machine folders they write left as
// they were found.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Test } from 'tap'
import { Cleanup, REPO } from './host.ts'

/**
 * Every command of the README's ```sh blocks: a non-empty line not starting
 * with `#`, without its trailing `# comment`, in the order of the README.
 */
export function readmeCommands(markdown: string): string[] {
  const out: string[] = []
  let inSh = false
  for (const line of markdown.split('\n')) {
    if (/^```/.test(line)) {
      inSh = !inSh && line.trim() === '```sh'
      continue
    }
    if (!inSh) continue
    const cmd = stripComment(line).trim()
    if (cmd && !cmd.startsWith('#')) out.push(cmd)
  }
  return out
}

/** The line up to a `#` that starts a word outside quotes (as sh reads a comment). */
function stripComment(line: string): string {
  let quote = ''
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote) {
      if (c === quote) quote = ''
      else if (c === '\\' && quote === '"') i++
    } else if (c === "'" || c === '"') quote = c
    else if (c === '\\') i++
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i)
  }
  return line
}

export interface Typed {
  code: number
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** The environment a user's shell would hand the command; NODE_NAME unset (the README's node name comes from the hostname). */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  delete env.NODE_NAME
  return env
}

/** A command running in the background, in its own process group (the shell and what it runs). */
export interface Background {
  child: ChildProcess
  /** stdout and stderr so far, interleaved. */
  output(): string
  exited(): boolean
  done: Promise<Typed>
  /** SIGTERM to the group; SIGKILL after `graceMs`. Resolves with how it ended. */
  stop(graceMs?: number): Promise<Typed & { killed: boolean }>
}

/** `sh -c TEXT` from the repository root, started; killed on cleanup if still running. */
export function typedInBackground(cleanup: Cleanup, cmd: string, env: NodeJS.ProcessEnv): Background {
  const t0 = Date.now()
  const child = spawn('sh', ['-c', cmd], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const out: Buffer[] = []
  const err: Buffer[] = []
  const all: Buffer[] = []
  child.stdout!.on('data', (b: Buffer) => (out.push(b), all.push(b)))
  child.stderr!.on('data', (b: Buffer) => (err.push(b), all.push(b)))
  const done = new Promise<Typed>((resolve) =>
    child.on('close', (code, signal) => resolve({ code: code ?? 128, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: Date.now() - t0 })),
  )
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig)
    } catch {
      /* already gone */
    }
  }
  const exited = () => child.exitCode !== null || child.signalCode !== null
  const stop = async (graceMs = 10_000) => {
    let killed = false
    group('SIGTERM')
    const timer = setTimeout(() => ((killed = true), group('SIGKILL')), graceMs)
    const r = await done
    clearTimeout(timer)
    // whatever the command left in its group (the shell's children)
    group('SIGKILL')
    return { ...r, killed }
  }
  cleanup.push(`stop ${cmd}`, async () => void (exited() || (await stop(5000))))
  return { child, output: () => Buffer.concat(all).toString(), exited, done, stop }
}

/** Asserts exit status 0; only a failure carries the command's output (its tail). */
export function exitOk(t: Test, r: Typed): void {
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : `exit 0 (stderr: ${r.stderr.slice(-3000)}; stdout: ${r.stdout.slice(-1500)})`)
}

/**
 * The build in dist/ was being replaced as the command loaded it: others rebuild this working
 * tree (scripts/setup, tests) while these commands run from it, and a build drops the previous
 * chunks first. A user never does both at once; such a run says nothing about the command.
 */
export const REBUILT_MEANWHILE = /Cannot find module '[^']*\/dist\/chunks\//

/** `sh -c TEXT` from the repository root, to its end (killed after `timeoutMs`); rerun when dist/ was rebuilt under it. */
export async function typed(cleanup: Cleanup, cmd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Typed> {
  for (let attempt = 1; ; attempt++) {
    const bg = typedInBackground(cleanup, cmd, env)
    const timer = setTimeout(() => void bg.stop(5000), timeoutMs)
    const r = await bg.done
    clearTimeout(timer)
    if (r.signal) r.stderr += `\n(readme test: ${cmd} ended by ${r.signal} after ${r.ms} ms, limit ${timeoutMs} ms)`
    if (r.code === 0 || attempt === 3 || !REBUILT_MEANWHILE.test(r.stderr)) return r
    await delay(2000)
  }
}

/**
 * Leaves a machine folder as it was found: on cleanup, every path under `dir`
 * that was not there now is removed, and so are the folders made to hold it
 * (the topmost one that did not exist, e.g. /opt/cni for /opt/cni/bin).
 * Returns the paths (relative to `dir`) that were there.
 */
export function claimDir(cleanup: Cleanup, dir: string): { existed: boolean; before: Set<string> } {
  let top: string | undefined
  for (let d = dir; !existsSync(d); d = dirname(d)) top = d
  const before = new Set(top ? [] : walk(dir))
  cleanup.push(`leave ${dir} as found`, () => {
    if (top) return rmSync(top, { recursive: true, force: true })
    for (const p of newPaths(dir, before)) rmSync(join(dir, p), { recursive: true, force: true })
  })
  return { existed: !top, before }
}

/** Paths under `dir` not in `before`: a new folder is one path, not descended into. */
export function newPaths(dir: string, before: Set<string>): string[] {
  const out: string[] = []
  const visit = (rel: string) => {
    for (const name of readdirSync(join(dir, rel))) {
      const p = rel ? `${rel}/${name}` : name
      if (!before.has(p)) out.push(p)
      else if (lstatSync(join(dir, p)).isDirectory()) visit(p)
    }
  }
  if (existsSync(dir)) visit('')
  return out.sort()
}

function walk(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel)).flatMap((name) => {
    const p = rel ? `${rel}/${name}` : name
    return lstatSync(join(dir, p)).isDirectory() ? [p, ...walk(dir, p)] : [p]
  })
}

/** What every flow's steps share: its cleanup stack and the environment its commands run in. */
export interface FlowCtx {
  cleanup: Cleanup
  env: NodeJS.ProcessEnv
}

/**
 * Commands a user runs one after another (install → uninstall; agent →
 * status → show → cleanup): what they need is prepared once, and everything
 * prepared is undone by the flow's cleanup, also on failure.
 */
export interface Flow<C extends FlowCtx> {
  name: string
  /** `hold` is undone after `after` (the kernel lock: the final check must see no one else's chains). */
  prepare(t: Test, cleanup: Cleanup, hold: Cleanup): Promise<C>
  /** Checks once the cleanup ran: the machine is as it was found. */
  after?(t: Test, ctx: C): Promise<void> | void
}

/** Runs one README command (exact text `cmd`) within its flow and asserts what the README says it does. */
export type StepFn<C extends FlowCtx> = (t: Test, cmd: string, ctx: C) => Promise<void>

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms))
