// What the README's `--kubeconfig ~/.kube/config` commands find (e2e/readme.test.ts):
// a HOME whose .kube/config points at the in-repo API server, this host's Node
// (named as kubelet names it: the hostname lowercased), and the demo objects
// the README's `show demo/web` names.
import { mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { TestApiServer, type ApiKind } from './apiserver.ts'
import { Cleanup, sh, tempDir } from './host.ts'

/** This host's Node name as kubelet registers it (no --hostname-override). */
export const NODE = hostname().trim().toLowerCase()

/** An API server holding `objects`, and a HOME whose ~/.kube/config reaches it. */
export async function kubeHome(cleanup: Cleanup, objects: [ApiKind, object][]): Promise<{ api: TestApiServer; home: string }> {
  const api = new TestApiServer()
  await api.start()
  cleanup.push('API server', () => api.close())
  for (const [kind, obj] of objects) api.create(kind, obj)
  const home = tempDir(cleanup, 'wren-readme-home-')
  mkdirSync(join(home, '.kube'))
  writeFileSync(join(home, '.kube', 'config'), api.kubeConfig().exportConfig(), { mode: 0o600 })
  return { api, home }
}

/** This host's Node; `podCIDRs` absent until the cluster assigns them. */
export function nodeObject(podCIDRs?: string[], internalIPs: string[] = []): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } },
    spec: podCIDRs ? { podCIDR: podCIDRs[0], podCIDRs } : {},
    status: { addresses: [...internalIPs.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: NODE }] },
  }
}

export const DEMO_POLICY = 'web-from-client'

/** Namespace demo, pod demo/web on this node (port 80), and a policy letting only app=client reach it. */
export function demoObjects(): [ApiKind, object][] {
  return [
    ['Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { 'kubernetes.io/metadata.name': 'demo' } } }],
    [
      'Pod',
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'demo', uid: 'uid-demo-web', labels: { app: 'web' } },
        spec: { nodeName: NODE, containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80, protocol: 'TCP' }] }] },
      },
    ],
    [
      'NetworkPolicy',
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: DEMO_POLICY, namespace: 'demo' },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] }],
        },
      },
    ],
  ]
}

/** The interface of the default route and its MTU and first IPv4 address. */
export function uplink(): { dev: string; mtu: number; ipv4?: string } {
  const route = JSON.parse(sh('ip', ['-j', 'route', 'show', 'default']))[0]
  const dev = route?.dev as string
  const link = JSON.parse(sh('ip', ['-j', '-4', 'addr', 'show', 'dev', dev]))[0]
  return { dev, mtu: link?.mtu ?? 1500, ipv4: link?.addr_info?.[0]?.local }
}
