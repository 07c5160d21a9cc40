// Benchmark of the node agent on the real kernel (root): a synthetic cluster in
// a manifests folder, local pods wired by the real plugin, the real agent
// binary, and figures printed beside their targets and a reference measured in
// the same run. See `scripts/bench-enforcer --help`.
//
// Everything made is pushed on one cleanup stack as soon as it exists (pods are
// DELeted through the plugin, the agent stopped, `wren-enforcer cleanup` run,
// netns, blackhole routes and temp dirs removed), also on failure and Ctrl-C.
import { parseArgs } from 'node:util'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Cleanup, blackhole, exclusiveKernel, sh, tempDir, trySh } from '../e2e/lib/host.ts'
import { AgentLog } from './bench/agentlog.ts'
import { connRate } from './bench/connrate.ts'
import { flipTier, labelCandidates, policyToEdit, setPolicyPort, timeEdits } from './bench/edits.ts'
import { ManifestFolder } from './bench/manifests.ts'
import { folderParseMs } from './bench/parsecost.ts'
import { agentStatus, memoryOf, POD_CIDR, REMOTE_CIDR, startAgent, stopAgent, waitFirstSync, wireAll, type Dirs } from './bench/node.ts'
import { capture, loadRaw } from './bench/rawload.ts'
import { buildRows, type Figures } from './bench/figures.ts'
import { benchMain, log } from './bench/main.ts'
import { snapshotBuild, type Bins } from './bench/snapshot.ts'
import { synthesize, type SynthCluster } from './bench/synth.ts'

const NODE_NAME = 'bench-node'
/** Pairs of connection-rate runs: on this 2-core machine one run varies by ±20%, so a median needs several. */
const CONN_ROUNDS = 7

const HELP = `usage: scripts/bench-enforcer [--quick] [options]
  --quick              500 pods, 100 policies, 10 namespaces, 20 local, 20 edits (well under a minute)
  --pods N             pods in all (default 5000; env WREN_BENCH_PODS)
  --policies N         NetworkPolicies (default 1000; env WREN_BENCH_POLICIES)
  --namespaces N       namespaces (default 50; env WREN_BENCH_NAMESPACES)
  --local N            pods wired on this node by the plugin (default 110; env WREN_BENCH_LOCAL)
  --changes N          label edits and policy edits, each (default 200: with 50, a p99 is the maximum)
  --conn-policies N    policies selecting the receiver in the connection test (default 100)
  --conn-seconds S     length of one connection-rate run (default 2; quick 1), 7 pairs of runs
  --cpu-prof DIR       run the agent under node --cpu-prof, profiles written to DIR at exit
  --keep DIR           copy the agent and plugin logs to DIR before cleanup
  --no-build           do not rebuild dist/ first`

export interface Options {
  pods: number
  policies: number
  namespaces: number
  local: number
  changes: number
  connPolicies: number
  connSeconds: number
  cpuProf?: string
  keep?: string
  build: boolean
}

