// Node appearing → its routes programmed on another node, and Node deleted →
// withdrawn: a third node `c` is created in the API server and deleted again,
// and node a's kernel is watched for every entry the agent must make for it
// (host-gw: the route; VXLAN: the route, the neighbour entry of its gateway and
// the FDB entry of its VTEP). The figure is create()/delete() → the last of
// those lines reaching this process.
//
// References in the same repetitions, timed the same way:
// - the same kind of route added and deleted by hand, written to a running
//   `ip -batch -` inside node a (line written → monitor line, no process
//   start): the floor of the measuring method;
// - the API's watch event reaching a watcher in this process: the delivery
//   part the agent cannot do faster than.
// And the agent's own split of that time, from its log (cluster-agentlog.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import type { NodesCluster } from '../../e2e/lib/nodes.ts'
import type { Cleanup } from '../../e2e/lib/host.ts'
import { join } from 'node:path'
import { AgentLog } from './agentlog.ts'
import { splitAgentTime, type AgentSplit } from './cluster-agentlog.ts'
import { ApiWatch, KernelMonitor } from './cluster-monitor.ts'

export type Mode = 'host-gw' | 'vxlan'

export interface Times {
  add: number[]
  del: number[]
}

export interface RouteResult {
  agent: Times
  hand: Times
  watch: Times
  /** Wall-clock ms of every Node create/delete, for the agent log's split. */
  changes: number[]
  split?: AgentSplit
}

const THIRD = { name: 'c', cidr: '10.98.3.0/24', gateway: '10.98.3.0' }
/** Host-gw: an address on the nodes' L2 subnet. VXLAN: one on no subnet of node a's. */
const THIRD_IP: Record<Mode, string> = { 'host-gw': '10.95.0.3', vxlan: '10.95.7.1' }
const HAND_CIDR = '10.98.200.0/24'
const VXLAN_DEV = 'vxlan.wren'
const TIMEOUT_MS = 10_000

interface Entry {
  what: string
  added: (line: string) => boolean
  deleted: (line: string) => boolean
}

const starts = (prefix: string) => (line: string) => line.startsWith(prefix)

function entriesFor(mode: Mode): Entry[] {
  const route = { what: `route ${THIRD.cidr}`, added: starts(`${THIRD.cidr} `), deleted: starts(`Deleted ${THIRD.cidr} `) }
  if (mode === 'host-gw') return [route]
  const on = (ip: string, what: string) => ({ what, added: starts(`${ip} dev ${VXLAN_DEV} lladdr`), deleted: starts(`Deleted ${ip} dev ${VXLAN_DEV}`) })
  return [on(THIRD.gateway, `neighbour ${THIRD.gateway}`), on(THIRD_IP.vxlan, `FDB → ${THIRD_IP.vxlan}`), route]
}

function thirdNode(mode: Mode): any {
  const addresses = [{ type: 'InternalIP', address: THIRD_IP[mode] }, { type: 'Hostname', address: THIRD.name }]
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: THIRD.name, labels: { 'kubernetes.io/hostname': THIRD.name } }, spec: { podCIDRs: [THIRD.cidr], podCIDR: THIRD.cidr }, status: { addresses } }
}

/** Starts the waits, then acts; returns ms from the act to the last awaited line of each stream, and the act's wall time. */
async function timed(waits: () => Promise<number>[][], act: () => void): Promise<{ ms: number[]; wall: number }> {
  const pending = waits()
  const t0 = performance.now()
  act()
  const ms = await Promise.all(pending.map(async (group) => Math.max(...(await Promise.all(group))) - t0))
  return { ms, wall: performance.timeOrigin + t0 }
}

/** A running `ip -batch -` in a namespace: a command is one line on its stdin, no process start per command. */
class IpBatch {
  private child?: ChildProcess

  constructor(readonly netns: string) {}

  start(cleanup: Cleanup): void {
    // -force: a failed command must not end the batch (its error shows as a missing monitor line)
    const child = spawn('ip', ['-n', this.netns, '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] })
    this.child = child
    cleanup.push(`ip -batch in ${this.netns}`, () => this.stop())
  }

  send(command: string): void {
    this.child!.stdin!.write(command + '\n')
  }

  stop(): void {
    if (this.child?.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

function handRoute(c: NodesCluster, mode: Mode): string {
  return mode === 'host-gw' ? `${HAND_CIDR} via ${c.node('b').ip} dev eth0` : `${HAND_CIDR} via 10.98.200.0 dev ${VXLAN_DEV} onlink`
}

interface Streams {
  mon: KernelMonitor
  watch: ApiWatch
  ip: IpBatch
}

const pause = () => new Promise((r) => setTimeout(r, 50 + Math.random() * 100))

/** One repetition of each: the agent's (with the API watch beside it), then by hand. */
async function repetition(c: NodesCluster, mode: Mode, { mon, watch, ip }: Streams, out: RouteResult): Promise<void> {
  const entries = entriesFor(mode)
  const kernel = (key: 'added' | 'deleted') => entries.map((e) => mon.waitFor(e[key], TIMEOUT_MS, `${e.what} ${key}`))
  const api = (type: string) => [watch.waitFor((l) => l === `${type} ${THIRD.name}`, TIMEOUT_MS, `${type} ${THIRD.name}`)]
  const add = await timed(() => [kernel('added'), api('ADDED')], () => void c.api.create('Node', thirdNode(mode)))
  await pause()
  const del = await timed(() => [kernel('deleted'), api('DELETED')], () => void c.api.delete('Node', { metadata: { name: THIRD.name } }))
  await pause()
  out.agent.add.push(add.ms[0]!), out.watch.add.push(add.ms[1]!), out.agent.del.push(del.ms[0]!), out.watch.del.push(del.ms[1]!)
  out.changes.push(add.wall, del.wall)
  const hand = handRoute(c, mode)
  const hAdd = await timed(() => [[mon.waitFor(starts(`${HAND_CIDR} via`), TIMEOUT_MS, 'hand route added')]], () => ip.send(`route add ${hand}`))
  await pause()
  const hDel = await timed(() => [[mon.waitFor(starts(`Deleted ${HAND_CIDR} `), TIMEOUT_MS, 'hand route deleted')]], () => ip.send(`route del ${HAND_CIDR}`))
  out.hand.add.push(hAdd.ms[0]!), out.hand.del.push(hDel.ms[0]!)
  await pause()
}

export async function timeNodeRoutes(cleanup: Cleanup, c: NodesCluster, mode: Mode, reps: number): Promise<RouteResult> {
  const netns = c.node('a').netns
  const s: Streams = { mon: new KernelMonitor(netns), watch: new ApiWatch(c.api.url), ip: new IpBatch(netns) }
  s.mon.start(cleanup)
  s.ip.start(cleanup)
  try {
    await s.watch.start(cleanup)
    await new Promise((r) => setTimeout(r, 300)) // ip monitor subscribes after it starts
    await repetition(c, mode, s, emptyResult()) // warm-up: first netlink and JIT costs
    const agentLog = new AgentLog(join(c.node('a').root, 'agent.log'))
    agentLog.mark()
    const out = emptyResult()
    for (let i = 0; i < reps; i++) await repetition(c, mode, s, out)
    await new Promise((r) => setTimeout(r, 200)) // the last lines reach the log file
    out.split = splitAgentTime(agentLog.read(), out.changes)
    return out
  } finally {
    for (const x of [s.mon, s.watch, s.ip]) x.stop()
  }
}

function emptyResult(): RouteResult {
  return { agent: { add: [], del: [] }, hand: { add: [], del: [] }, watch: { add: [], del: [] }, changes: [] }
}
