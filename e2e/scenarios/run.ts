// Runs one seed scenario for real: builds the cluster and its world, performs
// each step's actions, waits for the agent to sync, then measures the step's
// matrix with real connections from inside the source namespaces. Teardown
// always runs, and afterwards the host is checked for anything left behind.
// populate and runStep drive any ScenarioCluster: lib/nodes-world.ts runs the
// same scenarios on pods spread over several nodes.
import { Cluster } from '../lib/cluster.ts'
import { reapStaleRuns } from './reap.ts'
import { probeFrom, type ProbeSpec } from '../lib/probe.ts'
import { Cleanup, exclusiveKernel, sh, trySh } from '../lib/host.ts'
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { KUBE_DNS_IP, NODE_IP, OUTSIDE_BANNER, OUTSIDE_IP, OUTSIDE_NETNS, World, kubeDnsPod, kubeDnsService } from './world.ts'
import { expectedGrid, mismatches, type Cell, type Matrix, type Measured } from './matrix.ts'
import type { Action, Column, Row, Scenario, Step } from './types.ts'
import type { ScenarioCluster } from './target.ts'

export interface StepResult {
  index: number
  step: Step
  matrix: Matrix
  ms: number
}

export interface ScenarioResult {
  steps: StepResult[]
  error?: Error
  teardownErrors: string[]
  leftovers: string[]
  ms: number
}

async function setup(sc: Scenario, cluster: Cluster, world: World): Promise<void> {
  await cluster.start()
  world.installNat()
  world.addOutside(sc.rows.flatMap((r) => ('outside' in r && r.outside !== OUTSIDE_IP ? [r.outside] : [])))
  await populate(sc, cluster, world)
  await world.outsideReady()
  await cluster.sync()
}

/** The scenario's initial world on a started cluster: namespaces, kube-dns, pods, services. */
export async function populate(sc: Scenario, cluster: ScenarioCluster, world: World): Promise<void> {
  if (sc.dns) cluster.setNamespace({ name: 'kube-system' })
  for (const ns of sc.namespaces) cluster.setNamespace(ns)
  if (sc.dns) {
    world.addService(kubeDnsService)
    await cluster.addPod(kubeDnsPod, world.serveDns)
  }
  for (const p of sc.pods) await cluster.addPod(p)
  for (const s of sc.services ?? []) world.addService(s)
  await world.refresh()
}

/** One step: its actions, NAT and DNS brought in line, every agent synced, old flows forgotten, then its matrix. */
export async function runStep(sc: Scenario, step: Step, cluster: ScenarioCluster, world: World): Promise<Matrix> {
  for (const a of step.actions) await perform(a, cluster, world)
  await world.refresh()
  await cluster.sync()
  // every cell is a new connection, as a fresh `kubectl exec … nc` would be: the last
  // step's flows must not pass a reused UDP source port as established
  cluster.forgetFlows()
  return measure(sc, step, cluster, world)
}

async function perform(a: Action, cluster: ScenarioCluster, world: World): Promise<void> {
  if ('apply' in a) cluster.applyPolicy(a.apply)
  else if ('delete' in a) cluster.deletePolicy(a.delete)
  else if ('labelNamespace' in a) cluster.labelNamespace(a.labelNamespace, a.labels)
  else if ('labelPod' in a) cluster.labelPod(a.labelPod, a.labels)
  else if ('addNamespace' in a) cluster.setNamespace(a.addNamespace)
  else if ('addPod' in a) await cluster.addPod(a.addPod)
  else if ('addService' in a) world.addService(a.addService)
}

