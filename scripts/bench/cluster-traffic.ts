// Traffic between pods in two placements measured back to back: the client pod
// on node a to a server pod on node a (same node: the reference) and to a
// server pod on node b (cross node, through the underlay's host-gw route or
// the VXLAN device). Rounds alternate which placement runs first, so drift of
// this small machine hits both alike; the median round counts.
// - connection rate: scripts/bench/conn-server.ts and conn-client.ts (connect,
//   read one byte, reset), as bench-enforcer's connrate.ts;
// - throughput: Debian's iperf3, one TCP stream.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { stopProcess, waitListening } from '../../e2e/lib/cluster.ts'
import { REPO, type Cleanup } from '../../e2e/lib/host.ts'
import type { NodePod } from '../../e2e/lib/nodes.ts'
import { exec } from '../../shared/exec.ts'
import { startServer } from './connrate.ts'
import { NODE } from './node.ts'
import { CONN_PORT } from './synth.ts'

const CLIENT = join(REPO, 'scripts', 'bench', 'conn-client.ts')
const IPERF_PORT = 5201

export interface Pair {
  client: NodePod
  same: NodePod
  cross: NodePod
}

export interface PairRuns {
  /** One figure per round, in round order. */
  same: number[]
  cross: number[]
}

/** Runs `measure` on both placements `rounds` times, alternating which goes first. */
async function alternate(pair: Pair, rounds: number, measure: (server: NodePod) => Promise<number>): Promise<PairRuns> {
  const out: PairRuns = { same: [], cross: [] }
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? (['same', 'cross'] as const) : (['cross', 'same'] as const)
    for (const k of order) out[k].push(await measure(pair[k]))
  }
  return out
}

async function connRun(client: NodePod, server: NodePod, seconds: number): Promise<number> {
  const args = ['netns', 'exec', client.netns, NODE, '--no-warnings', CLIENT, server.ip, String(CONN_PORT), String(seconds * 1000)]
  const r = await exec('ip', args, { timeoutMs: seconds * 1000 + 60_000 })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}')
  if (r.code !== 0 || out.error) throw new Error(`conn client ${client.ip} → ${server.ip}: ${out.error ?? r.stderr.trim()}`)
  if (out.failures > 0) throw new Error(`conn client ${client.ip} → ${server.ip}: ${out.failures} connections failed`)
  return (out.connections / out.ms) * 1000
}

/** New connections per second, same node and cross node. */
export async function connRates(cleanup: Cleanup, pair: Pair, rounds: number, seconds: number): Promise<PairRuns> {
  for (const server of [pair.same, pair.cross]) await startServer(cleanup, server.netns)
  return alternate(pair, rounds, (server) => connRun(pair.client, server, seconds))
}

async function startIperfServer(cleanup: Cleanup, netns: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', netns, 'iperf3', '-s', '-p', String(IPERF_PORT)], { stdio: 'ignore', detached: true })
  cleanup.push(`iperf3 server in ${netns}`, () => stopProcess(child, 2000, true))
  await waitListening(netns, [{ port: IPERF_PORT, protocol: 'TCP' }])
}

async function iperfRun(client: NodePod, server: NodePod, seconds: number): Promise<number> {
  const args = ['netns', 'exec', client.netns, 'iperf3', '-c', server.ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-J']
  const r = await exec('ip', args, { timeoutMs: seconds * 1000 + 30_000 })
  let out: any
  try {
    out = JSON.parse(r.stdout)
  } catch {
    throw new Error(`iperf3 ${client.ip} → ${server.ip}: no JSON (exit ${r.code}): ${r.stderr.trim()}`)
  }
  if (out.error || r.code !== 0) throw new Error(`iperf3 ${client.ip} → ${server.ip}: ${out.error ?? r.stderr.trim()}`)
  return out.end.sum_received.bits_per_second / 1e9
}

/** Gbit/s received, same node and cross node. */
export async function throughput(cleanup: Cleanup, pair: Pair, rounds: number, seconds: number): Promise<PairRuns> {
  for (const server of [pair.same, pair.cross]) await startIperfServer(cleanup, server.netns)
  return alternate(pair, rounds, (server) => iperfRun(pair.client, server, seconds))
}
