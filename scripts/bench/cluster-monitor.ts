// Two timestamped event streams for the route-latency figure, each line stamped
// with performance.now() the moment it reaches this process:
// - KernelMonitor: a namespace's route and neighbour changes (`ip -n NS monitor
//   route neigh`; FDB entries of a VXLAN device arrive there too, as
//   bridge-family neighbours). Waiting on the stream instead of polling `ip
//   route` means a latency is the kernel's notification, not a poll interval.
// - ApiWatch: a watch on Nodes from the API server the agents use, as lines
//   "ADDED c" / "DELETED c": when the API's event can reach any watcher.
//
// Model: a waiter is registered before the action it times and matches only
// lines that arrive after it was registered, so an earlier repetition's line
// cannot satisfy it. Lines nobody waits for are dropped.
import { spawn, type ChildProcess } from 'node:child_process'
import { get, type ClientRequest } from 'node:http'
import type { Cleanup } from '../../e2e/lib/host.ts'

interface Waiter {
  match: (line: string) => boolean
  resolve: (at: number) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

class LineWaiters {
  private waiters = new Set<Waiter>()
  private partial = ''
  /** The last lines seen, for the message of a wait that timed out. */
  private recent: string[] = []

  constructor(readonly name: string) {}

  /** Resolves with the arrival time of the first later line `match` accepts; rejects after `timeoutMs`. */
  waitFor(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = () => {
        this.waiters.delete(w)
        reject(new Error(`${this.name}: no "${what}" within ${timeoutMs} ms; last lines seen:\n  ${this.recent.join('\n  ')}`))
      }
      const w: Waiter = { match, resolve, reject, timer: setTimeout(fail, timeoutMs) }
      this.waiters.add(w)
    })
  }

  protected onData(b: Buffer | string, at: number): void {
    const lines = (this.partial + b.toString()).split('\n')
    this.partial = lines.pop()!
    for (const line of lines) this.onLine(line, at)
  }

  protected onLine(line: string, at: number): void {
    if (process.env.WREN_BENCH_TRACE) process.stderr.write(`[${at.toFixed(1)}] ${this.name}: ${line}\n`)
    this.recent = [...this.recent.slice(-9), line]
    for (const w of [...this.waiters]) {
      if (!w.match(line)) continue
      clearTimeout(w.timer)
      this.waiters.delete(w)
      w.resolve(at)
    }
  }

  protected failAll(e: Error): void {
    for (const w of this.waiters) (clearTimeout(w.timer), w.reject(e))
    this.waiters.clear()
  }
}

export class KernelMonitor extends LineWaiters {
  private child?: ChildProcess

  constructor(readonly netns: string) {
    super(`ip monitor in ${netns}`)
  }

  start(cleanup: Cleanup): void {
    const child = spawn('ip', ['-n', this.netns, 'monitor', 'route', 'neigh'], { stdio: ['ignore', 'pipe', 'inherit'] })
    this.child = child
    cleanup.push(this.name, () => this.stop())
    child.stdout!.on('data', (b: Buffer) => this.onData(b, performance.now()))
    child.once('exit', (code, sig) => this.failAll(new Error(`${this.name} exited (${code ?? sig})`)))
  }

  stop(): void {
    if (this.child?.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

export class ApiWatch extends LineWaiters {
  private req?: ClientRequest

  constructor(readonly apiUrl: string) {
    super('Node watch')
  }

  /** Resolves once the watch stream is open. */
  start(cleanup: Cleanup): Promise<void> {
    return new Promise((resolve, reject) => {
      this.req = get(`${this.apiUrl}/api/v1/nodes?watch=true`, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`Node watch: HTTP ${res.statusCode}`))
        res.on('data', (b: Buffer) => this.onData(b, performance.now()))
        res.on('error', () => {})
        resolve()
      })
      this.req.on('error', (e) => (reject(e), this.failAll(e)))
      cleanup.push(this.name, () => this.stop())
    })
  }

  stop(): void {
    this.req?.destroy()
  }

  protected override onLine(line: string, at: number): void {
    if (!line.trim()) return
    const ev = JSON.parse(line)
    super.onLine(`${ev.type} ${ev.object?.metadata?.name}`, at)
  }
}
