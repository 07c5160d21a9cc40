// What the seed runner (run.ts) and World (world.ts) need of a cluster, so one
// scenario definition drives either the one-node Cluster (lib/cluster.ts) or
// pods spread over the nodes of a NodesCluster (lib/nodes-world.ts).
import type { Cleanup } from '../lib/host.ts'
import type { Pod } from '../lib/cluster.ts'
import type { NamespaceSpec, PodSpec } from './types.ts'

/** New label values; null removes the key. */
export type LabelChange = Record<string, string | null>

export interface ScenarioCluster {
  readonly cleanup: Cleanup
  /** Where World keeps the DNS hosts file and dnsmasq's log. */
  readonly logDir: string
  readonly pods: ReadonlyMap<string, Pod>
  pod(id: string): Pod
  /** Records a long-lived process for a reaper of killed runs (may do nothing). */
  notePid(pid: number | undefined): void
  setNamespace(ns: NamespaceSpec): void
  labelNamespace(name: string, change: LabelChange): void
  labelPod(id: string, change: LabelChange): void
  /** The Pod object, then its sandbox; `serve` replaces the banner servers on its ports. */
  addPod(spec: PodSpec, serve?: (pod: Pod) => Promise<void>): Promise<Pod>
  applyPolicy(doc: Record<string, unknown>): void
  /** namespace/name of a NetworkPolicy. */
  deletePolicy(id: string): void
  /** Returns once every agent's kernel holds every change made so far. */
  sync(): Promise<void>
  /** Forgets the tracked flows of the test ranges, so the next probes are new connections. */
  forgetFlows(): void
}
