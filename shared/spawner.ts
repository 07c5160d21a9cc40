// An Exec that runs commands through one long-lived native helper (shim/wren-spawn.c).
// child_process.spawn forks the whole agent (~170 MB RSS): 5-7.5 ms of blocked event loop per
// command, spikes to 40 ms. The helper is small, so through it a command costs what it costs.
//
// Model: one helper at a time, started on first use. A call is a framed request on its stdin,
// answered (in completion order, by id) on its stdout; a timeout sends a kill request and the
// answer then carries 128+9. Results match shared/exec.ts: never a rejection for a non-zero exit,
// 128+signo for a signal, a Node-shaped `spawn CMD ENOENT` error when the command can't start.
// Invariants:
//   - every call ends: when the helper is missing or dies, its pending calls run again through
//     plain exec. A call the dead helper had already started may so run twice (its orphan and the
//     rerun): a restore applied twice can fail ("set already exists") or apply twice, and its
//     caller sees that as it sees any failed apply. Helper deaths are rare (OOM, a bug); a lost
//     command would be worse.
//   - after a helper failure, calls use exec until RESTART_MS have passed since its last start.
//   - the helper never keeps the process alive by itself: its handles are unref'd, and it and its
//     stdout are ref'd only while calls are pending (as a child that exec waits for would be).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Socket } from 'node:net'
import { getSystemErrorName } from 'node:util'
import { exec, type Exec, type ExecOptions, type ExecResult } from './exec.ts'
import { nullLogger, type Logger } from './log.ts'

export type Spawner = Exec & { close(): Promise<void> }

export interface SpawnerOptions {
  helperPath: string
  log?: Logger
  /** The restart throttle's clock, in ms. */
  now?: () => number
}

const RESTART_MS = 10_000
const RUN = 1
const KILL = 2
const REQUEST_HEAD = 20
const RESPONSE_HEAD = 20

/**
 * dist/wren-spawn: next to the bundle that holds this module (dist/ or
 * dist/chunks/), or in the repo's dist/ when running from source. Undefined
 * when it was not built.
 */
export function findSpawnHelper(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url))
  return [join(here, 'wren-spawn'), join(here, '..', 'wren-spawn'), join(here, '..', 'dist', 'wren-spawn')].find((p) => existsSync(p))
}

export function createSpawner(opts: SpawnerOptions): Spawner {
  const s = new SpawnClient(opts.helperPath, opts.log ?? nullLogger, opts.now ?? Date.now)
  return Object.assign(s.run, { close: () => s.close() })
}

interface Call {
  cmd: string
  args: readonly string[]
  opts: ExecOptions
  sentAt: number
  resolve(r: ExecResult): void
  reject(e: Error): void
  timer?: NodeJS.Timeout
}

interface Helper {
  child: ChildProcessWithoutNullStreams
  calls: Map<number, Call>
  reader: ResponseReader
  gone: boolean
  exited: Promise<void>
  /** Told when the last pending call has settled. */
  drained?: () => void
}

class SpawnClient {
  private helper?: Helper
  private lastStart = -Infinity
  private nextId = 1
  private closed = false
  private closing?: Promise<void>
  /** A failure is logged at warn once, until a helper answers again. */
  private warned = false

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  run: Exec = (cmd, args, opts = {}) => {
    const env = envStrings(opts.env)
    const h = env && framable([cmd, ...args, ...env]) ? this.current() : undefined
    if (!h || !env) return exec(cmd, args, opts)
    return new Promise((resolve, reject) => this.send(h, { cmd, args, opts, sentAt: Date.now(), resolve, reject }, env))
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutdown())
  }

  /** New calls go to exec; the pending ones finish in the helper (a timeout still needs its kill request), then it exits. */
  private async shutdown(): Promise<void> {
    this.closed = true
    const h = this.helper
    if (!h) return
    hold(h, true) // whoever awaits close() waits for the helper's running commands and its exit
    if (h.calls.size) await new Promise<void>((r) => (h.drained = r))
    h.child.stdin.end()
    await h.exited
  }

  /** The running helper, or a new one unless closed or within RESTART_MS of the last start. */
  private current(): Helper | undefined {
    if (this.helper || this.closed || this.now() - this.lastStart < RESTART_MS) return this.helper
    this.lastStart = this.now()
    this.helper = this.start()
    return this.helper
  }

  private start(): Helper {
    const child = spawn(this.path, [], { stdio: ['pipe', 'pipe', 'pipe'] })
    let exited!: () => void
    const h: Helper = { child, calls: new Map(), reader: new ResponseReader(), gone: false, exited: new Promise((r) => (exited = r)) }
    child.stdout.on('data', (b: Buffer) => {
      for (const r of h.reader.push(b)) this.answer(h, r)
    })
    child.stderr.on('data', (b: Buffer) => this.log.warn('spawn helper says', { text: b.toString().trim() }))
    child.stdin.on('error', (e) => this.lost(h, e))
    child.on('error', (e) => (this.lost(h, e), exited()))
    // 'close', not 'exit': the answers it wrote before dying are read by then
    child.on('close', (code, signal) => (this.lost(h, `exited ${code ?? signal}`), exited()))
    hold(h, false)
    socket(child.stdin).unref()
    socket(child.stderr).unref()
    return h
  }

  private send(h: Helper, call: Call, env: string[]): void {
    const id = this.nextId
    this.nextId = id >= 0xffff_ffff ? 1 : id + 1
    h.calls.set(id, call)
    if (h.calls.size === 1) hold(h, true)
    const input = Buffer.from(call.opts.input ?? '')
    h.child.stdin.write(encodeRun(id, [call.cmd, ...call.args], env, input.length))
    if (input.length) h.child.stdin.write(input)
    if (call.opts.timeoutMs) call.timer = setTimeout(() => h.gone || h.child.stdin.write(encodeKill(id)), call.opts.timeoutMs)
  }

  private answer(h: Helper, r: Response): void {
    const call = h.calls.get(r.id)
    if (!call) return this.log.warn('spawn helper answered an unknown call', { id: r.id })
    this.settle(h, r.id, call)
    this.warned = false
    if (r.spawnErrno) call.reject(spawnError(call.cmd, call.args, r.spawnErrno))
    else call.resolve({ code: r.status, stdout: r.stdout, stderr: r.stderr })
  }

  private settle(h: Helper, id: number, call: Call): void {
    clearTimeout(call.timer)
    h.calls.delete(id)
    if (h.calls.size) return
    if (this.closed) h.drained?.()
    else hold(h, false)
  }

  /** The helper is no use any more: its pending calls run through exec, with what is left of their timeout. */
  private lost(h: Helper, why: unknown): void {
    if (h.gone) return
    h.gone = true
    if (this.helper === h) this.helper = undefined
    h.child.kill('SIGKILL') // after a stdin error it may still be running
    if (!this.closed || h.calls.size) {
      this.log[this.warned ? 'debug' : 'warn']('spawn helper gone; commands run with exec until it restarts', { why: String(why), pending: h.calls.size, restartMs: RESTART_MS })
      this.warned = true
    }
    for (const [id, call] of [...h.calls]) {
      this.settle(h, id, call)
      const timeoutMs = call.opts.timeoutMs && Math.max(1, call.opts.timeoutMs - (Date.now() - call.sentAt))
      exec(call.cmd, call.args, { ...call.opts, timeoutMs }).then(call.resolve, call.reject)
    }
  }
}

