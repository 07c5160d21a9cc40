// Seed 003 (Pod Networking Lab): bb1/bb2 reachable by IP, by name only once
// headless Services exist; the three-tier app where mysqldb admits only
// tier=backend on TCP 3306; then default-deny egress, then deny egress except DNS.
//
// Mapping to the test host:
// - one replica each; mysqldb also listens on 33060 (MySQL X protocol, as the
//   real image does) to show that the policy opens 3306 only.
// - bb-client (the seed's throwaway pod calling flaskback) is bb2 here: a pod
//   without tier=backend.
// - the seed does not show 08-default-deny-egress-except-dns-network-policy.yaml;
//   it is written here as the usual form: every pod, egress to anywhere on
//   UDP and TCP port 53 only (named default-deny-except-dns-egress, as in the seed).
// - the mysqldb policy has "egress: - to: []": an egress rule with no peers
//   allows every destination, so mysqldb keeps all egress even under
//   default-deny-egress (policies are a union) — Kubernetes semantics; the
//   seed does not probe from mysqldb.
import type { Scenario } from './types.ts'

const np = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'default' }, spec })
const headless = (name: string, selector: Record<string, string>, port: number) => ({ namespace: 'default', name, selector, headless: true, ports: [{ port }] })

export const s003: Scenario = {
  seed: '003',
  title: 'Pod Networking Lab: headless names, mysqldb only from tier=backend on 3306, default-deny egress, except DNS',
  dns: true,
  namespaces: [{ name: 'default' }],
  pods: [
    { namespace: 'default', name: 'bb1', labels: { run: 'bb1' }, ports: [{ containerPort: 8888 }] },
    { namespace: 'default', name: 'bb2', labels: { run: 'bb2' } },
  ],
  rows: [
    { id: 'bb2', pod: 'default/bb2' },
    { id: 'flaskback', pod: 'default/flaskback' },
    { id: 'mysqldb', pod: 'default/mysqldb' },
  ],
  columns: [
    { id: 'nc bb1:8888', kind: 'name', name: 'bb1', port: 8888, svc: 'default/bb1' },
    { id: 'bb1-ip:8888', kind: 'pod', pod: 'default/bb1', port: 8888 },
    { id: 'nc mysqldb:3306', kind: 'name', name: 'mysqldb', port: 3306, svc: 'default/mysqldb' },
    { id: 'mysqldb-ip:3306', kind: 'pod', pod: 'default/mysqldb', port: 3306 },
    { id: 'mysqldb-ip:33060', kind: 'pod', pod: 'default/mysqldb', port: 33060 },
    { id: 'wget flaskback:5000', kind: 'name', name: 'flaskback', port: 5000, svc: 'default/flaskback' },
    { id: 'nc www.google.com:80', kind: 'name', name: 'www.google.com', port: 80, outside: true },
    { id: 'dns:www.google.com', kind: 'dns', name: 'www.google.com', protocol: 'UDP' },
  ],
  steps: [
    {
      title: 'bb1 and bb2 without Services: IP works, the name bb1 does not resolve',
      actions: [],
      expect: {
        //      bb1n  bb1  mysqln my3306 my33060 flaskn google dns
        bb2: '  nodns ok   nodns  .      .       nodns  ok     ok',
        flaskback: '. .    .      .      .       .      .      .',
        mysqldb: '.   .    .      .      .       .      .      .',
      },
    },
    {
      title: 'apply the headless Services bb1 and bb2',
      actions: [
        { addService: headless('bb1', { run: 'bb1' }, 8888) },
        { addService: headless('bb2', { run: 'bb2' }, 8888) },
      ],
      expect: {
        bb2: '  ok    ok   nodns  .      .       nodns  ok     ok',
        flaskback: '. .    .      .      .       .      .      .',
        mysqldb: '.   .    .      .      .       .      .      .',
      },
    },
    {
      title: 'deploy mysqldb (tier=database) and flaskback (tier=backend) with their headless Services',
      actions: [
        { addPod: { namespace: 'default', name: 'mysqldb', labels: { app: 'mysqldb', tier: 'database' }, ports: [{ containerPort: 3306 }, { name: 'mysqlx', containerPort: 33060 }] } },
        { addService: headless('mysqldb', { app: 'mysqldb' }, 3306) },
        { addPod: { namespace: 'default', name: 'flaskback', labels: { app: 'flaskback', tier: 'backend' }, ports: [{ containerPort: 5000 }] } },
        { addService: headless('flaskback', { app: 'flaskback' }, 5000) },
      ],
      expect: {
        bb2: '  ok    ok   ok     ok     ok      ok     ok     ok',
        flaskback: 'ok ok  ok     ok     ok      .      ok     ok',
        mysqldb: 'ok  ok   .      .      .       ok     ok     ok',
      },
    },
    {
      title: 'apply mysqldb policy (ingress from tier=backend on TCP 3306; egress to [])',
      actions: [
        {
          apply: np('mysqldb', {
            podSelector: { matchLabels: { app: 'mysqldb' } },
            ingress: [{ from: [{ podSelector: { matchLabels: { tier: 'backend' } } }], ports: [{ protocol: 'TCP', port: 3306 }] }],
            egress: [{ to: [] }],
          }),
        },
      ],
      expect: {
        bb2: '  ok    ok   x      x      x       ok     ok     ok',
        flaskback: 'ok ok  ok     ok     x       .      ok     ok',
        mysqldb: 'ok  ok   .      .      .       ok     ok     ok',
      },
    },
    {
      title: 'apply default-deny-egress',
      actions: [{ apply: np('default-deny-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [] }) }],
      expect: {
        bb2: '  nodns x    nodns  x      x       nodns  nodns  x',
        flaskback: 'nodns x nodns x      x       .      nodns  x',
        mysqldb: 'ok  ok   .      .      .       ok     ok     ok',
      },
    },
    {
      title: 'apply default-deny-except-dns-egress',
      actions: [
        {
          apply: np('default-deny-except-dns-egress', {
            podSelector: {},
            policyTypes: ['Egress'],
            egress: [{ ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }],
          }),
        },
      ],
      expect: {
        bb2: '  x     x    x      x      x       x      x      ok',
        flaskback: 'x x    x      x      x       .      x      ok',
        mysqldb: 'ok  ok   .      .      .       ok     ok     ok',
      },
    },
  ],
}
