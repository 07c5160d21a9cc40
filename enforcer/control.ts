// The agent's control socket: HTTP over a unix socket in the run dir. The
// plugin asks it whether a workload is programmed; `wren-enforcer status`
// asks what the agent knows and waits for sync; the native plugin shim posts
// whole plugin invocations to /cni (see cni/serve.ts). Local only: the socket
// is created 0600 in a root-owned run dir.
import type { IncomingMessage, Server } from 'node:http'
import { http } from '../shared/node-http.ts'
import { chmodSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:net'

export const SOCKET_NAME = 'agent.sock'

export function socketPath(runDir: string): string {
  return join(runDir, SOCKET_NAME)
}

export interface ControlHandlers {
  /** `kernel`: also count what the kernel holds (runs the save commands; `/status?kernel=0` skips it). */
  status(kernel: boolean): Promise<Record<string, unknown>> | Record<string, unknown>
  waitSynced(timeoutMs: number): Promise<boolean>
  waitProgrammed(iface: string, timeoutMs: number): Promise<boolean>
  metrics?(): Promise<string>
  /** What each programmed set holds, in words (the kernel keeps no such text): name → description. */
  sets?(): Record<string, string>
  /** /healthz and /readyz (see health.ts): the answer for a path, undefined for others. */
  health?(path: string): { code: number; body: unknown } | undefined
  /** Runs one plugin invocation (a cni/serve.ts frame); absent, /cni answers 404 and the shim runs the plugin itself. */
  cni?(frame: Buffer): Promise<{ code: number; stdout: string }>
}

/** A plugin request carries a netconf and an environment: far below this. */
const MAX_CNI_FRAME = 16 << 20

const MAX_WAIT_MS = 120_000

function parseTimeout(v: string | null, fallback: number): number {
  const n = v === null ? fallback : Number(v)
  return Number.isFinite(n) && n >= 0 ? Math.min(n, MAX_WAIT_MS) : fallback
}

/** Is another agent answering on this socket? A stale socket file refuses the connection. */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })
}

export async function serveControl(runDir: string, h: ControlHandlers): Promise<Server> {
  mkdirSync(runDir, { recursive: true, mode: 0o755 })
  const path = socketPath(runDir)
  if (await socketAlive(path)) throw new Error(`another wren-enforcer is running (it answers on ${path})`)
  rmSync(path, { force: true })
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent')
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body) + '\n')
    }
    try {
      if (url.pathname === '/cni' && req.method === 'POST' && h.cni) {
        const frame = await readBody(req, MAX_CNI_FRAME)
        // a request cut short is never run: the shim then knows nothing was done
        if (!frame) return
        const answer = await h.cni(frame)
        const body = Buffer.from(answer.stdout)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-wren-cni-code': String(answer.code) })
        return res.end(body)
      }
      const probe = h.health?.(url.pathname)
      if (probe) return reply(probe.code, probe.body)
      if (url.pathname === '/status') return reply(200, await h.status(url.searchParams.get('kernel') !== '0'))
      if (url.pathname === '/sets' && h.sets) return reply(200, h.sets())
      if (url.pathname === '/metrics' && h.metrics) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
        return res.end(await h.metrics())
      }
      if (url.pathname === '/synced') {
        const ok = await h.waitSynced(parseTimeout(url.searchParams.get('timeoutMs'), 10_000))
        return reply(ok ? 200 : 504, { synced: ok })
      }
      if (url.pathname === '/programmed') {
        const iface = url.searchParams.get('iface') ?? ''
        if (!/^[a-z0-9]{1,15}$/.test(iface)) return reply(400, { error: 'iface must be a host interface name' })
        const ok = await h.waitProgrammed(iface, parseTimeout(url.searchParams.get('timeoutMs'), 3000))
        return reply(ok ? 200 : 504, { programmed: ok })
      }
      reply(404, { error: `no such endpoint ${url.pathname}` })
    } catch (e) {
      reply(500, { error: (e as Error).message })
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  chmodSync(path, 0o600)
  return server
}

/** The whole request body, or undefined when the client went away or sent too much. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > max) {
        resolve(undefined)
        req.destroy()
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('aborted', () => resolve(undefined))
    req.on('error', () => resolve(undefined))
  })
}

/** Client side, for the CLI. Rejects with a clear message when no agent runs. */
export function controlGet(runDir: string, pathAndQuery: string, timeoutMs = 130_000): Promise<{ code: number; body: any }> {
  const path = socketPath(runDir)
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path, path: pathAndQuery, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        try {
          resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) })
        } catch {
          resolve({ code: res.statusCode ?? 0, body: text })
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`agent at ${path} did not answer in ${timeoutMs} ms`)))
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(new Error(`no wren-enforcer is running (nothing answers on ${path})`))
      else reject(e)
    })
    req.end()
  })
}
