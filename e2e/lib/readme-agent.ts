// The README's agent commands (e2e/readme.test.ts): `run` from a folder of
// manifests (./my-cluster/) and from ~/.kube/config, each started in the
// background with the default state and run dirs, then `status`, `show` of a
// pod wired by the real bin/wren, and `cleanup` after a SIGTERM, which must
// leave nothing of wren's on the host. The agent owns the host's chains: the
// kernel lock is held for the whole flow.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { stringify } from 'yaml'
import type { TestApiServer } from './apiserver.ts'
import { leftovers, noForeignAgents } from './behaviour.ts'
import { POD_CIDR, run } from './cluster.ts'
import { cniEnv } from './cni-env.ts'
import { Cleanup, ENFORCER_BIN, REPO, WREN_BIN, addNetns, blackhole, exclusiveKernel, sh, tempDir, trySh } from './host.ts'
import { REBUILT_MEANWHILE, claimDir, delay, exitOk, typed, typedInBackground, userEnv, type Background, type Flow, type FlowCtx, type StepFn } from './readme-commands.ts'
import { DEMO_POLICY, NODE, demoObjects, kubeHome, nodeObject, uplink } from './readme-kube.ts'

/** The agent's and the plugin's defaults, which the README's commands use. */
const DEFAULT_DIRS = ['/var/lib/wren', '/var/run/wren', '/var/log/wren']
const MY_CLUSTER = join(REPO, 'my-cluster')
/** The API flow's Node ranges: the agent blackholes its own. */
const API_NODE_CIDRS = ['10.244.3.0/24', 'fd00:10:244:3::/64']

export interface AgentCtx extends FlowCtx {
  agent?: Background
  /** What `status` must print once synced. */
  expectStatus: RegExp[]
  /** Undo of each pod wired (CNI DEL and its netns), as kubelet does when it goes. */
  unwire: (() => Promise<void>)[]
  api?: TestApiServer
}

/** Lock, no other agent, default dirs left as found, the pod range blackholed, a last `cleanup` as a safety net. */
async function agentHost(t: Test, cleanup: Cleanup, hold: Cleanup): Promise<void> {
  await exclusiveKernel(hold)
  await noForeignAgents(t)
  for (const d of DEFAULT_DIRS) claimDir(cleanup, d)
  blackhole(cleanup, POD_CIDR)
  const routes = ownedRoutes()
  if (routes.length) throw new Error(`routes of wren's protocol (87) already on this host, not this test's: ${routes.join('; ')}`)
  // runs after the README's own cleanup too (idempotent): also when a step failed before it; and
  // when that cleanup failed, the routes the agent made (none were there before) go all the same
  cleanup.push('wren-enforcer cleanup', () => {
    trySh(ENFORCER_BIN, ['cleanup'])
    for (const f of ['-4', '-6']) trySh('ip', [f, 'route', 'flush', 'table', 'main', 'proto', '87'])
  })
}

/** Routes of wren's protocol number, both families, every table. */
function ownedRoutes(): string[] {
  return ['-4', '-6'].flatMap((f) => sh('ip', [f, 'route', 'show', 'table', 'all', 'proto', '87']).split('\n').filter(Boolean))
}

const synced = [/^synced: +yes/m, /^known: +1 namespaces, 1 pods, 1 policies/m, /^problems: +none/m]

export const manifestsFlow: Flow<AgentCtx> = {
  name: 'the agent on a folder of manifests: run → status → show → cleanup',
  async prepare(t, cleanup, hold) {
    await agentHost(t, cleanup, hold)
    if (existsSync(MY_CLUSTER)) throw new Error(`${MY_CLUSTER} exists: not this test's to overwrite`)
    mkdirSync(MY_CLUSTER)
    cleanup.push(`rm ${MY_CLUSTER}`, () => rmSync(MY_CLUSTER, { recursive: true, force: true }))
    writeFileSync(join(MY_CLUSTER, 'demo.yaml'), demoObjects().map(([, o]) => stringify(o)).join('---\n'))
    return { cleanup, env: userEnv(), expectStatus: synced, unwire: [] }
  },
  after: nothingLeft,
}

