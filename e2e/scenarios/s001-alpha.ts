// Seed 001 (NetworkPolicy notes, Calico on GKE): isolate namespace alpha with
// alpha-deny, let run=access in with access-nginx, then the document's
// test-network-policy skeleton: ipBlock with except, namespaceSelector,
// podSelector, and the AND of namespaceSelector+podSelector in one peer, all
// on TCP 80, plus an egress rule to 10.0.0.0/8 on TCP 80.
//
// Mapping to the test host:
// - nginx runs 2 replicas behind Service nginx; each also listens on 8080 to
//   show the port restriction. Namespace gamma and the pods beta/other and
//   gamma/hammer are additions that make the AND visible: only app=hammer in
//   a namespace labelled ns=b matches that peer.
// - ipBlock 10.63.48.0/22 except 10.63.48.4/32 becomes 10.93.4.0/22 except
//   10.93.4.4/32; the outside host probes from 10.93.4.5 (in the block),
//   10.93.4.4 (the exception) and 10.93.0.2 (neither).
// - the egress ipBlock 10.0.0.0/8 is kept as is: it holds every test range
//   (pods 10.92/16, outside 10.93/16). Whether ipBlock applies to pod IPs is
//   implementation-defined in Kubernetes; wren (like Calico) matches them.
import type { Scenario } from './types.ts'

const np = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'alpha' }, spec })
const web = [{ name: 'http', containerPort: 80 }, { name: 'metrics', containerPort: 8080 }]

