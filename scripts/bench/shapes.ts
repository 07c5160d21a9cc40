// NetworkPolicy shapes of the synthetic cluster: the kinds users write (seeds
// 001-003), each as a function of the policy's index, namespace and round.
import type { Obj } from './synth.ts'

export const SHAPES = ['default-deny', 'pod-peers', 'ns-peers', 'ns-and-pod', 'expressions', 'ipblock', 'named-ports', 'end-port', 'egress-dns', 'multi-rule'] as const
export type Shape = (typeof SHAPES)[number]

export interface ShapeArgs {
  k: number
  ns: string
  /** How many times this shape already appeared in this namespace. */
  round: number
  rand: () => number
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]
const tcp = (port: number | string, endPort?: number) => (endPort ? { protocol: 'TCP', port, endPort } : { protocol: 'TCP', port })

/** Which pods of the namespace a policy applies to: all of them, an app, or a tier. */
function subject(a: ShapeArgs): Obj {
  const r = a.rand()
  if (r < 0.2) return {}
  if (r < 0.6) return { matchLabels: { app: `app-${Math.floor(a.rand() * 20)}` } }
  return { matchLabels: { tier: pick(a.rand, ['web', 'api', 'db', 'cache']) } }
}

const teamSel = (a: ShapeArgs) => ({ matchLabels: { team: `t${Math.floor(a.rand() * 10)}` } })

type Spec = Obj
const BUILDERS: Record<Shape, (a: ShapeArgs) => Spec> = {
  'default-deny': (a) => ({ podSelector: {}, policyTypes: a.round % 2 ? ['Ingress', 'Egress'] : ['Ingress'] }),
  // round 0 selects every pod of the namespace: the benchmark's label and port edits act on it
  'pod-peers': (a) => ({
    podSelector: a.round === 0 ? {} : subject(a),
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { tier: 'web' } } }], ports: [tcp(8080)] }],
  }),
  'ns-peers': (a) => ({ podSelector: subject(a), policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: teamSel(a) }], ports: [tcp(9090)] }] }),
  'ns-and-pod': (a) => ({
    podSelector: subject(a),
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: pick(a.rand, ['prod', 'staging']) } }, podSelector: { matchLabels: { tier: 'api' } } }], ports: [tcp(8080), tcp(50051)] }],
  }),
  expressions: (a) => ({
    podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['api', 'db'] }] },
    policyTypes: ['Ingress'],
    ingress: [
      {
        from: [
          {
            namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }] },
            podSelector: { matchExpressions: [{ key: 'version', operator: 'NotIn', values: [`v${1 + (a.k % 3)}`] }, { key: 'app', operator: 'Exists' }, { key: 'canary', operator: 'DoesNotExist' }] },
          },
        ],
        ports: [tcp(8080)],
      },
    ],
  }),
  ipblock: (a) => ({
    podSelector: subject(a),
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ ipBlock: { cidr: '172.16.0.0/12', except: [`172.16.${a.k % 256}.0/24`, '172.20.0.0/16'] } }, { ipBlock: { cidr: `192.168.${a.k % 256}.0/24` } }], ports: [tcp(443)] }],
  }),
  'named-ports': (a) => ({ podSelector: subject(a), policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }], ports: [tcp('http'), tcp('metrics')] }] }),
  'end-port': (a) => {
    const lo = 30000 + (a.k % 100) * 10
    return { podSelector: subject(a), policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { team: `t${a.k % 10}` } } }], ports: [tcp(lo, lo + 50)] }] }
  },
  'egress-dns': (a) => ({
    podSelector: subject(a),
    policyTypes: ['Egress'],
    egress: [
      { to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ns-00' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, tcp(53)] },
      { to: [{ podSelector: { matchLabels: { tier: 'db' } } }], ports: [tcp('postgres')] },
    ],
  }),
  'multi-rule': (a) => ({
    podSelector: subject(a),
    policyTypes: ['Ingress', 'Egress'],
    ingress: [
      { from: [{ podSelector: { matchLabels: { tier: 'web' } } }], ports: [tcp('http')] },
      { from: [{ namespaceSelector: teamSel(a) }], ports: [tcp(9090)] },
      { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.99.0.0/16'] } }], ports: [tcp(22)] },
    ],
    egress: [
      { to: [{ podSelector: { matchLabels: { tier: 'db' } } }], ports: [tcp(5432)] },
      { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [tcp(443)] },
    ],
  }),
}

export function policyShape(shape: Shape, a: ShapeArgs): Obj {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `np-${String(a.k).padStart(4, '0')}-${shape}`, namespace: a.ns },
    spec: BUILDERS[shape](a),
  }
}