export const apiFlow: Flow<AgentCtx> = {
  name: 'the agent on the Kubernetes API through ~/.kube/config: run → status → cleanup',
  async prepare(t, cleanup, hold) {
    await agentHost(t, cleanup, hold)
    const ip = uplink().ipv4
    const { api, home } = await kubeHome(cleanup, [['Node', nodeObject(API_NODE_CIDRS, ip ? [ip] : [])], ...demoObjects()])
    // its own Node found by its default name (the hostname lowercased): its ranges blackholed on this node
    const own = API_NODE_CIDRS.map((c) => new RegExp(`^ +${c.replace(/[./]/g, '\\$&')} +blackhole \\(this node\\)`, 'm'))
    return { cleanup, env: userEnv({ HOME: home }), expectStatus: [...synced, /^routes: +1 nodes/m, ...own], unwire: [], api }
  },
  after: nothingLeft,
}

function nothingLeft(t: Test): void {
  t.same([...leftovers(), ...kernelLeft()], [], 'nothing of ours left on the host')
}

/** wren's chains, rules and sets, its routes (protocol 87) and VXLAN device, wren-named links. */
function kernelLeft(): string[] {
  const vxlan = trySh('ip', ['link', 'show', 'vxlan.wren']).code === 0 ? ['link vxlan.wren'] : []
  return [...leftovers().filter((l) => !/^(route|netns) /.test(l)), ...ownedRoutes().map((l) => `route ${l}`), ...vxlan]
}

/** `run …` in the background, as a user leaves it running in a terminal; stopped by the cleanup step. */
export const startAgent: StepFn<AgentCtx> = async (t, cmd, ctx) => {
  const socket = '/var/run/wren/agent.sock'
  for (let attempt = 1; ; attempt++) {
    ctx.agent = typedInBackground(ctx.cleanup, cmd, ctx.env)
    for (const deadline = Date.now() + 30_000; !existsSync(socket) && !ctx.agent.exited() && Date.now() < deadline; ) await delay(100)
    if (!ctx.agent.exited() || attempt === 3 || !REBUILT_MEANWHILE.test(ctx.agent.output())) break
    t.comment(`dist/ was rebuilt while the agent loaded it (someone else's build): started again`)
    await delay(2000)
  }
  t.ok(existsSync(socket), `running, its control socket at ${socket} (the default run dir)`)
  t.notOk(ctx.agent.exited(), `still running${ctx.agent.exited() ? `: ${ctx.agent.output()}` : ''}`)
}

/** `status --wait-synced`: retried while the agent comes up, then what it knows and that nothing is wrong. */
export const statusSynced: StepFn<AgentCtx> = async (t, cmd, ctx) => {
  let r = await typed(ctx.cleanup, cmd, ctx.env, 30_000)
  let tries = 1
  for (const deadline = Date.now() + 30_000; r.code !== 0 && !ctx.agent?.exited() && Date.now() < deadline; tries++) {
    await delay(250)
    r = await typed(ctx.cleanup, cmd, ctx.env, 30_000)
  }
  t.equal(r.code, 0, r.code === 0 ? `exit 0 (try ${tries})` : `exit 0 (try ${tries}): ${r.stderr}\nagent said: ${ctx.agent?.output().slice(-2000)}`)
  for (const re of ctx.expectStatus) t.match(r.stdout, re, `status says ${re}`)
  t.comment(r.stdout.trimEnd())
}

/** The same, and the agent learnt every kind from the API server ~/.kube/config names. */
export const statusFromApi: StepFn<AgentCtx> = async (t, cmd, ctx) => {
  await statusSynced(t, cmd, ctx)
  for (const kind of ['Namespace', 'Pod', 'NetworkPolicy', 'Node'])
    t.ok(ctx.api?.requests.some((q) => q.kind === kind && q.verb === 'watch'), `watches ${kind} on the API server of ~/.kube/config`)
}

