// A seed scenario on several nodes: the same Scenario data, World (services,
// kube-dns) and step runner as the one-node seeds (scenarios/run.ts), driving
// a NodesCluster whose pods are placed on nodes by a table.
//
// What differs from one node, and why:
// - Service NAT (kube-dns's ClusterIP) is written into every node, as
//   kube-proxy does: a pod's packet is translated on its own node, so the
//   sender's egress policy and the receiver's ingress policy both see the pod
//   IP it was translated to.
// - The internet names resolve to the cluster's outside stand-in, which pods
//   reach masqueraded through their node.
// - The DNS records are checked from the DNS pod's node (the host cannot reach
//   pod addresses here: it blackholes the pod range).
// Not supported (a scenario using them is refused before anything is built):
// the outside host as a probe source with its extra addresses, and columns
// aimed at the one-node host's fixed outside and NodePort addresses.
import { cpSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodesCluster, POD_RANGE, type NodePod, type NodeSpec, type Underlay } from './nodes.ts'
import { Cleanup, exclusiveKernel, hostLinks, sh, trySh } from './host.ts'
import { applyLabels, startServers, waitListening, type Pod } from './cluster.ts'
import { OUTSIDE_BANNER, OUTSIDE_PORTS, SVC_CHAIN, World, kubeDnsPod } from '../scenarios/world.ts'
import { expectedGrid, mismatches } from '../scenarios/matrix.ts'
import { populate, runStep, type ScenarioResult, type StepResult } from '../scenarios/run.ts'
import type { LabelChange, ScenarioCluster } from '../scenarios/target.ts'
import type { Labels, NamespaceSpec, PodSpec, Scenario } from '../scenarios/types.ts'

/** namespace/name of a pod → the node it runs on. */
export type Placement = Record<string, string>

export interface NodesRunOptions {
  underlay: Underlay
  nodes: NodeSpec[]
  placement: Placement
  agentArgs?: string[]
}

/** A NodesCluster seen through the interface the seed runner and World drive. */
export class NodesScenario implements ScenarioCluster {
  private readonly namespaces = new Map<string, Labels>()
  readonly c: NodesCluster
  private readonly placement: Placement

  constructor(c: NodesCluster, placement: Placement) {
    this.c = c
    this.placement = placement
  }

  get cleanup(): Cleanup {
    return this.c.cleanup
  }

  get logDir(): string {
    return this.c.root
  }

  get pods(): ReadonlyMap<string, NodePod> {
    return this.c.pods
  }

  pod(id: string): NodePod {
    const p = this.c.pods.get(id)
    if (!p) throw new Error(`no pod ${id}`)
    return p
  }

  nodeOf(id: string): string {
    const node = this.placement[id]
    if (!node) throw new Error(`pod ${id} is not placed on any node`)
    return node
  }

  /** Every process World starts is in the cluster's cleanup; no reaper reads this. */
  notePid(): void {}

  setNamespace(ns: NamespaceSpec): void {
    this.namespaces.set(ns.name, ns.labels ?? {})
    this.c.setNamespace(ns.name, ns.labels)
  }

  labelNamespace(name: string, change: LabelChange): void {
    this.setNamespace({ name, labels: applyLabels(this.namespaces.get(name), change, `namespace ${name}`) })
  }

  labelPod(id: string, change: LabelChange): void {
    this.c.relabelPod(id, applyLabels(this.pod(id).spec.labels, change, `pod ${id}`))
  }

  async addPod(spec: PodSpec, serve?: (pod: Pod) => Promise<void>): Promise<Pod> {
    const id = `${spec.namespace}/${spec.name}`
    if (!this.namespaces.has(spec.namespace)) throw new Error(`pod ${id}: namespace ${spec.namespace} not created`)
    return this.c.addPod(this.nodeOf(id), spec.namespace, spec.name, spec.labels, spec.ports ?? [], serve)
  }

  applyPolicy(doc: Record<string, unknown>): void {
    const md = doc.metadata as { name: string; namespace?: string }
    this.c.applyPolicy({ ...doc, metadata: { ...md, namespace: md.namespace ?? 'default' } })
  }

  deletePolicy(id: string): void {
    const [namespace, name] = id.split('/') as [string, string]
    this.c.deletePolicy(namespace, name)
  }

  sync(): Promise<void> {
    return this.c.sync()
  }

  forgetFlows(): void {
    // exit status 1 when there was nothing to delete
    for (const n of this.c.nodes.values()) for (const dir of ['-s', '-d']) trySh('ip', ['netns', 'exec', n.netns, 'conntrack', '-D', '-f', 'ipv4', dir, POD_RANGE])
  }

