// The Kubernetes objects the enforcer reads, in their JSON API shape (the same
// field names as the API and as YAML manifests), reduced to what policy needs.
// Objects from @kubernetes/client-node informers and from parsed YAML both fit.

export interface ObjectMeta {
  name: string
  namespace?: string
  uid?: string
  labels?: Record<string, string>
  resourceVersion?: string
}

export interface LabelSelectorRequirement {
  key: string
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | string
  values?: string[]
}

export interface LabelSelector {
  matchLabels?: Record<string, string>
  matchExpressions?: LabelSelectorRequirement[]
}

export interface ContainerPort {
  name?: string
  containerPort: number
  protocol?: string // TCP when omitted
}

export interface Pod {
  metadata: ObjectMeta
  spec?: { nodeName?: string; hostNetwork?: boolean; containers?: { name?: string; ports?: ContainerPort[] }[] }
  status?: { podIP?: string; podIPs?: { ip: string }[]; phase?: string }
}

export interface Namespace {
  metadata: ObjectMeta
}

export interface IPBlock {
  cidr: string
  except?: string[]
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector
  namespaceSelector?: LabelSelector
  ipBlock?: IPBlock
}

export interface NetworkPolicyPort {
  protocol?: string // TCP when omitted
  port?: number | string // number or named port; all ports when omitted
  endPort?: number
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[]
  ports?: NetworkPolicyPort[]
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[]
  ports?: NetworkPolicyPort[]
}

export interface NetworkPolicy {
  metadata: ObjectMeta
  spec: {
    podSelector: LabelSelector
    policyTypes?: string[]
    ingress?: NetworkPolicyIngressRule[]
    egress?: NetworkPolicyEgressRule[]
  }
}

/**
 * A cluster node, reduced to what routing between nodes reads: its pod ranges
 * and its InternalIP addresses (other address types are dropped on arrival, so
 * a node's frequent status updates are no change).
 */
export interface Node {
  metadata: ObjectMeta
  /** podCIDRs: also the older spec.podCIDR, folded in on arrival. */
  spec?: { podCIDRs?: string[] }
  status?: { addresses?: { type: string; address: string }[] }
}

/**
 * A local workload: a host interface the plugin wired, joined with its pod.
 * Built from a workload record (shared/record.ts).
 */
export interface LocalWorkload {
  hostIface: string
  namespace?: string
  pod?: string
  ips: string[]
}

/** Everything the compiler needs, as plain data. */
export interface Snapshot {
  namespaces: Namespace[]
  pods: Pod[]
  policies: NetworkPolicy[]
  workloads: LocalWorkload[]
  /** Cluster nodes (cluster mode, or Node manifests); absent or empty: no routes, no masquerade from them. */
  nodes?: Node[]
}

export interface EnforcerConfig {
  /** Host interface prefix; `prefix+` is the iptables wildcard for every workload. */
  ifacePrefix: string
  /** The mark bit that says "policy accepted this packet" (a single bit). */
  acceptMark: number
  /** Accept pod→own-node traffic without consulting egress policy (Kubernetes requires host reachability). */
  allowWorkloadToHost: boolean
  /**
   * ipset maxelem of every set. A set whose members would exceed it is left
   * empty (its rules allow nothing) and reported: the kernel would refuse the
   * whole apply. Default 1,048,576 as Calico's: maxelem reserves no memory,
   * it only caps growth.
   */
  setMaxElem: number
  /**
   * Peers one port group of a workload matches one rule each; a group with more
   * shares one union set of all their addresses (one lookup per connection, a
   * copy of every address in the set). 0: every group of several peers is a union.
   */
  unionAbove: number
  /**
   * Masquerade pod traffic whose destination is outside every pod range of the
   * cluster (the nodes' spec.podCIDRs and `clusterCidrs`). Pod-to-pod traffic,
   * across nodes too, keeps its source, so the receiver's policy sees it.
   */
  masquerade: boolean
  /** Pod ranges of the cluster besides those the Node objects name (--cluster-cidr). */
  clusterCidrs: string[]
}

export const DEFAULT_ENFORCER_CONFIG: EnforcerConfig = {
  ifacePrefix: 'wren',
  acceptMark: 0x10000,
  allowWorkloadToHost: true,
  setMaxElem: 1_048_576,
  unionAbove: 8,
  masquerade: true,
  clusterCidrs: [],
}
