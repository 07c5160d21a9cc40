// Helpers for the policy behaviour tests (e2e/policy-*.test.ts): a session
// that owns the kernel and proves it was left clean, probe assertions, the
// agent's stop/start, a pod's removal, kernel snapshots, and long-running
// traffic from inside a pod's netns.
//
// Long-running traffic: like probe.ts, this file is also a program. The host
// starts it under `ip netns exec NS node behaviour.ts MODE` with a JSON job on
// argv; it runs until its stdin closes, then prints what it saw as JSON.
//   loop:   per target, `concurrency` loops of short TCP connections, counting
//           outcomes (ok / refused / x / error) with the first few samples.
//   stream: one TCP connection to an echo server, a line every 100 ms; each
//           echo is reported on stdout as it arrives ("echo N").
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { Cleanup, exclusiveKernel, sh, trySh } from './host.ts'
import { Cluster, NODE_NAME, POD_BLACKHOLE6, delay, run, stopProcess, type ClusterOptions, type Pod } from './cluster.ts'
import { NODE_BIN, probeFrom, type ProbeSpec } from './probe.ts'

const SELF = fileURLToPath(import.meta.url)

export interface Session {
  cluster: Cluster
  cleanup: Cleanup
}

/** Lock, cluster up, run `body`, tear down; then assert the host holds nothing of ours. */
export async function session(t: Test, body: (s: Session) => Promise<void>, extraLeftovers: () => string[] = () => [], opts: ClusterOptions = {}): Promise<void> {
  const cleanup = new Cleanup()
  await exclusiveKernel(cleanup)
  const cluster = new Cluster(opts)
  try {
    await noForeignAgents(t)
    await cluster.start()
    const seen = watchForeignAgents(cluster)
    try {
      await body({ cluster, cleanup })
    } finally {
      const foreign = seen.stop()
      t.same(foreign, [], 'no other wren agent ran during this session (its chains would fight ours: results above not trustworthy)')
    }
  } catch (e) {
    t.fail(`session: ${(e as Error).stack}`)
  } finally {
    const errs = [...(await cluster.teardown()), ...(await cleanup.run())]
    t.same(errs, [], 'teardown without errors')
    t.same([...leftovers(), ...extraLeftovers()], [], 'nothing of ours left on the host')
  }
}

/**
 * Some runs (seed scenarios, benchmarks) start agents without taking the kernel
 * lock, and their clusters name netns `ws-N` like ours: wait until none runs.
 */
export async function noForeignAgents(t: Test): Promise<void> {
  const deadline = Date.now() + 10 * 60_000
  for (let said = false; ; said = true) {
    const agents = hostAgents().join('\n')
    if (!agents) return
    if (Date.now() > deadline) throw new Error(`other wren agents still running after 10 min:\n${agents}`)
    if (!said) t.comment(`waiting for other wren agents to finish:\n${agents}`)
    await delay(1000)
  }
}

/**
 * `pid command` of every running agent in this process's network namespace: an
 * agent of a multi-node test runs in a node's namespace, with its own
 * iptables, and cannot touch the host's chains.
 */
function hostAgents(): string[] {
  const here = netnsOf('self')
  return trySh('pgrep', ['-af', 'wren-enforcer.mjs run'])
    .stdout.split('\n')
    .filter((l) => l.trim() && netnsOf(l.split(' ')[0]!) === here)
}

