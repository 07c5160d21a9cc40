/*
 * KubeSource: Pods, Namespaces, NetworkPolicies and Nodes from the Kubernetes API,
 * one SupervisedInformer each (see informer.ts for restart, relist and
 * indexing), all writing to the Store under origin 'kube'.
 *
 * Model: four independent informers; `synced` once all four initial lists
 * succeeded. start() resolves then (the agent must not program the kernel from
 * a partial view) and rejects if stop() comes first. rescan() is a barrier: a
 * fresh list of each kind.
 * Pods of other nodes that have no IP yet are not kept: they can be neither a
 * local subject nor a peer address, and a busy cluster has many.
 * Concurrency: single event loop; constructor does no I/O.
 */
import { CoreV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node'
import type { Logger } from '../../shared/log.ts'
import type { Store } from '../store.ts'
import type { Disconnection } from '../health.ts'
import { SupervisedInformer, type InformerStats } from './informer.ts'
import type { Kind } from './objects.ts'

export interface KubeSourceOptions {
  kubeConfig: KubeConfig
  store: Store
  log: Logger
  /** This node: pods scheduled here are kept even before they have an IP. */
  nodeName?: string
  backoff?: { initialMs?: number; maxMs?: number }
}

export class KubeSource {
  private readonly informers: SupervisedInformer[]
  private readonly log: Logger
  private syncWaiter?: { resolve: () => void; reject: (e: Error) => void }
  private syncDone?: Promise<void>
  private stopped = false

  constructor(o: KubeSourceOptions) {
    this.log = o.log.child({ source: 'kube' })
    const core = o.kubeConfig.makeApiClient(CoreV1Api)
    const net = o.kubeConfig.makeApiClient(NetworkingV1Api)
    const common = { kubeConfig: o.kubeConfig, store: o.store, log: this.log, backoff: o.backoff, onSynced: () => this.checkSynced() }
    const mk = (kind: Kind, path: string, list: () => Promise<any>, relevant?: (obj: any) => boolean) =>
      new SupervisedInformer({ ...common, kind, path, list, relevant })
    this.informers = [
      mk('Namespace', '/api/v1/namespaces', () => core.listNamespace()),
      mk('Pod', '/api/v1/pods', () => core.listPodForAllNamespaces(), (p) => podRelevant(p, o.nodeName)),
      mk('NetworkPolicy', '/apis/networking.k8s.io/v1/networkpolicies', () => net.listNetworkPolicyForAllNamespaces()),
      // routes between nodes and the cluster's pod ranges (masquerade, anti-spoofing)
      mk('Node', '/api/v1/nodes', () => core.listNode()),
    ]
  }

  /** True once every kind has been listed. */
  get synced(): boolean {
    return this.informers.every((i) => i.synced)
  }

  /** Starts the informers; resolves after the initial lists of every kind. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('kube source stopped'))
    if (this.syncDone) return this.syncDone
    this.syncDone = new Promise<void>((resolve, reject) => (this.syncWaiter = { resolve, reject }))
    for (const i of this.informers) i.start()
    return this.syncDone
  }

  /**
   * After the initial lists, lists every kind once more (informer.catchUp), so
   * that "synced" covers every change the API server has at the moment of the
   * call, not only those whose watch events arrived. One list per kind per call:
   * `status --wait-synced` costs that much in cluster mode.
   */
  async rescan(): Promise<void> {
    await this.syncDone
    await Promise.all(this.informers.map((i) => i.catchUp()))
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.syncWaiter?.reject(new Error('kube source stopped before the initial sync'))
    this.syncWaiter = undefined
    await Promise.all(this.informers.map((i) => i.stop()))
  }

  /** Per kind: lists, watch events, errors, restarts. */
  stats(): Record<string, InformerStats & { synced: boolean }> {
    const kinds: Kind[] = ['Namespace', 'Pod', 'NetworkPolicy', 'Node']
    return Object.fromEntries(this.informers.map((i, n) => [kinds[n], { ...i.stats, synced: i.synced }]))
  }

  /** Kinds whose informer cannot reach the API now, since when, the last error (for readiness). */
  disconnected(): Disconnection[] {
    return this.informers.flatMap((i) => (i.stats.disconnectedSince === undefined ? [] : [{ source: i.kind, since: i.stats.disconnectedSince, error: i.stats.lastError }]))
  }

  private checkSynced(): void {
    if (!this.synced || !this.syncWaiter) return
    this.log.info('initial sync done')
    this.syncWaiter.resolve()
    this.syncWaiter = undefined
  }
}

function podRelevant(p: any, nodeName: string | undefined): boolean {
  if (nodeName === undefined || p?.spec?.nodeName === nodeName) return true
  return !!p?.status?.podIP || !!p?.status?.podIPs?.length
}