export const s001: Scenario = {
  seed: '001',
  title: 'Calico notes: alpha-deny, access-nginx, test-network-policy (ipBlock except, ns+pod AND, ports, egress)',
  namespaces: [
    { name: 'alpha', labels: { ns: 'a' } },
    { name: 'beta', labels: { ns: 'b' } },
    { name: 'gamma' },
  ],
  pods: [
    { namespace: 'alpha', name: 'nginx-1', labels: { run: 'nginx' }, ports: web },
    { namespace: 'alpha', name: 'nginx-2', labels: { run: 'nginx' }, ports: web },
    { namespace: 'alpha', name: 'access', labels: { run: 'access' } },
    { namespace: 'beta', name: 'hammer', labels: { app: 'hammer' }, ports: [{ name: 'http', containerPort: 80 }] },
    { namespace: 'beta', name: 'other', labels: { app: 'other' } },
    { namespace: 'gamma', name: 'hammer', labels: { app: 'hammer' } },
  ],
  services: [{ namespace: 'alpha', name: 'nginx', selector: { run: 'nginx' }, ports: [{ port: 80 }] }],
  rows: [
    { id: 'alpha/access', pod: 'alpha/access' },
    { id: 'alpha/nginx-1', pod: 'alpha/nginx-1' },
    { id: 'beta/hammer', pod: 'beta/hammer' },
    { id: 'beta/other', pod: 'beta/other' },
    { id: 'gamma/hammer', pod: 'gamma/hammer' },
    { id: 'out 10.93.0.2', outside: '10.93.0.2' },
    { id: 'out 10.93.4.5', outside: '10.93.4.5' },
    { id: 'out 10.93.4.4', outside: '10.93.4.4' },
  ],
  columns: [
    { id: 'svc/nginx:80', kind: 'svc', svc: 'alpha/nginx', port: 80 },
    { id: 'nginx-2:80', kind: 'pod', pod: 'alpha/nginx-2', port: 80 },
    { id: 'nginx-2:8080', kind: 'pod', pod: 'alpha/nginx-2', port: 8080 },
    { id: 'beta/hammer:80', kind: 'pod', pod: 'beta/hammer', port: 80 },
    { id: 'internet:80', kind: 'outside', port: 80 },
    { id: 'internet:8080', kind: 'outside', port: 8080 },
  ],
  steps: [
    {
      title: 'no policy',
      actions: [],
      expect: {
        //               svc  ng2:80 ng2:8080 hammer inet:80 inet:8080
        'alpha/access': 'ok   ok     ok       ok     ok      ok',
        'alpha/nginx-1': '.   ok     ok       ok     ok      ok',
        'beta/hammer': 'ok    ok     ok       .      ok      ok',
        'beta/other': 'ok     ok     ok       ok     ok      ok',
        'gamma/hammer': 'ok   ok     ok       ok     ok      ok',
        'out 10.93.0.2': '.   ok     ok       ok     .       .',
        'out 10.93.4.5': '.   ok     ok       ok     .       .',
        'out 10.93.4.4': '.   ok     ok       ok     .       .',
      },
    },
    {
      // podSelector {} with no policyTypes: Ingress only, every alpha pod isolated.
      title: 'apply alpha-deny',
      actions: [{ apply: np('alpha-deny', { podSelector: { matchLabels: {} } }) }],
      expect: {
        'alpha/access': 'x    x      x        ok     ok      ok',
        'alpha/nginx-1': '.   x      x        ok     ok      ok',
        'beta/hammer': 'x     x      x        .      ok      ok',
        'beta/other': 'x      x      x        ok     ok      ok',
        'gamma/hammer': 'x    x      x        ok     ok      ok',
        'out 10.93.0.2': '.   x      x        ok     .       .',
        'out 10.93.4.5': '.   x      x        ok     .       .',
        'out 10.93.4.4': '.   x      x        ok     .       .',
      },
    },
    {
      // run=nginx admits run=access of alpha on every port; nothing else changes.
      title: 'apply access-nginx',
      actions: [{ apply: np('access-nginx', { podSelector: { matchLabels: { run: 'nginx' } }, ingress: [{ from: [{ podSelector: { matchLabels: { run: 'access' } } }] }] }) }],
      expect: {
        'alpha/access': 'ok   ok     ok       ok     ok      ok',
        'alpha/nginx-1': '.   x      x        ok     ok      ok',
        'beta/hammer': 'x     x      x        .      ok      ok',
        'beta/other': 'x      x      x        ok     ok      ok',
        'gamma/hammer': 'x    x      x        ok     ok      ok',
        'out 10.93.0.2': '.   x      x        ok     .       .',
        'out 10.93.4.5': '.   x      x        ok     .       .',
        'out 10.93.4.4': '.   x      x        ok     .       .',
      },
    },
    {
      // Ingress to run=nginx on TCP 80 from: 10.93.4.0/22 but not 10.93.4.4,
      // any pod of a ns=a namespace, run=nginx of alpha, app=hammer of a ns=b
      // namespace (AND). Egress of run=nginx: only TCP 80 to 10.0.0.0/8, so
      // nginx-1 loses 8080 everywhere. access-nginx still lets access in on all ports.
      title: 'apply test-network-policy',
      actions: [
        {
          apply: np('test-network-policy', {
            podSelector: { matchLabels: { run: 'nginx' } },
            policyTypes: ['Ingress', 'Egress'],
            ingress: [
              {
                from: [
                  { ipBlock: { cidr: '10.93.4.0/22', except: ['10.93.4.4/32'] } },
                  { namespaceSelector: { matchLabels: { ns: 'a' } } },
                  { podSelector: { matchLabels: { run: 'nginx' } } },
                  { namespaceSelector: { matchLabels: { ns: 'b' } }, podSelector: { matchLabels: { app: 'hammer' } } },
                ],
                ports: [{ protocol: 'TCP', port: 80 }],
              },
            ],
            egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ protocol: 'TCP', port: 80 }] }],
          }),
        },
      ],
      expect: {
        'alpha/access': 'ok   ok     ok       ok     ok      ok',
        'alpha/nginx-1': '.   ok     x        ok     ok      x',
        'beta/hammer': 'ok    ok     x        .      ok      ok',
        'beta/other': 'x      x      x        ok     ok      ok',
        'gamma/hammer': 'x    x      x        ok     ok      ok',
        'out 10.93.0.2': '.   x      x        ok     .       .',
        'out 10.93.4.5': '.   ok     x        ok     .       .',
        'out 10.93.4.4': '.   x      x        ok     .       .',
      },
    },
  ],
}
