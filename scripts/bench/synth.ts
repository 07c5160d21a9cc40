// A synthetic cluster for the enforcer benchmark: namespaces, pods (a few of
// them local to this node, the rest remote with IPs given in status.podIPs) and
// NetworkPolicies of mixed shapes. Pure and deterministic: the same sizes and
// seed give the same objects, so runs compare.
//
// Layout: policy k lives in namespace k % K and has shape ⌊k / K⌋ % SHAPES, so
// every namespace gets every shape before any shape repeats. Shape "pod-peers"
// in its first round selects every pod of its namespace and admits tier=web on
// port 8080: the label and policy edits of the benchmark act on those.
import { policyShape, SHAPES } from './shapes.ts'
import { rng } from '../../test/lib/rng.ts'

export type Labels = Record<string, string>
export type Obj = Record<string, any>

export interface SynthSize {
  pods: number
  policies: number
  namespaces: number
  local: number
}

export interface SynthPod {
  namespace: string
  name: string
  labels: Labels
  ports: { name: string; containerPort: number; protocol: string }[]
  /** Remote pods carry an IP; local pods get theirs from the plugin. */
  ip?: string
  local: boolean
}

export interface SynthCluster {
  namespaces: Obj[]
  pods: SynthPod[]
  policies: Obj[]
  /** The two local pods of the connection-rate test, in their own namespace. */
  conn: { namespace: Obj; server: SynthPod; client: SynthPod }
}

export const TIERS = ['web', 'api', 'db', 'cache'] as const
export const CONN_NS = 'bench-conn'
export const CONN_PORT = 8080
const REMOTE_BASE = (10 << 24) | (99 << 16) // 10.99.0.0/16

/** mulberry32: small, seedable, good enough to spread labels. */

const pad = (n: number, w = 4) => String(n).padStart(w, '0')
export const nsName = (i: number) => `ns-${pad(i, 2)}`

function ipOf(n: number): string {
  const v = REMOTE_BASE + n
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.')
}

function namespaceObj(i: number): Obj {
  const labels = { team: `t${i % 10}`, env: ['prod', 'staging', 'dev'][i % 3], zone: `z${i % 4}` }
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: nsName(i), labels } }
}

function portsFor(tier: string, dns: boolean): SynthPod['ports'] {
  const tcp = (name: string, containerPort: number) => ({ name, containerPort, protocol: 'TCP' })
  const base = { web: [tcp('http', 8080), tcp('metrics', 9090)], api: [tcp('http', 8080), tcp('grpc', 50051), tcp('metrics', 9090)], db: [tcp('postgres', 5432)], cache: [tcp('redis', 6379)] }[tier]!
  return dns ? [...base, { name: 'dns', containerPort: 53, protocol: 'UDP' }, tcp('dns-tcp', 53)] : base
}

function makePod(j: number, size: SynthSize, stride: number, rand: () => number): SynthPod {
  const ns = j % size.namespaces
  const tier = TIERS[Math.floor(rand() * TIERS.length)]
  const dns = ns === 0 && j < 2 * size.namespaces
  const labels: Labels = { app: `app-${Math.floor(rand() * 20)}`, tier, team: rand() < 0.8 ? `t${ns % 10}` : `t${Math.floor(rand() * 10)}`, version: `v${1 + Math.floor(rand() * 3)}` }
  if (dns) labels['k8s-app'] = 'kube-dns'
  const local = j % stride === 0
  const pod: SynthPod = { namespace: nsName(ns), name: `pod-${pad(j)}`, labels, ports: portsFor(tier, dns), local }
  if (!local) pod.ip = ipOf(j + 1)
  return pod
}

function connPart(): SynthCluster['conn'] {
  const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: CONN_NS, labels: { purpose: 'conn-bench' } } }
  const port = { name: 'http', containerPort: CONN_PORT, protocol: 'TCP' }
  const server: SynthPod = { namespace: CONN_NS, name: 'conn-server', labels: { app: 'conn-server' }, ports: [port], local: true }
  const client: SynthPod = { namespace: CONN_NS, name: 'conn-client', labels: { app: 'conn-client' }, ports: [], local: true }
  return { namespace, server, client }
}

/** `size.pods` pods in all (2 of them the connection pair), `size.local` of them local. */
export function synthesize(size: SynthSize, seed = 1): SynthCluster {
  const rand = rng(seed)
  const generated = size.pods - 2
  const stride = Math.max(1, Math.floor(generated / Math.max(1, size.local - 2)))
  const pods: SynthPod[] = []
  for (let j = 0; j < generated; j++) pods.push(makePod(j, size, stride, rand))
  // the stride may overshoot by one; keep exactly local-2 generated local pods
  let extra = pods.filter((p) => p.local).length - (size.local - 2)
  for (let j = pods.length - 1; extra > 0 && j >= 0; j--) {
    if (!pods[j].local) continue
    pods[j] = { ...pods[j], local: false, ip: ipOf(j + 1) }
    extra--
  }
  const policies: Obj[] = []
  for (let k = 0; k < size.policies; k++) {
    const ns = k % size.namespaces
    const round = Math.floor(k / size.namespaces)
    policies.push(policyShape(SHAPES[round % SHAPES.length], { k, ns: nsName(ns), round: Math.floor(round / SHAPES.length), rand }))
  }
  const namespaces = Array.from({ length: size.namespaces }, (_, i) => namespaceObj(i))
  return { namespaces, pods, policies, conn: connPart() }
}

export function podObj(p: SynthPod, nodeName: string): Obj {
  const obj: Obj = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: { nodeName: p.local ? nodeName : `remote-${p.name.length % 7}`, containers: [{ name: 'main', image: 'bench', ports: p.ports }] },
  }
  if (p.ip) obj.status = { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] }
  return obj
}

/**
 * The connection test's policies: `count` policies select the server; only the
 * last one in the chain's (namespace/name) order admits the client, so every
 * new connection walks all the others first.
 */
export function connPolicies(count: number): Obj[] {
  const out: Obj[] = []
  for (let i = 0; i < count; i++) {
    const last = i === count - 1
    const from = last
      ? [{ podSelector: { matchLabels: { app: 'conn-client' } } }]
      : [{ podSelector: { matchLabels: { app: `other-${i}` } } }, { ipBlock: { cidr: `172.${16 + (i % 16)}.0.0/16`, except: [`172.${16 + (i % 16)}.${i % 256}.0/24`] } }, { namespaceSelector: { matchLabels: { team: `t${i % 10}` } } }]
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `conn-${pad(i, 3)}`, namespace: CONN_NS },
      spec: { podSelector: { matchLabels: { app: 'conn-server' } }, policyTypes: ['Ingress'], ingress: [{ from, ports: [{ protocol: 'TCP', port: CONN_PORT }] }] },
    })
  }
  return out
}
