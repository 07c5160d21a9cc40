// Benchmark of wren as a cluster's network plugin, on the real kernel (root):
// the e2e multi-node harness (e2e/lib/nodes.ts: every node a network namespace
// with its own agent, pods wired by the real bin/wren inside it, Node objects
// from the in-repo API server), run once per underlay: one L2 segment
// (host-gw) and a router between subnets (VXLAN). For each it measures
//   1. a Node appearing → its routes programmed on node a, and deleted →
//      withdrawn (issue 7's target: p99 ≤ 100 ms), timed on `ip monitor`
//      beside a route added by hand the same way and the API's watch event;
//   2. new TCP connections per second from a pod on node a to a pod on node
//      b, beside the same client to a pod on its own node;
//   3. iperf3 throughput in the same two placements.
// Why: the routes decide how soon pods on a new node are reachable, and the
// traffic figures say what crossing nodes costs against staying on one.
//
// Everything made is pushed on one cleanup stack as soon as it exists (the
// cluster's own stack tears down agents, pods, namespaces, links and
// blackholes), also on failure and Ctrl-C. See `scripts/bench-cluster --help`.
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { Cleanup, REPO, exclusiveKernel, sh, trySh } from '../e2e/lib/host.ts'
import { NodesCluster, type NodePod } from '../e2e/lib/nodes.ts'
import { buildRows, type ModeFigures } from './bench/cluster-figures.ts'
import { timeNodeRoutes, type Mode } from './bench/cluster-routes.ts'
import { connRates, throughput, type Pair } from './bench/cluster-traffic.ts'
import { NODE } from './bench/node.ts'
import { benchMain, log } from './bench/main.ts'

const NODES = [
  { name: 'a', podCidrs: ['10.98.1.0/24'] },
  { name: 'b', podCidrs: ['10.98.2.0/24'] },
]
const UNDERLAY = { 'host-gw': 'l2', vxlan: 'routed' } as const
/** CNI ADDs in flight at once while wiring pods. */
const WIRE_CONCURRENCY = 4

const HELP = `usage: scripts/bench-cluster [--quick] [options]
  --quick            10 pods per node, 20 repetitions, 2 rounds of 1 s (about a minute)
  --pods N           pods per node (default 50)
  --reps N           Node add/delete repetitions per underlay (default 100)
  --rounds N         rounds of each traffic measurement, alternating placements (default 5)
  --conn-seconds S   one connection-rate run (default 2)
  --iperf-seconds S  one iperf3 run (default 3)
  --modes LIST       host-gw,vxlan (default both)
  --keep DIR         copy the agents' logs to DIR before teardown
  --no-build         do not rebuild dist/ first
env WREN_BENCH_TRACE=1 prints every monitored line, WREN_BENCH_DEBUG=1 a failure's stack`

interface Options {
  pods: number
  reps: number
  rounds: number
  connSeconds: number
  iperfSeconds: number
  modes: Mode[]
  keep?: string
  build: boolean
}

const FLAGS = {
  quick: { type: 'boolean' },
  pods: { type: 'string' },
  reps: { type: 'string' },
  rounds: { type: 'string' },
  'conn-seconds': { type: 'string' },
  'iperf-seconds': { type: 'string' },
  modes: { type: 'string' },
  keep: { type: 'string' },
  'no-build': { type: 'boolean' },
  help: { type: 'boolean' },
} as const