  /** The service chain, hooked first in every node's PREROUTING (gone with the node's namespace). */
  installNat(): void {
    for (const n of this.c.nodes.values()) {
      sh('ip', ['netns', 'exec', n.netns, 'iptables-restore', '--noflush', '-w'], `*nat\n:${SVC_CHAIN} - [0:0]\nCOMMIT\n`)
      sh('ip', ['netns', 'exec', n.netns, 'iptables', '-w', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', SVC_CHAIN])
    }
  }

  applyNat = (restore: string): void => {
    for (const n of this.c.nodes.values()) sh('ip', ['netns', 'exec', n.netns, 'iptables-restore', '--noflush', '-w'], restore)
  }

  /** Banner servers on the outside stand-in, as the one-node outside host has. */
  async serveOutside(): Promise<void> {
    const ports = OUTSIDE_PORTS.map((port) => ({ port, protocol: 'TCP' as const }))
    startServers(this.c.cleanup, this.c.outside.netns, ports, OUTSIDE_BANNER)
    await waitListening(this.c.outside.netns, ports)
  }
}

/** Why `sc` cannot run on nodes as placed (empty when it can). */
export function unsupported(sc: Scenario, placement: Placement): string[] {
  const out: string[] = []
  for (const r of sc.rows) if ('outside' in r) out.push(`row ${r.id}: the outside host as a source`)
  for (const col of sc.columns) if (col.kind === 'outside' || col.kind === 'nodeport') out.push(`column ${col.id}: ${col.kind} (the one-node host's fixed addresses)`)
  const added = sc.steps.flatMap((s) => s.actions.flatMap((a) => ('addPod' in a ? [a.addPod] : [])))
  for (const p of [...(sc.dns ? [kubeDnsPod] : []), ...sc.pods, ...added]) {
    const id = `${p.namespace}/${p.name}`
    if (!placement[id]) out.push(`pod ${id} not placed`)
  }
  return out
}

/** What a finished run must not leave on the host (as e2e/nodes.test.ts checks). */
export function nodesLeftovers(): string[] {
  const netns = sh('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith('wn')).map((l) => `netns ${l.split(' ')[0]}`)
  const routes = sh('ip', ['route', 'show']).split('\n').filter((l) => /10\.95\.|10\.98\./.test(l)).map((l) => `route ${l}`)
  return [...netns, ...hostLinks('wn-').map((l) => `link ${l}`), ...routes]
}

/**
 * Runs every step of `sc` on a NodesCluster with its pods placed as asked;
 * `onStep` sees each step's matrix (and the cluster) as soon as it is measured.
 * Takes the kernel lock besides the NodesCluster's own: the one-node seed
 * runner counts every wren agent on the machine, these nodes' included, as
 * interference.
 */
export async function runOnNodes(sc: Scenario, opts: NodesRunOptions, onStep: (r: StepResult, s: NodesScenario) => void | Promise<void> = () => {}, log: (m: string) => void = () => {}): Promise<ScenarioResult> {
  const t0 = Date.now()
  for (const step of sc.steps) expectedGrid(sc, step)
  const why = unsupported(sc, opts.placement)
  if (why.length) throw new Error(`seed ${sc.seed} cannot run on nodes: ${why.join('; ')}`)
  const lock = new Cleanup()
  log(`${sc.seed}: taking the kernel lock (other agent-owning tests may hold it)`)
  await exclusiveKernel(lock)
  try {
    const c = new NodesCluster({ underlay: opts.underlay, nodes: opts.nodes, agentArgs: opts.agentArgs })
    const s = new NodesScenario(c, opts.placement)
    const steps: StepResult[] = []
    let error: Error | undefined
    try {
      await c.start()
      const world = new World(s, { applyNat: s.applyNat, outsideIp: c.outside.ip, dnsCheckNetns: (p) => c.node(s.nodeOf(`${p.spec.namespace}/${p.spec.name}`)).netns })
      s.installNat()
      await s.serveOutside()
      await populate(sc, s, world)
      await s.sync()
      log(`${sc.seed}: ${opts.underlay} cluster up in ${Date.now() - t0} ms (${c.pods.size} pods on ${c.nodes.size} nodes)`)
      for (const [index, step] of sc.steps.entries()) {
        const ts = Date.now()
        const matrix = await runStep(sc, step, s, world)
        const r = { index, step, matrix, ms: Date.now() - ts }
        steps.push(r)
        await onStep(r, s)
      }
    } catch (e) {
      error = e as Error
    }
    if (error || steps.some((r) => mismatches(r.matrix).length)) log(`${sc.seed}: ${error ? error.message + '; ' : ''}logs kept in ${keepLogs(sc, opts.underlay, c)}`)
    const teardownErrors = await c.teardown()
    return { steps, error, teardownErrors, leftovers: nodesLeftovers(), ms: Date.now() - t0 }
  } finally {
    await lock.run()
  }
}

/** Copies every node's agent log and the DNS log out of the temp dir before teardown removes it. */
function keepLogs(sc: Scenario, underlay: Underlay, c: NodesCluster): string {
  const dest = join(tmpdir(), 'wren-nodes-seeds-logs', `${sc.seed}-${underlay}`)
  mkdirSync(dest, { recursive: true })
  const files = [...[...c.nodes.keys()].flatMap((n) => [`${n}/agent.log`, `${n}/state/cni.log`]), 'dnsmasq.log', 'kube-dns.hosts']
  for (const f of files) {
    try {
      cpSync(join(c.root, f), join(dest, f.replace('/', '-')), { recursive: true })
    } catch {
      /* not every run has every log */
    }
  }
  return dest
}
