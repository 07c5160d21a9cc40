// Seed 000 (enn-policy "Advanced Daemon"): the ingress-demo policy of p-demo
// (podSelector, namespaceSelector and ipBlock peers), then the namespace
// isolation of p-demo1 with both an ingress and an egress policy.
//
// Mapping to the test host:
// - pods keep the seed's names; one replica per deployment.
// - ipBlock 10.19.139.0/24 becomes 10.93.1.0/24. The seed's two outside
//   machines become the outside host's two addresses: 10.93.0.2 (for
//   10.19.138.147, not in the block) and 10.93.1.2 (for 10.19.139.159, in it).
// - the NodePort 32322 of service nginx is a DNAT on the node's outside-facing
//   address 10.93.0.1 that keeps the client's source (as the seed's ipBlock
//   result requires).
// - enn-policy REJECTs (the seed shows "Connection refused"); wren drops, so
//   a denied connection times out: cell x either way.
// - a pod probing its own IP never leaves its namespace (loopback), so those
//   cells are not probed, except p-demo1's "can visit itself", which the seed
//   checks. A pod probing a Service that picks itself (hairpin) is not probed.
import type { Scenario } from './types.ts'

const nginx = (namespace: string, name: string, app: string) => ({ namespace, name, labels: { app }, ports: [{ name: 'http', containerPort: 80 }] })