function netnsOf(pid: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`)
  } catch {
    return undefined // gone meanwhile
  }
}

/** Samples running agents every 250 ms; `stop()` returns the command lines of any not ours. */
export function watchForeignAgents(cluster: Cluster): { stop: () => string[] } {
  const foreign = new Set<string>()
  const timer = setInterval(() => {
    for (const l of hostAgents()) if (!l.includes(cluster.runDir)) foreign.add(l.replace(/^\d+ /, ''))
  }, 250)
  return { stop: () => (clearInterval(timer), [...foreign]) }
}

/** What marks a line or set as wren's own (other tests use owner prefixes like `wrendp`, `wrenbench`). */
export const WREN = /wren-|wren\+|wren[46][inplu]-/

/** `*-save` output; rule sets of concurrent benchmarks can exceed the default 1 MiB buffer. */
export function save(cmd: string, args: string[] = []): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 512 << 20, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** wren's chains, rules and sets, the test netns and links, the test routes. */
export function leftovers(): string[] {
  const out: string[] = []
  for (const l of sh('ip', ['netns', 'list']).split('\n')) if (/^(ws-|wb-)/.test(l)) out.push(`netns ${l.split(' ')[0]}`)
  for (const l of sh('ip', ['-o', 'link', 'show']).split('\n')) {
    const name = l.split(':')[1]?.trim().split('@')[0]
    if (name && /^(wren[0-9a-f]{11}$|wrenstray|wtst)/.test(name)) out.push(`link ${name}`)
  }
  for (const cmd of ['iptables-save', 'ip6tables-save']) for (const l of save(cmd).split('\n')) if (WREN.test(l)) out.push(`${cmd}: ${l}`)
  for (const l of save('ipset', ['list', '-n']).split('\n')) if (/^wren|^wtest/.test(l)) out.push(`ipset ${l}`)
  for (const cidr of ['10.92.0.0/16', '10.93.0.0/16', '10.94.0.0/24', '10.97.0.0/16']) if (sh('ip', ['route', 'show', 'exact', cidr]).trim()) out.push(`route ${cidr}`)
  // the dual-stack range's blackhole and any pod /128 inside it
  for (const l of sh('ip', ['-6', 'route', 'show', 'root', POD_BLACKHOLE6]).split('\n')) if (l.trim()) out.push(`route ${l.trim()}`)
  return out
}

export interface Case {
  what: string
  to: string
  port: number
  udp?: boolean
  bind?: string
  /** ok: reached the server whose banner is `banner` (when given); x: dropped. */
  expect: 'ok' | 'x'
  banner?: string
}

/** Probes every case in parallel from `from` (a pod, or '' for the host) and asserts each outcome. */
export async function expectFlows(t: Test, from: Pod | '', cases: Case[]): Promise<void> {
  const netns = from === '' ? '' : from.netns
  const specs: ProbeSpec[] = cases.map((c) => ({ kind: c.udp ? 'udp' : 'tcp', host: c.to, port: c.port, bind: c.bind }))
  const results = await probeFrom(netns, specs)
  const src = from === '' ? 'host' : `${from.spec.namespace}/${from.spec.name}`
  cases.forEach((c, i) => {
    const r = results[i]!
    const got = r.outcome === 'ok' && c.banner && r.reply !== c.banner ? `ok from ${r.reply}` : r.outcome
    t.equal(got, c.expect, `${src} → ${c.what} (${c.udp ? 'udp' : 'tcp'} ${c.to}:${c.port}) ${c.expect === 'ok' ? 'reached' : 'dropped'}${r.detail ? ` [${r.detail}]` : ''}`)
  })
}

/** A case to a pod's banner server. */
export function to(pod: Pod, port: number, expect: 'ok' | 'x', udp = false): Case {
  const id = `${pod.spec.namespace}/${pod.spec.name}`
  return { what: id, to: pod.ip, port, udp, expect, banner: id }
}

/** A case to a pod's banner server over IPv6 (dual-stack clusters). */
export function to6(pod: Pod, port: number, expect: 'ok' | 'x', udp = false): Case {
  if (!pod.ip6) throw new Error(`pod ${pod.spec.namespace}/${pod.spec.name} has no IPv6 address (cluster not dual-stack?)`)
  return { ...to(pod, port, expect, udp), to: pod.ip6 }
}

/** `status --json` of the session's agent. */
export function status(cluster: Cluster): any {
  return JSON.parse(sh(cluster.enforcerBin, ['status', '--run-dir', cluster.runDir, '--json']))
}

/** The running agent of `cluster`: found by its unique run dir on the command line. */
function agentPid(cluster: Cluster): number | undefined {
  const out = trySh('pgrep', ['-f', `wren-enforcer.mjs run .*--run-dir ${cluster.runDir} `]).stdout.trim()
  const pids = out.split('\n').filter(Boolean).map(Number)
  if (pids.length > 1) throw new Error(`several agents on ${cluster.runDir}: ${pids.join(' ')}`)
  return pids[0]
}

/** SIGTERM to the agent; resolves once it is gone. */
export async function stopAgent(cluster: Cluster): Promise<void> {
  const pid = agentPid(cluster)
  if (!pid) throw new Error('no agent running')
  process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + 10_000
  while (agentPid(cluster)) {
    if (Date.now() > deadline) throw new Error(`agent ${pid} still running 10 s after SIGTERM`)
    await delay(50)
  }
}

/** Starts a new agent on the cluster's folders (as Cluster does) and waits until it is synced. */
export async function startAgent(s: Session): Promise<void> {
  const c = s.cluster
  const log = openSync(join(c.logDir, 'agent.log'), 'a')
  const args = ['run', '--manifests', c.manifests, '--state-dir', c.stateDir, '--run-dir', c.runDir, '--node-name', NODE_NAME, '--log-level', 'debug']
  const agent = spawn(c.enforcerBin, args, { stdio: ['ignore', log, log] })
  closeSync(log)
  s.cleanup.push('stop restarted agent', () => stopProcess(agent, 5000))
  const deadline = Date.now() + 15_000
  for (;;) {
    if (agent.exitCode !== null) throw new Error(`restarted agent exited ${agent.exitCode}`)
    if ((await run(c.enforcerBin, ['status', '--run-dir', c.runDir, '--wait-synced', '--timeout', '2s'])).code === 0) return
    if (Date.now() > deadline) throw new Error('restarted agent not synced after 15 s')
    await delay(100)
  }
}

/** CNI DEL of a pod's sandbox, as the runtime does when the pod goes away; the netns goes too. */
export async function removeSandbox(cluster: Cluster, pod: Pod): Promise<void> {
  const s = pod.spec
  const r = await cluster.cni('DEL', s, pod.containerId, `/var/run/netns/${pod.netns}`)
  if (r.code !== 0) throw new Error(`CNI DEL ${s.namespace}/${s.name}: ${r.stdout} ${r.stderr}`)
  trySh('ip', ['netns', 'del', pod.netns])
  cluster.pods.delete(`${s.namespace}/${s.name}`)
}

/** Lines of `*-save` output that mention wren, counters zeroed (they change with traffic). */
export function wrenRules(cmd = 'iptables-save'): string[] {
  return save(cmd)
    .split('\n')
    .filter((l) => WREN.test(l))
    .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'))
}

/** Members of every wren ipset, by set name. */
export function wrenSets(): Map<string, string[]> {
  const sets = new Map<string, string[]>()
  for (const l of save('ipset', ['save']).split('\n')) {
    const created = /^create (wren[46][inplu]-\S+) /.exec(l)
    if (created) sets.set(created[1]!, [])
    const m = /^add (wren[46][inplu]-\S+) (.+)$/.exec(l)
    if (m) sets.get(m[1]!)?.push(m[2]!)
  }
  return sets
}

/** A server in a pod that echoes every line back (for long-lived connections). */
export async function serveEcho(s: Session, pod: Pod, port: number): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', pod.netns, 'socat', `TCP4-LISTEN:${port},fork,reuseaddr`, 'PIPE'], { stdio: 'ignore', detached: true })
  s.cleanup.push(`echo server ${pod.netns}:${port}`, () => stopProcess(child, 2000, true))
  for (let i = 0; i < 100 && !trySh('ip', ['netns', 'exec', pod.netns, 'ss', '-Hlnt', `sport = :${port}`]).stdout.trim(); i++) await delay(50)
}

/**
 * A banner server that never forks (one Node process, backlog 511): socat's
 * fork per connection overflows its accept queue under a connection loop on
 * a slow machine, and a SYN the server drops looks like one the dataplane did.
 */
export async function serveAccepting(s: Session, pod: Pod, ports: number[]): Promise<void> {
  const child = inNetnsProgram(pod.netns, 'accept', { ports, banner: `${pod.spec.namespace}/${pod.spec.name}` })
  s.cleanup.push(`accepting server ${pod.netns}`, () => stopProcess(child, 2000))
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && resolve())
    child.on('close', (code) => reject(new Error(`accepting server in ${pod.netns} exited ${code}`)))
  })
}

export interface LoopTarget {
  name: string
  host: string
  port: number
  timeoutMs: number
  concurrency?: number
}
export type Tally = Record<string, { ok: number; refused: number; x: number; error: number; samples: string[] }>

/** Starts `loop` mode in a netns; `stop()` ends it and returns the tally per target. */
export function startLoop(s: Pick<Session, 'cleanup'>, netns: string, targets: LoopTarget[]): { stop: () => Promise<Tally> } {
  const child = inNetnsProgram(netns, 'loop', targets)
  const out: Buffer[] = []
  child.stdout!.on('data', (b) => out.push(b))
  const done = new Promise<Tally>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(Buffer.concat(out).toString())) : reject(new Error(`loop in ${netns} exited ${code}`))))
  })
  s.cleanup.push(`loop in ${netns}`, () => stopProcess(child, 3000))
  return { stop: () => (child.stdin!.end(), done) }
}

/** Starts `stream` mode; `echoes()` is how many lines came back so far, `error` the connection's end if any. */
export function startStream(s: Session, netns: string, host: string, port: number) {
  const child = inNetnsProgram(netns, 'stream', { host, port })
  const state = { echoes: 0, error: '' }
  child.stdout!.on('data', (b: Buffer) => {
    for (const l of b.toString().split('\n')) {
      if (l.startsWith('echo ')) state.echoes = Number(l.slice(5))
      else if (l.trim()) state.error = l.trim()
    }
  })
  s.cleanup.push(`stream in ${netns}`, () => stopProcess(child, 3000))
  return { state, stop: () => stopProcess(child, 3000) }
}

function inNetnsProgram(netns: string, mode: string, job: unknown): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, NODE_BIN, '--no-warnings', SELF, mode, JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'] })
}

// ---- the program side, run inside a netns ----

function attempt(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port })
    const done = (o: string) => (clearTimeout(timer), sock.destroy(), resolve(o))
    const timer = setTimeout(() => done('x'), timeoutMs)
    sock.on('connect', () => done('ok'))
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`))
  })
}

