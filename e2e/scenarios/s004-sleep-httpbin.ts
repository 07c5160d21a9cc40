// Seed 004 (Hoot 51, Cilium & NetworkPolicy): default-deny ingress, allow
// sleep -> httpbin, allow from namespace sleep by kubernetes.io/metadata.name,
// then the AND of namespace and pod selector, allow-ns-ingress, deny sleep's
// egress, allow its egress to httpbin, then DNS to kube-dns.
//
// Mapping to the test host:
// - httpbin's Service listens on 8000 and targets the pod's port 80 ("the
//   endpoint port", as the seed says); curl by name resolves httpbin.default
//   through kube-dns from the client pod, then connects to the ClusterIP.
// - default/curl and sleep/other are additions: "any other pods" that the
//   seed says the policies keep out.
// - the L7 CiliumNetworkPolicy part is not a NetworkPolicy and is not covered.
// - Kubernetes semantics the seed leaves implicit: allow-dns-egress selects
//   every pod of default, so from then on default/curl (and httpbin) may only
//   talk DNS: curl's request to httpbin times out after resolving.
import type { Scenario } from './types.ts'

// like the seed's manifests, no namespace: they land in default
const np = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name }, spec })
const fromSleepNs = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'sleep' } } }
const ingressToHttpbin = (from: unknown[]) => ({ podSelector: { matchLabels: { app: 'httpbin' } }, policyTypes: ['Ingress'], ingress: [{ from }] })

export const s004: Scenario = {
  seed: '004',
  title: 'Cilium demo: sleep/httpbin ingress and egress policies, namespace by kubernetes.io/metadata.name, DNS egress',
  dns: true,
  namespaces: [{ name: 'default' }],
  pods: [
    { namespace: 'default', name: 'sleep', labels: { app: 'sleep' } },
    { namespace: 'default', name: 'httpbin', labels: { app: 'httpbin', version: 'v1' }, ports: [{ name: 'http', containerPort: 80 }] },
    { namespace: 'default', name: 'curl', labels: { app: 'curl' } },
  ],
  services: [{ namespace: 'default', name: 'httpbin', selector: { app: 'httpbin' }, ports: [{ port: 8000, targetPort: 80 }] }],
  rows: [
    { id: 'default/sleep', pod: 'default/sleep' },
    { id: 'default/curl', pod: 'default/curl' },
    { id: 'sleep/sleep', pod: 'sleep/sleep' },
    { id: 'sleep/other', pod: 'sleep/other' },
  ],
  columns: [
    { id: 'curl httpbin.default:8000', kind: 'name', name: 'httpbin.default', port: 8000, svc: 'default/httpbin' },
    { id: 'svc/httpbin:8000', kind: 'svc', svc: 'default/httpbin', port: 8000 },
    { id: 'httpbin-ip:80', kind: 'pod', pod: 'default/httpbin', port: 80 },
    { id: 'dns:httpbin.default', kind: 'dns', name: 'httpbin.default', protocol: 'UDP' },
  ],
  steps: [
    {
      title: 'no policy (namespace sleep not created yet)',
      actions: [],
      expect: {
        //                 name   svc  pod  dns
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  ok     ok   ok   ok',
        'sleep/sleep': '   .      .    .    .',
        'sleep/other': '   .      .    .    .',
      },
    },
    {
      title: 'apply default-deny-ingress',
      actions: [{ apply: np('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }) }],
      expect: {
        'default/sleep': ' x      x    x    ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   .      .    .    .',
        'sleep/other': '   .      .    .    .',
      },
    },
    {
      title: 'apply allow-ingress-to-httpbin (from app=sleep)',
      actions: [{ apply: np('allow-ingress-to-httpbin', ingressToHttpbin([{ podSelector: { matchLabels: { app: 'sleep' } } }])) }],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   .      .    .    .',
        'sleep/other': '   .      .    .    .',
      },
    },
    {
      // a bare podSelector peer means "in the policy's namespace": sleep/sleep is out
      title: 'create namespace sleep with pods sleep and other',
      actions: [
        { addNamespace: { name: 'sleep' } },
        { addPod: { namespace: 'sleep', name: 'sleep', labels: { app: 'sleep' } } },
        { addPod: { namespace: 'sleep', name: 'other', labels: { app: 'other' } } },
      ],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   x      x    x    ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
    {
      title: 'apply allow-ingress-from-sleep (namespaceSelector kubernetes.io/metadata.name=sleep)',
      actions: [{ apply: np('allow-ingress-from-sleep', ingressToHttpbin([fromSleepNs])) }],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   ok     ok   ok   ok',
        'sleep/other': '   ok     ok   ok   ok',
      },
    },
    {
      title: 'update allow-ingress-from-sleep to namespaceSelector AND podSelector app=sleep',
      actions: [{ apply: np('allow-ingress-from-sleep', ingressToHttpbin([{ ...fromSleepNs, podSelector: { matchLabels: { app: 'sleep' } } }])) }],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   ok     ok   ok   ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
    {
      title: 'delete every policy; apply allow-ns-ingress',
      actions: [
        { delete: 'default/default-deny-ingress' },
        { delete: 'default/allow-ingress-to-httpbin' },
        { delete: 'default/allow-ingress-from-sleep' },
        { apply: np('allow-ns-ingress', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }) },
      ],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  ok     ok   ok   ok',
        'sleep/sleep': '   x      x    x    ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
    {
      title: 'apply deny-sleep-egress (app=sleep of default)',
      actions: [{ apply: np('deny-sleep-egress', { podSelector: { matchLabels: { app: 'sleep' } }, policyTypes: ['Egress'] }) }],
      expect: {
        'default/sleep': ' nodns  x    x    x',
        'default/curl': '  ok     ok   ok   ok',
        'sleep/sleep': '   x      x    x    ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
    {
      // by name it still fails (DNS is denied); by the Service IP it works
      title: 'apply deny-sleep-to-httpbin-egress (egress to app=httpbin)',
      actions: [{ apply: np('deny-sleep-to-httpbin-egress', { podSelector: { matchLabels: { app: 'sleep' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'httpbin' } } }] }] }) }],
      expect: {
        'default/sleep': ' nodns  ok   ok   x',
        'default/curl': '  ok     ok   ok   ok',
        'sleep/sleep': '   x      x    x    ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
    {
      title: 'apply allow-dns-egress (every pod of default to kube-system AND k8s-app=kube-dns)',
      actions: [
        {
          apply: np('allow-dns-egress', {
            podSelector: {},
            policyTypes: ['Egress'],
            egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }] }],
          }),
        },
      ],
      expect: {
        'default/sleep': ' ok     ok   ok   ok',
        'default/curl': '  x      x    x    ok',
        'sleep/sleep': '   x      x    x    ok',
        'sleep/other': '   x      x    x    ok',
      },
    },
  ],
}