/** The probe for one cell and the banners that prove the right server answered. */
function probeFor(row: Row, col: Column, cluster: ScenarioCluster, world: World): { spec: ProbeSpec; banners?: string[] } {
  const bind = 'outside' in row ? row.outside : undefined
  const ns = 'pod' in row ? row.pod.split('/')[0]! : 'default'
  // a name may be probed before its Service exists (expected nodns): no banner can match then
  const ids = (svc: string) => (world.services.has(svc) ? world.backends(svc).map((p) => `${p.spec.namespace}/${p.spec.name}`) : [])
  switch (col.kind) {
    case 'pod': {
      const kind = col.protocol === 'UDP' ? 'udp' : 'tcp'
      return { spec: { kind, host: cluster.pod(col.pod).ip, port: col.port, bind }, banners: [col.pod] }
    }
    case 'svc':
      return { spec: { kind: 'tcp', host: world.service(col.svc).ip!, port: col.port, bind }, banners: ids(col.svc) }
    case 'nodeport':
      return { spec: { kind: 'tcp', host: NODE_IP, port: world.service(col.svc).nodePort!, bind }, banners: ids(col.svc) }
    case 'outside':
      return { spec: { kind: 'tcp', host: OUTSIDE_IP, port: col.port, bind }, banners: [OUTSIDE_BANNER] }
    case 'name':
      return { spec: { kind: 'name', server: KUBE_DNS_IP, name: col.name, namespace: ns, port: col.port }, banners: col.svc ? ids(col.svc) : [OUTSIDE_BANNER] }
    case 'dns':
      return { spec: { kind: 'dns', server: KUBE_DNS_IP, name: col.name, namespace: ns, proto: col.protocol === 'UDP' ? 'udp' : 'tcp' } }
  }
}

async function measureRow(sc: Scenario, step: Step, ri: number, expect: string[], cluster: ScenarioCluster, world: World): Promise<Cell[]> {
  const row = sc.rows[ri]!
  const cells: Cell[] = sc.columns.map((c, j) => ({ row: row.id, col: c.id, expect: expect[j] as Cell['expect'], got: '.' as Measured }))
  const todo = cells.flatMap((c, j) => (c.expect === '.' ? [] : [j]))
  if (!todo.length) return cells
  const netns = 'pod' in row ? cluster.pods.get(row.pod)?.netns : OUTSIDE_NETNS
  if (!netns) throw new Error(`${sc.seed} "${step.title}": row ${row.id} has expectations but pod ${'pod' in row ? row.pod : ''} does not exist`)
  const probes = todo.map((j) => probeFor(row, sc.columns[j]!, cluster, world))
  const results = await probeFrom(netns, probes.map((p) => p.spec))
  todo.forEach((j, k) => {
    const r = results[k]!
    const banners = probes[k]!.banners
    const wrong = r.outcome === 'ok' && banners && !banners.includes(r.reply ?? '')
    cells[j]!.got = wrong ? 'wrong' : r.outcome
    cells[j]!.detail = [r.reply && `reply ${r.reply}`, r.detail].filter(Boolean).join(', ') || undefined
  })
  return cells
}

export async function measure(sc: Scenario, step: Step, cluster: ScenarioCluster, world: World): Promise<Matrix> {
  const grid = expectedGrid(sc, step)
  return Promise.all(grid.map((exp, i) => measureRow(sc, step, i, exp, cluster, world)))
}

/** Runs every step; `onStep` sees each step's matrix as soon as it is measured. */
export async function runScenario(sc: Scenario, onStep: (r: StepResult) => void | Promise<void> = () => {}, log: (m: string) => void = () => {}): Promise<ScenarioResult> {
  const t0 = Date.now()
  for (const step of sc.steps) expectedGrid(sc, step) // a typo in the data fails before any setup
  // one agent per host: wait for the machine-wide lock every agent-owning test takes
  const lock = new Cleanup()
  log(`${sc.seed}: taking the kernel lock (other agent-owning tests may hold it)`)
  await exclusiveKernel(lock)
  try {
    return await runLocked(sc, onStep, log, t0)
  } finally {
    await lock.run()
  }
}