export const s000: Scenario = {
  seed: '000',
  title: 'enn-policy: ingress-demo (pod/namespace/ipBlock peers), p-demo1 namespace isolation (ingress + egress)',
  namespaces: [
    { name: 'p-demo', labels: { name: 'p-demo', app: 'access' } },
    { name: 'p-demo1', labels: { name: 'p-demo1' } },
    { name: 'p-demo2', labels: { name: 'p-demo2', app: 'access' } },
    { name: 'p-demo3', labels: { name: 'p-demo3', app: 'access1' } },
  ],
  pods: [
    nginx('p-demo', 'nginx', 'nginx'),
    nginx('p-demo', 'nginx1', 'access'),
    nginx('p-demo', 'nginx2', 'reject'),
    nginx('p-demo1', 'nginx', 'nginx'),
    nginx('p-demo2', 'nginx', 'nginx'),
    nginx('p-demo3', 'nginx', 'nginx'),
  ],
  services: [
    { namespace: 'p-demo', name: 'nginx', selector: { app: 'nginx' }, ports: [{ port: 80 }], nodePort: 32322 },
    { namespace: 'p-demo', name: 'nginx1', selector: { app: 'access' }, ports: [{ port: 80 }], nodePort: 30579 },
    { namespace: 'p-demo', name: 'nginx2', selector: { app: 'reject' }, ports: [{ port: 80 }], nodePort: 32578 },
  ],
  rows: [
    { id: 'p-demo/nginx', pod: 'p-demo/nginx' },
    { id: 'p-demo/nginx1', pod: 'p-demo/nginx1' },
    { id: 'p-demo/nginx2', pod: 'p-demo/nginx2' },
    { id: 'p-demo1/nginx', pod: 'p-demo1/nginx' },
    { id: 'p-demo2/nginx', pod: 'p-demo2/nginx' },
    { id: 'p-demo3/nginx', pod: 'p-demo3/nginx' },
    { id: 'out 10.93.0.2', outside: '10.93.0.2' },
    { id: 'out 10.93.1.2', outside: '10.93.1.2' },
  ],
  columns: [
    { id: 'svc/nginx:80', kind: 'svc', svc: 'p-demo/nginx', port: 80 },
    { id: 'nginx1:80', kind: 'pod', pod: 'p-demo/nginx1', port: 80 },
    { id: 'nginx2:80', kind: 'pod', pod: 'p-demo/nginx2', port: 80 },
    { id: 'p-demo1:80', kind: 'pod', pod: 'p-demo1/nginx', port: 80 },
    { id: 'p-demo2:80', kind: 'pod', pod: 'p-demo2/nginx', port: 80 },
    { id: 'p-demo3:80', kind: 'pod', pod: 'p-demo3/nginx', port: 80 },
    { id: 'nodeport:32322', kind: 'nodeport', svc: 'p-demo/nginx' },
    { id: 'internet:80', kind: 'outside', port: 80 },
  ],
  steps: [
    {
      title: 'no policy: every pod reaches every pod',
      actions: [],
      expect: {
        //               svc  ng1  ng2  d1   d2   d3   np   inet
        'p-demo/nginx': '.    ok   ok   ok   ok   ok   .    ok',
        'p-demo/nginx1': 'ok  .    ok   ok   ok   ok   .    ok',
        'p-demo/nginx2': 'ok  ok   .    ok   ok   ok   .    ok',
        'p-demo1/nginx': 'ok  ok   ok   ok   ok   ok   .    ok',
        'p-demo2/nginx': 'ok  ok   ok   ok   .    ok   .    ok',
        'p-demo3/nginx': 'ok  ok   ok   ok   ok   .    .    ok',
        'out 10.93.0.2': '.   ok   ok   ok   ok   ok   ok   .',
        'out 10.93.1.2': '.   ok   ok   ok   ok   ok   ok   .',
      },
    },
    {
      // p-demo's pods admit: pods of p-demo labelled app=access (nginx1), any
      // pod of a namespace labelled name=p-demo1, and 10.93.1.0/24 (the seed's
      // 10.19.139.0/24). p-demo's own namespace label app=access is irrelevant:
      // a bare podSelector peer means "in the policy's namespace".
      title: 'apply ingress-demo (p-demo)',
      actions: [
        {
          apply: {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name: 'ingress-demo', namespace: 'p-demo' },
            spec: {
              podSelector: {},
              policyTypes: ['Ingress'],
              ingress: [{ from: [{ podSelector: { matchLabels: { app: 'access' } } }, { namespaceSelector: { matchLabels: { name: 'p-demo1' } } }, { ipBlock: { cidr: '10.93.1.0/24' } }] }],
            },
          },
        },
      ],
      expect: {
        //               svc  ng1  ng2  d1   d2   d3   np   inet
        'p-demo/nginx': '.    x    x    ok   ok   ok   .    ok',
        'p-demo/nginx1': 'ok  .    ok   ok   ok   ok   .    ok',
        'p-demo/nginx2': 'x   x    .    ok   ok   ok   .    ok',
        'p-demo1/nginx': 'ok  ok   ok   ok   ok   ok   .    ok',
        'p-demo2/nginx': 'x   x    x    ok   .    ok   .    ok',
        'p-demo3/nginx': 'x   x    x    ok   ok   .    .    ok',
        'out 10.93.0.2': '.   x    x    ok   ok   ok   x    .',
        'out 10.93.1.2': '.   ok   ok   ok   ok   ok   ok   .',
      },
    },
    {
      // p-demo1 admits its own namespace (name=p-demo1) and namespaces labelled
      // app=access (p-demo, p-demo2); it may only send to its own namespace and
      // to namespaces labelled app=access1 (p-demo3). Nothing else is isolated.
      title: 'delete ingress-demo; apply namespace-egress and namespace-ingress (p-demo1)',
      actions: [
        { delete: 'p-demo/ingress-demo' },
        {
          apply: {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name: 'namespace-egress', namespace: 'p-demo1' },
            spec: {
              podSelector: {},
              policyTypes: ['Egress'],
              egress: [{ to: [{ namespaceSelector: { matchLabels: { name: 'p-demo1' } } }] }, { to: [{ namespaceSelector: { matchLabels: { app: 'access1' } } }] }],
            },
          },
        },
        {
          apply: {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name: 'namespace-ingress', namespace: 'p-demo1' },
            spec: {
              podSelector: {},
              policyTypes: ['Ingress'],
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { name: 'p-demo1' } } }] }, { from: [{ namespaceSelector: { matchLabels: { app: 'access' } } }] }],
            },
          },
        },
      ],
      expect: {
        //               svc  ng1  ng2  d1   d2   d3   np   inet
        'p-demo/nginx': '.    ok   ok   ok   ok   ok   .    ok',
        'p-demo/nginx1': 'ok  .    ok   ok   ok   ok   .    ok',
        'p-demo/nginx2': 'ok  ok   .    ok   ok   ok   .    ok',
        'p-demo1/nginx': 'x   x    x    ok   x    ok   .    x',
        'p-demo2/nginx': 'ok  ok   ok   ok   .    ok   .    ok',
        'p-demo3/nginx': 'ok  ok   ok   x    ok   .    .    ok',
        'out 10.93.0.2': '.   ok   ok   x    ok   ok   ok   .',
        'out 10.93.1.2': '.   ok   ok   x    ok   ok   ok   .',
      },
    },
  ],
}