async function loopMode(targets: LoopTarget[], stopped: () => boolean): Promise<Tally> {
  const tally: Tally = {}
  const t0 = Date.now()
  const one = async (tg: LoopTarget) => {
    while (!stopped()) {
      const o = await attempt(tg.host, tg.port, tg.timeoutMs)
      const row = (tally[tg.name] ??= { ok: 0, refused: 0, x: 0, error: 0, samples: [] })
      const key = o.startsWith('error') ? 'error' : (o as 'ok' | 'refused' | 'x')
      row[key]++
      if (row.samples.length < 5 && !row.samples.some((s) => s.startsWith(o))) row.samples.push(`${o} at +${Date.now() - t0} ms`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  await Promise.all(targets.flatMap((tg) => Array.from({ length: tg.concurrency ?? 1 }, () => one(tg))))
  return tally
}

function streamMode(job: { host: string; port: number }): void {
  let sent = 0
  let buf = ''
  const sock = connect(job)
  sock.on('connect', () => {
    const timer = setInterval(() => sock.write(`${++sent}\n`), 100)
    sock.on('close', () => clearInterval(timer))
  })
  sock.on('data', (b) => {
    buf += b.toString()
    const lines = buf.split('\n')
    buf = lines.pop()!
    if (lines.length) process.stdout.write(`echo ${lines.at(-1)}\n`)
  })
  sock.on('error', (e: NodeJS.ErrnoException) => process.stdout.write(`error ${e.code}\n`))
  sock.on('end', () => process.stdout.write('error closed by peer\n'))
  process.stdin.on('end', () => process.exit(0)).resume()
}

function acceptMode(job: { ports: number[]; banner: string }): void {
  let listening = 0
  for (const port of job.ports) {
    createServer((sock) => {
      sock.on('error', () => {}) // a client that resets first
      sock.end(`${job.banner}\n`)
    }).listen({ port, host: '0.0.0.0', backlog: 511 }, () => ++listening === job.ports.length && process.stdout.write('listening\n'))
  }
  process.stdin.on('end', () => process.exit(0)).resume()
}

if (process.argv[1] === SELF) {
  const [mode, job] = process.argv.slice(2)
  if (mode === 'stream') streamMode(JSON.parse(job!))
  else if (mode === 'accept') acceptMode(JSON.parse(job!))
  else {
    let stop = false
    process.stdin.on('end', () => (stop = true)).resume()
    loopMode(JSON.parse(job!), () => stop).then((t) => process.stdout.write(JSON.stringify(t)))
  }
}
