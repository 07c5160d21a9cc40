// The shape of a seed scenario as data: the world (namespaces, pods with
// labels and container ports, services), who probes whom, and the ordered
// steps of the seed document, each with the connectivity it should yield.

export type Labels = Record<string, string>

export interface NamespaceSpec {
  name: string
  /** Kubernetes adds kubernetes.io/metadata.name itself; the cluster does too. */
  labels?: Labels
}

export interface PortSpec {
  name?: string
  containerPort: number
  protocol?: 'TCP' | 'UDP'
}

export interface PodSpec {
  namespace: string
  name: string
  labels: Labels
  ports?: PortSpec[]
  /** What answers on the ports: a socat banner server (default) or the cluster DNS. */
  server?: 'banner' | 'dns'
}

export interface ServiceSpec {
  namespace: string
  name: string
  selector: Labels
  ports: { port: number; targetPort?: number; protocol?: 'TCP' | 'UDP' }[]
  /** clusterIP: None — DNS answers with the pod IPs, no NAT. */
  headless?: boolean
  /** Fixed ClusterIP (kube-dns); otherwise allocated from the service range. */
  clusterIP?: string
  /** kube-proxy style NodePort on the host's outside-facing address. */
  nodePort?: number
}

export type Action =
  | { apply: Record<string, unknown> }
  | { delete: string /* namespace/name of a NetworkPolicy */ }
  | { labelNamespace: string; labels: Record<string, string | null> }
  | { labelPod: string /* namespace/name */; labels: Record<string, string | null> }
  | { addNamespace: NamespaceSpec }
  | { addPod: PodSpec }
  | { addService: ServiceSpec }

/** A source of probes: a pod (namespace/name) or the outside host from one of its addresses. */
export type Row = { id: string; pod: string } | { id: string; outside: string }

/** A destination; each knows which server banner proves it reached the right place. */
export type Column =
  | { id: string; kind: 'pod'; pod: string; port: number; protocol?: 'TCP' | 'UDP' }
  | { id: string; kind: 'svc'; svc: string; port: number }
  | { id: string; kind: 'nodeport'; svc: string }
  | { id: string; kind: 'outside'; port: number }
  /** Resolve through kube-dns from the client pod, then TCP (wget/curl/nc by name). */
  | { id: string; kind: 'name'; name: string; port: number; svc?: string; outside?: true }
  /** Only the lookup, over UDP or TCP port 53 of kube-dns. */
  | { id: string; kind: 'dns'; name: string; protocol: 'UDP' | 'TCP' }

/**
 * Expected cells: ok = reached (right banner), x = blocked (dropped, timed out),
 * nodns = the name did not resolve (lookup blocked or unknown), . = not probed.
 */
export type Expect = 'ok' | 'x' | 'nodns' | '.'

export interface Step {
  title: string
  actions: Action[]
  /** Row id → one cell per column, space separated, in column order. */
  expect: Record<string, string>
}

export interface Scenario {
  seed: string
  title: string
  /** Whether a kube-dns pod (dnsmasq) in kube-system is part of the world. */
  dns?: boolean
  namespaces: NamespaceSpec[]
  pods: PodSpec[]
  services?: ServiceSpec[]
  rows: Row[]
  columns: Column[]
  steps: Step[]
}