async function runLocked(sc: Scenario, onStep: (r: StepResult) => void | Promise<void>, log: (m: string) => void, t0: number): Promise<ScenarioResult> {
  for (const r of reapStaleRuns()) log(`reaped a seed run that died without teardown: ${r}`)
  await waitForCleanHost(log)
  const before = new Set(leftovers()) // other people's objects (a parallel test) are not ours to report
  const cluster = new Cluster()
  const world = new World(cluster)
  const steps: StepResult[] = []
  let error: Error | undefined
  try {
    await setup(sc, cluster, world)
    log(`${sc.seed}: cluster up in ${Date.now() - t0} ms (${cluster.pods.size} pods)`)
    for (const [index, step] of sc.steps.entries()) {
      const ts = Date.now()
      const foreign = foreignAgents(cluster.agentPid)
      const matrix = await runStep(sc, step, cluster, world)
      foreign.push(...foreignAgents(cluster.agentPid))
      if (foreign.length) log(`INTERFERENCE: another wren agent ran during this step, results unreliable: ${[...new Set(foreign)].join('; ')}`)
      const r = { index, step, matrix, ms: Date.now() - ts }
      steps.push(r)
      await onStep(r)
    }
  } catch (e) {
    error = e as Error
  }
  if (error || steps.some((r) => mismatches(r.matrix).length)) {
    const kept = keepLogs(sc, cluster)
    log(`${sc.seed}: ${error ? error.message + '; ' : ''}logs kept in ${kept}`)
  }
  const teardownErrors = await cluster.teardown()
  return { steps, error, teardownErrors, leftovers: leftovers().filter((l) => !before.has(l)), ms: Date.now() - t0 }
}

/** Everything of ours a finished run must not leave behind. */
export function leftovers(): string[] {
  const out: string[] = []
  for (const l of sh('ip', ['netns', 'list']).split('\n')) if (/^ws-/.test(l)) out.push(`netns ${l.split(' ')[0]}`)
  for (const l of sh('ip', ['-o', 'link', 'show']).split('\n')) {
    const name = l.split(':')[1]?.trim().split('@')[0]
    if (name && (name.startsWith('wren') || name.startsWith('wsout'))) out.push(`link ${name}`)
  }
  for (const save of ['iptables-save', 'iptables-legacy-save']) {
    for (const l of trySh(save, []).stdout.split('\n')) if (/^:(wren-|WSEED)/.test(l)) out.push(`${save} chain ${l.split(' ')[0]!.slice(1)}`)
  }
  // wren's set names: wren + family + kind + '-' (shared/names.ts)
  for (const l of trySh('ipset', ['list', '-n']).stdout.split('\n')) if (/^wren[46][inpu]-/.test(l)) out.push(`ipset ${l}`)
  for (const cidr of ['10.92.0.0/16', '10.93.0.0/16', '10.94.0.0/24']) {
    if (sh('ip', ['route', 'show', 'exact', cidr]).trim()) out.push(`route ${cidr}`)
  }
  return out
}

/** pid: command line of every running `wren-enforcer run` except `mine`. */
export function foreignAgents(mine?: number): string[] {
  const out: string[] = []
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (Number(pid) === mine || Number(pid) === process.pid) continue
    let argv: string[]
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (argv.some((a) => a.includes('wren-enforcer')) && argv.includes('run')) out.push(`${pid}: ${argv.join(' ').trim()}`)
  }
  return out
}

/** Another wren agent (a parallel test run) would fight ours over the same chains: wait for it. */
async function waitForCleanHost(log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + 300_000
  let said = false
  for (;;) {
    // only what would collide with our run: pods, the outside link, the agent's fixed chains
    const left = [...foreignAgents().map((a) => `agent ${a}`), ...leftovers().filter((l) => /^(netns ws-|link wsout|route |iptables-save chain WSEED)/.test(l))]
    if (!left.length) return
    if (Date.now() > deadline) throw new Error(`host not clean (another test running, or a killed run left): ${left.slice(0, 8).join(', ')}`)
    if (!said) log(`waiting for the host to be free of wren objects: ${left.slice(0, 4).join(', ')}…`)
    said = true
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/** Copies the agent, plugin and DNS logs out of the temp dir before teardown removes it. */
function keepLogs(sc: Scenario, cluster: Cluster): string {
  const dest = join(tmpdir(), 'wren-seeds-logs', sc.seed)
  mkdirSync(dest, { recursive: true })
  for (const f of ['agent.log', 'dnsmasq.log', 'state/cni.log', 'manifests']) {
    try {
      cpSync(join(cluster.logDir, f), join(dest, f.replace('/', '-')), { recursive: true })
    } catch {
      /* not every scenario has every log */
    }
  }
  return dest
}