/** `show demo/web` of a pod wired as kubelet would: its chains, the allowing policy, packet counters. */
export const showWiredPod: StepFn<AgentCtx> = async (t, cmd, ctx) => {
  const ip = await wirePod(ctx, 'demo', 'web', 'uid-demo-web')
  const r = await typed(ctx.cleanup, cmd, ctx.env)
  exitOk(t, r)
  t.match(r.stdout, new RegExp(`workload demo/web .*ips ${ip.replace(/\./g, '\\.')}`), 'names the pod and its address')
  t.match(r.stdout, new RegExp(`ingress tcp:80 allowed by demo/${DEMO_POLICY} rule 0`), 'names the policy rule that allows port 80')
  t.match(r.stdout, /no policy allowed ingress/, 'and the rule that drops the rest')
  t.match(r.stdout, /\[\d+:\d+\]/, 'with packet counters')
  t.comment(r.stdout.trimEnd())
}

/**
 * A pod's sandbox as the runtime makes it: a netns and a CNI ADD by the real
 * bin/wren, with a netconf that leaves stateDir and runDir to the plugin's
 * defaults (the agent's). Returns the pod's IPv4 address.
 */
async function wirePod(ctx: AgentCtx, namespace: string, name: string, uid: string): Promise<string> {
  const netnsName = 'ws-readme'
  const netns = addNetns(ctx.cleanup, netnsName)
  const containerId = `wreadme${randomBytes(6).toString('hex')}`
  const logFile = join(tempDir(ctx.cleanup, 'wren-readme-cni-'), 'cni.log')
  const conf = { cniVersion: '1.0.0', name: 'readme-demo', type: 'wren', logFile, agentWaitMs: 5000, ipam: { type: 'wren', ranges: [[{ subnet: POD_CIDR }]] } }
  const args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, K8S_POD_UID: uid }
  const cni = (command: string) => run(WREN_BIN, [], JSON.stringify(conf), cniEnv(command, { containerId, netns, ifname: 'eth0', args }, [join(REPO, 'bin'), '/usr/lib/cni']))
  let wired = true
  const unwire = async () => {
    if (!wired) return
    wired = false
    const r = await cni('DEL')
    trySh('ip', ['netns', 'del', netnsName])
    if (r.code !== 0) throw new Error(`CNI DEL ${namespace}/${name}: ${r.stdout} ${r.stderr}`)
  }
  ctx.cleanup.push(`CNI DEL ${namespace}/${name}`, unwire)
  ctx.unwire.push(unwire)
  const r = await cni('ADD')
  if (r.code !== 0) throw new Error(`CNI ADD ${namespace}/${name} failed (${r.code}): ${r.stdout} ${r.stderr}`)
  const ip = (JSON.parse(r.stdout).ips as { address: string }[]).map((a) => a.address.split('/')[0]!).find((a) => !a.includes(':'))
  if (!ip) throw new Error(`CNI ADD ${namespace}/${name}: no IPv4 address in ${r.stdout}`)
  return ip
}

/** Pods removed and the agent stopped (SIGTERM), then `cleanup`: nothing of wren's left in the kernel. */
export const cleanupAfterAgent: StepFn<AgentCtx> = async (t, cmd, ctx) => {
  for (const unwire of ctx.unwire.splice(0)) await unwire()
  if (ctx.agent) {
    const stopped = await ctx.agent.stop(10_000)
    t.notOk(stopped.killed, `the agent stopped on SIGTERM (${stopped.signal ? `ended by ${stopped.signal}` : `exit ${stopped.code}`})`)
  }
  t.ok(kernelLeft().length > 0, 'before cleanup, the stopped agent left its chains in place (restart safety)')
  const r = await typed(ctx.cleanup, cmd, ctx.env)
  exitOk(t, r)
  t.same(kernelLeft(), [], "no chain, rule, set, route or VXLAN device of wren's left")
}