function options(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      [['quick', 'boolean'], ['pods'], ['policies'], ['namespaces'], ['local'], ['changes'], ['conn-policies'], ['conn-seconds'], ['cpu-prof'], ['keep'], ['no-build', 'boolean'], ['help', 'boolean']].map(([k, t]) => [k, { type: (t ?? 'string') as 'string' | 'boolean' }]),
    ),
  })
  if (v.help) (process.stdout.write(HELP + '\n'), process.exit(0))
  const q = !!v.quick
  const num = (flag: string, env: string, full: number, quick: number) => {
    const raw = (v[flag] as string | undefined) ?? process.env[env] ?? String(q ? quick : full)
    const n = Number(raw)
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag}: not a number: ${raw}`)
    return n
  }
  const o: Options = {
    pods: num('pods', 'WREN_BENCH_PODS', 5000, 500),
    policies: num('policies', 'WREN_BENCH_POLICIES', 1000, 100),
    namespaces: num('namespaces', 'WREN_BENCH_NAMESPACES', 50, 10),
    local: num('local', 'WREN_BENCH_LOCAL', 110, 20),
    changes: num('changes', 'WREN_BENCH_CHANGES', 200, 20),
    connPolicies: num('conn-policies', 'WREN_BENCH_CONN_POLICIES', 100, 100),
    connSeconds: num('conn-seconds', 'WREN_BENCH_CONN_SECONDS', 2, 1),
    cpuProf: v['cpu-prof'] as string | undefined,
    keep: v.keep as string | undefined,
    build: !v['no-build'],
  }
  if (o.local < 4 || o.pods < o.local + 2 || o.namespaces < 1 || o.policies < 2 * o.namespaces) throw new Error('need local ≥ 4, pods ≥ local + 2, policies ≥ 2 × namespaces')
  return o
}


/** Lock, clean kernel, blackholes, folders; all undone by `cleanup`. */
async function prepareHost(cleanup: Cleanup, o: Options): Promise<Dirs> {
  log('waiting for the machine-wide kernel lock')
  await exclusiveKernel(cleanup)
  const root = tempDir(cleanup, 'wren-bench-')
  const bins = snapshotBuild(root, o.build)
  enforcerCleanup(bins) // leftovers of a killed run; we hold the lock, so nobody else's
  for (const cidr of [POD_CIDR, REMOTE_CIDR]) blackhole(cleanup, cidr)
  const dirs: Dirs = { root, manifests: join(root, 'manifests'), state: join(root, 'state'), run: join(root, 'run'), bins }
  for (const d of [dirs.manifests, dirs.state, dirs.run]) mkdirSync(d, { recursive: true })
  if (o.keep) cleanup.push(`keep logs in ${o.keep}`, () => void sh('sh', ['-c', `mkdir -p "$1" && cp "$2"/*.log "$1"/`, 'sh', o.keep!, root]))
  cleanup.push('wren-enforcer cleanup', () => enforcerCleanup(bins))
  return dirs
}

function enforcerCleanup(bins: Bins): void {
  const r = trySh(bins.enforcer, ['cleanup'])
  if (r.code !== 0) throw new Error(`wren-enforcer cleanup: ${r.stderr.trim()}`)
}

async function setupCluster(cleanup: Cleanup, o: Options, dirs: Dirs, f: Figures): Promise<{ c: SynthCluster; folder: ManifestFolder; local: Awaited<ReturnType<typeof wireAll>> }> {
  const c = synthesize(o)
  const folder = ManifestFolder.layout(dirs.manifests, NODE_NAME, c)
  folder.writeAll()
  f.folder = folder.size()
  f.parseMs = folderParseMs(dirs.manifests)
  const localPods = [...c.pods.filter((p) => p.local), c.conn.server, c.conn.client]
  log(`${c.pods.length + 2} pods (${localPods.length} local), ${c.policies.length} policies, ${o.namespaces + 1} namespaces in ${f.folder.files} files; wiring local pods`)
  const t0 = performance.now()
  const local = await wireAll(cleanup, dirs, localPods)
  f.wireMs = performance.now() - t0
  return { c, folder, local }
}

async function run(cleanup: Cleanup, o: Options): Promise<Figures> {
  const f: Figures = { options: o } as Figures
  const dirs = await prepareHost(cleanup, o)
  const { c, folder, local } = await setupCluster(cleanup, o, dirs, f)
  if (o.cpuProf) mkdirSync(o.cpuProf, { recursive: true })
  log('starting the agent (cold sync)')
  const agent = startAgent(cleanup, dirs, NODE_NAME, o.cpuProf)
  f.coldWallMs = await waitFirstSync(dirs, agent)
  const agentLog = new AgentLog(agent.logFile)
  const st = await agentStatus(dirs, true)
  f.cold = { status: st, entries: agentLog.read(), spawnedAtWall: agent.spawnedAtWall }
  const captured = await capture(st.kernel.backend)
  const env = { dirs, folder, log: agentLog, settleMs: 250 }
  // the peak RSS so far, at each phase, says which phase set the figure
  const peak = () => `agent peak RSS so far ${memoryOf(agent.child.pid!).hwmMiB.toFixed(0)} MiB`
  log(`label edits (${peak()})`)
  const cands = labelCandidates(c, 10)
  f.labels = await timeEdits(env, o.changes, (i) => flipTier(folder, cands[i % cands.length], NODE_NAME))
  log(`policy edits (${peak()})`)
  const policy = policyToEdit(c)
  f.policy = await timeEdits(env, o.changes, (i) => setPolicyPort(folder, policy, 8100 + i))
  f.policyName = `${policy.metadata.namespace}/${policy.metadata.name}`
  log(`connection rate (${peak()})`)
  const [server, client] = local.slice(-2)
  f.conn = await connRate({ cleanup, dirs, folder, server, client, policies: o.connPolicies, seconds: o.connSeconds, rounds: CONN_ROUNDS })
  f.kernelAfter = (await agentStatus(dirs, true)).kernel
  f.memory = memoryOf(agent.child.pid!)
  log(`stopping the agent; raw load reference (${peak()})`)
  await stopAgent(agent.child)
  enforcerCleanup(dirs.bins)
  f.raw = await loadRaw(st.kernel.backend, captured)
  f.captured = { ruleLines: captured.ruleLines, setLines: captured.setLines }
  enforcerCleanup(dirs.bins)
  return f
}

benchMain(async (cleanup) => buildRows(await run(cleanup, options(process.argv.slice(2)))))
