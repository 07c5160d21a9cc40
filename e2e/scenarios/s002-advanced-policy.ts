// Seed 002 (Calico lab "Controlling Ingress and Egress Traffic"): default-deny
// ingress, allow ingress to nginx, default-deny egress, allow DNS (UDP 53) to
// kube-system by a namespace label added in the same step, allow egress to nginx.
//
// Mapping to the test host:
// - nginx: 2 replicas behind Service nginx (ClusterIP, NAT like kube-proxy).
// - "google.com" resolves (through the kube-dns pod) to the outside host.
// - wget by name = a real DNS lookup from the access pod (search list
//   advanced-policy-demo.svc.cluster.local …) to kube-dns's ClusterIP, then
//   TCP to the answer: "bad address" is cell nodns, "timed out" is x.
// - DNS over TCP is probed too: allow-dns-access opens UDP 53 only.
// - nginx-1 probing Service nginx could pick itself (hairpin): not probed.
import type { Scenario } from './types.ts'

const NS = 'advanced-policy-demo'
const np = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: NS }, spec })

export const s002: Scenario = {
  seed: '002',
  title: 'Calico lab: default-deny ingress/egress, allow nginx, allow DNS to kube-system, allow egress to nginx',
  dns: true,
  namespaces: [{ name: NS }],
  pods: [
    { namespace: NS, name: 'nginx-1', labels: { run: 'nginx' }, ports: [{ name: 'http', containerPort: 80 }] },
    { namespace: NS, name: 'nginx-2', labels: { run: 'nginx' }, ports: [{ name: 'http', containerPort: 80 }] },
    { namespace: NS, name: 'access', labels: { run: 'access' } },
  ],
  services: [{ namespace: NS, name: 'nginx', selector: { run: 'nginx' }, ports: [{ port: 80 }] }],
  rows: [
    { id: 'access', pod: `${NS}/access` },
    { id: 'nginx-1', pod: `${NS}/nginx-1` },
    { id: 'out 10.93.0.2', outside: '10.93.0.2' },
  ],
  columns: [
    { id: 'dns:nginx', kind: 'dns', name: 'nginx', protocol: 'UDP' },
    { id: 'dns:google.com', kind: 'dns', name: 'google.com', protocol: 'UDP' },
    { id: 'dns-tcp:nginx', kind: 'dns', name: 'nginx', protocol: 'TCP' },
    { id: 'wget nginx', kind: 'name', name: 'nginx', port: 80, svc: `${NS}/nginx` },
    { id: 'svc/nginx:80', kind: 'svc', svc: `${NS}/nginx`, port: 80 },
    { id: 'nginx-2:80', kind: 'pod', pod: `${NS}/nginx-2`, port: 80 },
    { id: 'wget google.com', kind: 'name', name: 'google.com', port: 80, outside: true },
  ],
  steps: [
    {
      title: 'no policy: nginx and google.com reachable',
      actions: [],
      expect: {
        //           dns  dnsG dnsT wget svc  ng2  google
        access: '    ok   ok   ok   ok   ok   ok   ok',
        'nginx-1': ' ok   ok   ok   .    .    ok   ok',
        'out 10.93.0.2': '. .  .    .    .    ok   .',
      },
    },
    {
      title: 'apply default-deny-ingress',
      actions: [{ apply: np('default-deny-ingress', { podSelector: { matchLabels: {} }, policyTypes: ['Ingress'] }) }],
      expect: {
        access: '    ok   ok   ok   x    x    x    ok',
        'nginx-1': ' ok   ok   ok   .    .    x    ok',
        'out 10.93.0.2': '. .  .    .    .    x    .',
      },
    },
    {
      // run=nginx admits every pod of the namespace; the outside host stays out.
      title: 'apply access-nginx',
      actions: [{ apply: np('access-nginx', { podSelector: { matchLabels: { run: 'nginx' } }, ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }] }) }],
      expect: {
        access: '    ok   ok   ok   ok   ok   ok   ok',
        'nginx-1': ' ok   ok   ok   .    .    ok   ok',
        'out 10.93.0.2': '. .  .    .    .    x    .',
      },
    },
    {
      // nslookup times out, so wget by name fails with "bad address" (nodns).
      title: 'apply default-deny-egress',
      actions: [{ apply: np('default-deny-egress', { podSelector: { matchLabels: {} }, policyTypes: ['Egress'] }) }],
      expect: {
        access: '    x    x    x    nodns x   x    nodns',
        'nginx-1': ' x    x    x    .    .    x    nodns',
        'out 10.93.0.2': '. .  .    .    .    x    .',
      },
    },
    {
      // DNS resolves again (UDP only, to any pod of kube-system, after the
      // ClusterIP was translated to the kube-dns pod); HTTP is still blocked.
      title: 'label kube-system name=kube-system; apply allow-dns-access',
      actions: [
        { labelNamespace: 'kube-system', labels: { name: 'kube-system' } },
        {
          apply: np('allow-dns-access', {
            podSelector: { matchLabels: {} },
            policyTypes: ['Egress'],
            egress: [{ to: [{ namespaceSelector: { matchLabels: { name: 'kube-system' } } }], ports: [{ protocol: 'UDP', port: 53 }] }],
          }),
        },
      ],
      expect: {
        access: '    ok   ok   x    x    x    x    x',
        'nginx-1': ' ok   ok   x    .    .    x    x',
        'out 10.93.0.2': '. .  .    .    .    x    .',
      },
    },
    {
      title: 'apply allow-egress-to-advance-policy-ns',
      actions: [{ apply: np('allow-egress-to-advance-policy-ns', { podSelector: { matchLabels: {} }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { run: 'nginx' } } }] }] }) }],
      expect: {
        access: '    ok   ok   x    ok   ok   ok   x',
        'nginx-1': ' ok   ok   x    .    .    ok   x',
        'out 10.93.0.2': '. .  .    .    .    x    .',
      },
    },
  ],
}