/** "K=V" strings as Node's spawn makes them; [] inherits; undefined: not expressible (an empty env is envc 0). */
function envStrings(env: NodeJS.ProcessEnv | undefined): string[] | undefined {
  if (!env) return []
  const kv = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]))
  return kv.length ? kv : undefined
}

/** Strings are NUL-terminated on the wire; exec rejects a NUL inside one the way Node does. */
const framable = (strings: string[]): boolean => strings.every((s) => !s.includes('\0'))

/** A run request up to its stdin bytes, which follow it. */
export function encodeRun(id: number, argv: string[], env: string[], inputLen: number): Buffer {
  const strings = Buffer.from([...argv, ...env].join('\0') + '\0')
  const b = Buffer.allocUnsafe(REQUEST_HEAD + strings.length)
  ;[RUN, id, argv.length, env.length, inputLen].forEach((v, i) => b.writeUInt32LE(v, i * 4))
  strings.copy(b, REQUEST_HEAD)
  return b
}

export function encodeKill(id: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32LE(KILL, 0)
  b.writeUInt32LE(id, 4)
  return b
}

/** Shaped like Node's own spawn failure, so callers can't tell which path ran the command. */
function spawnError(cmd: string, args: readonly string[], errno: number): Error {
  const code = getSystemErrorName(-errno)
  return Object.assign(new Error(`spawn ${cmd} ${code}`), { errno: -errno, code, syscall: `spawn ${cmd}`, path: cmd, spawnargs: [...args] })
}

export interface Response {
  id: number
  status: number
  spawnErrno: number
  stdout: string
  stderr: string
}

/** Cuts the helper's stdout into responses; bytes arrive in pieces of any size. */
export class ResponseReader {
  private chunks: Buffer[] = []
  private have = 0

  push(b: Buffer): Response[] {
    this.chunks.push(b)
    this.have += b.length
    const out: Response[] = []
    while (this.have >= RESPONSE_HEAD) {
      const head = this.front(RESPONSE_HEAD)
      const outLen = head.readUInt32LE(12)
      const size = RESPONSE_HEAD + outLen + head.readUInt32LE(16)
      if (this.have < size) break
      const all = this.front(size)
      out.push({
        id: all.readUInt32LE(0),
        status: all.readInt32LE(4),
        spawnErrno: all.readUInt32LE(8),
        stdout: all.toString('utf8', RESPONSE_HEAD, RESPONSE_HEAD + outLen),
        stderr: all.toString('utf8', RESPONSE_HEAD + outLen, size),
      })
      const rest = all.subarray(size)
      this.chunks = rest.length ? [rest] : []
      this.have = rest.length
    }
    return out
  }

  /** The unread bytes from the start, at least n of them in one buffer (joined only when needed). */
  private front(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0]
  }
}

/** Keeps the process alive for the helper's answers (its stdout), or for its death if it dies (its exit). */
function hold(h: Helper, on: boolean): void {
  for (const x of [h.child, socket(h.child.stdout)]) on ? x.ref() : x.unref()
}

/** child_process types its pipes as plain streams; they are sockets, with ref/unref. */
const socket = (s: unknown): Socket => s as Socket