function options(argv: string[]): Options {
  const { values: v } = parseArgs({ args: argv, options: FLAGS })
  if (v.help) (process.stdout.write(HELP + '\n'), process.exit(0))
  const num = (flag: keyof typeof FLAGS, full: number, quick: number, min: number) => {
    const raw = (v[flag] as string | undefined) ?? String(v.quick ? quick : full)
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag}: want a number ≥ ${min}, got ${raw}`)
    return n
  }
  const modes = (v.modes ?? 'host-gw,vxlan').split(',') as Mode[]
  for (const m of modes) if (!(m in UNDERLAY)) throw new Error(`--modes: unknown mode ${m} (host-gw, vxlan)`)
  return {
    pods: num('pods', 50, 10, 2),
    reps: num('reps', 100, 20, 1),
    rounds: num('rounds', 5, 2, 1),
    connSeconds: num('conn-seconds', 2, 1, 0.1),
    iperfSeconds: num('iperf-seconds', 3, 1, 1),
    modes,
    keep: v.keep,
    build: !v['no-build'],
  }
}


function checkTools(): void {
  for (const tool of ['iperf3', 'socat', 'ip', 'bridge']) {
    if (!sh('sh', ['-c', `command -v ${tool} || true`]).trim()) throw new Error(`${tool} is not installed: run scripts/setup`)
  }
  if (process.getuid?.() !== 0) throw new Error('bench-cluster needs root (network namespaces, routes)')
}

/** Pods on both nodes: the client and the same-node server on a, the cross-node server on b, the rest idle. */
async function wirePods(c: NodesCluster, perNode: number): Promise<Pair> {
  c.setNamespace('bench')
  const names = (node: string, first: string[]) => [...first, ...Array.from({ length: perNode - first.length }, (_, i) => `idle-${node}-${i}`)]
  const jobs = [...names('a', ['client', 'same']).map((n) => ['a', n]), ...names('b', ['cross']).map((n) => ['b', n])]
  const pods = new Map<string, NodePod>()
  const worker = async () => {
    for (let job = jobs.shift(); job; job = jobs.shift()) pods.set(job[1]!, await c.addPod(job[0]!, 'bench', job[1]!, { app: job[1]!.replace(/-.*/, '') }))
  }
  await Promise.all(Array.from({ length: WIRE_CONCURRENCY }, worker))
  return { client: pods.get('client')!, same: pods.get('same')!, cross: pods.get('cross')! }
}

/** Fails unless node a routes b's pods the way `mode` says (else the figures would be of the wrong path). */
function checkPath(c: NodesCluster, mode: Mode): void {
  const route = c.routes('a').find((r) => r.startsWith('10.98.2.0/24') && r.includes('proto 87'))
  const wanted = mode === 'vxlan' ? 'dev vxlan.wren' : `via ${c.node('b').ip} dev eth0`
  if (!route?.includes(wanted)) throw new Error(`node a: want a wren route to b's pods ${wanted}, have: ${route ?? 'none'}`)
}

/** Tears the cluster down once (keeping the agents' logs first when asked), on success or from the cleanup stack. */
function closer(c: NodesCluster, mode: Mode, keep?: string): () => Promise<void> {
  let closed = false
  return async () => {
    if (closed) return
    closed = true
    if (keep && c.root) for (const n of c.nodes.values()) trySh('sh', ['-c', `mkdir -p "$1" && cp "$2" "$1/$3"`, 'sh', keep, join(n.root, 'agent.log'), `${mode}-${n.name}-agent.log`])
    const errors = await c.teardown()
    if (errors.length) throw new Error(`teardown (${mode}): ${errors.join('; ')}`)
  }
}

async function runMode(cleanup: Cleanup, o: Options, mode: Mode): Promise<ModeFigures> {
  const c = new NodesCluster({ underlay: UNDERLAY[mode], nodes: NODES })
  const close = closer(c, mode, o.keep)
  cleanup.push(`cluster (${mode})`, close)
  log(`${mode}: starting 2 nodes (agents, install-cni, API server)`)
  await c.start()
  log(`${mode}: wiring ${o.pods} pods per node`)
  const t0 = performance.now()
  const pair = await wirePods(c, o.pods)
  const wireMs = performance.now() - t0
  await c.sync()
  checkPath(c, mode)
  log(`${mode}: Node add/delete × ${o.reps}`)
  const routes = await timeNodeRoutes(cleanup, c, mode, o.reps)
  log(`${mode}: connection rate, ${o.rounds} rounds of ${o.connSeconds} s per placement`)
  const conn = await connRates(cleanup, pair, o.rounds, o.connSeconds)
  log(`${mode}: iperf3, ${o.rounds} rounds of ${o.iperfSeconds} s per placement`)
  const iperf = await throughput(cleanup, pair, o.rounds, o.iperfSeconds)
  log(`${mode}: tearing down`)
  await close()
  return { mode, podsPerNode: o.pods, wireMs, routes, conn, iperf }
}

async function run(cleanup: Cleanup, o: Options): Promise<ModeFigures[]> {
  checkTools()
  log('waiting for the machine-wide kernel lock')
  await exclusiveKernel(cleanup)
  if (o.build) {
    log('building dist/')
    sh(NODE, [join(REPO, 'scripts', 'build.mjs')])
  }
  const out: ModeFigures[] = []
  for (const mode of o.modes) out.push(await runMode(cleanup, o, mode))
  return out
}

benchMain(async (cleanup) => {
  const o = options(process.argv.slice(2))
  return buildRows(await run(cleanup, o), o.reps)
})
