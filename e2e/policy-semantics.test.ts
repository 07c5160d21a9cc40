// NetworkPolicy semantics with real traffic: named ports (resolved on the
// selected pod for ingress, on the peer for egress), endPort ranges, UDP vs
// TCP, matchExpressions on pod and namespace selectors; then label changes,
// policy update, many peers on one port (union sets) and deletion on the same world.
import t from 'tap'
import { expectFlows, session, to, type Session } from './lib/behaviour.ts'
import { sh } from './lib/host.ts'
import type { Pod } from './lib/cluster.ts'
import type { PodSpec } from './scenarios/types.ts'

const NS = 'sem'
const sel = (labels: Record<string, string>) => ({ matchLabels: labels })
const tcp = (port: number | string, endPort?: number) => ({ protocol: 'TCP', port, ...(endPort ? { endPort } : {}) })
const udp = (port: number) => ({ protocol: 'UDP', port })
const policy = (name: string, spec: Record<string, unknown>, namespace = NS) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec })

type World = Record<string, Pod>

async function build(s: Session): Promise<World> {
  const c = s.cluster
  c.setNamespace({ name: NS, labels: { team: 'sem' } })
  c.setNamespace({ name: 'sem-peer', labels: { team: 'peer', stage: 'dev' } })
  c.setNamespace({ name: 'sem-prod', labels: { team: 'prod', stage: 'prod' } })
  c.setNamespace({ name: 'sem-far' })
  const specs: (Omit<PodSpec, 'namespace'> & { namespace?: string })[] = [
    { name: 'web1', labels: { app: 'web', tier: 'front' }, ports: [{ name: 'web', containerPort: 8081 }, ...[8080, 8085, 8090, 8091].map((p) => ({ containerPort: p }))] },
    { name: 'web2', labels: { app: 'web', tier: 'back' }, ports: [{ name: 'web', containerPort: 9091 }, { containerPort: 8081 }] },
    { name: 'dns', labels: { app: 'dns' }, ports: [53, 5353].flatMap((p) => [{ containerPort: p, protocol: 'TCP' as const }, { containerPort: p, protocol: 'UDP' as const }]) },
    { name: 'me', labels: { app: 'me' }, ports: [{ containerPort: 80 }] },
    { name: 'client', labels: { app: 'client', env: 'prod' } },
    { name: 'other', labels: { app: 'other' } },
    { name: 'eclient', labels: { app: 'client', egress: 'named' } },
    { name: 'probe', labels: { app: 'probe' } },
    { name: 'probe-dev', labels: { app: 'probe', env: 'dev' } },
    { namespace: 'sem-peer', name: 'pc', labels: { app: 'client' } },
    { namespace: 'sem-peer', name: 'far', labels: { app: 'far' } },
    { namespace: 'sem-prod', name: 'pc', labels: { app: 'client' } },
    { namespace: 'sem-far', name: 'fc', labels: { app: 'client' } },
    { namespace: 'sem-far', name: 'far', labels: { app: 'far' } },
  ]
  const w: World = {}
  for (const p of specs) {
    const ns = p.namespace ?? NS
    w[ns === NS ? p.name : `${ns}/${p.name}`] = await c.addPod({ ...p, namespace: ns })
  }
  return w
}

function policies(s: Session): void {
  const c = s.cluster
  c.applyPolicy(policy('web-named', { podSelector: sel({ app: 'web' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [tcp('web')] }] }))
  c.applyPolicy(policy('web-range', { podSelector: sel({ tier: 'front' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [tcp(8080, 8090)] }] }))
  c.applyPolicy(policy('dns-proto', { podSelector: sel({ app: 'dns' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [udp(53), tcp(5353)] }] }))
  c.applyPolicy(policy('eclient-egress', { podSelector: sel({ egress: 'named' }), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel({ app: 'web' }) }], ports: [tcp('web')] }] }))
  const expr = (key: string, operator: string, values?: string[]) => ({ key, operator, ...(values ? { values } : {}) })
  c.applyPolicy(
    policy('me-expr', {
      podSelector: sel({ app: 'me' }),
      ingress: [
        {
          from: [
            { podSelector: { matchExpressions: [expr('env', 'In', ['prod', 'stage'])] } },
            { podSelector: { matchExpressions: [expr('app', 'In', ['probe']), expr('env', 'DoesNotExist')] } },
            { namespaceSelector: { matchExpressions: [expr('stage', 'NotIn', ['prod']), expr('team', 'Exists')] }, podSelector: { matchExpressions: [expr('app', 'In', ['client'])] } },
            { namespaceSelector: { matchExpressions: [expr('team', 'DoesNotExist')] }, podSelector: sel({ app: 'far' }) },
          ],
        },
      ],
    }),
  )
}

// waits for the kernel lock and for other runs' agents: longer than tap's default
t.setTimeout(20 * 60_000)

t.test('policy semantics with real traffic', async (t) => {
  await session(t, async (s) => {
    const w = await build(s)
    const c = s.cluster
    await t.test('baseline: no policy, every server answers', async (t) => {
      await expectFlows(t, w.other!, [to(w.web1!, 8091, 'ok'), to(w.web2!, 8081, 'ok'), to(w.dns!, 53, 'ok'), to(w.dns!, 53, 'ok', true), to(w.me!, 80, 'ok')])
    })
    policies(s)
    await c.sync()

    await t.test('ingress named port resolves on each selected pod', async (t) => {
      await expectFlows(t, w.client!, [to(w.web1!, 8081, 'ok'), to(w.web2!, 9091, 'ok'), to(w.web2!, 8081, 'x')])
      await expectFlows(t, w.other!, [to(w.web1!, 8081, 'x'), to(w.web2!, 9091, 'x')])
    })
    await t.test('endPort range 8080-8090 is inclusive and ends there', async (t) => {
      await expectFlows(t, w.client!, [8080, 8085, 8090].map((p) => to(w.web1!, p, 'ok')).concat(to(w.web1!, 8091, 'x')))
    })
    await t.test('UDP and TCP on the same port number are separate', async (t) => {
      await expectFlows(t, w.client!, [to(w.dns!, 53, 'ok', true), to(w.dns!, 53, 'x'), to(w.dns!, 5353, 'ok'), to(w.dns!, 5353, 'x', true)])
      await expectFlows(t, w.other!, [to(w.dns!, 53, 'x', true), to(w.dns!, 5353, 'x')])
    })
    await t.test('egress named port resolves on the peer pod', async (t) => {
      await expectFlows(t, w.eclient!, [to(w.web1!, 8081, 'ok'), to(w.web2!, 9091, 'ok'), to(w.web1!, 8080, 'x'), to(w.web2!, 8081, 'x'), to(w.dns!, 53, 'x', true)])
    })
    await t.test('matchExpressions: In, NotIn, Exists, DoesNotExist on pods and namespaces', async (t) => {
      const me = (from: string, expect: 'ok' | 'x') => expectFlows(t, w[from]!, [to(w.me!, 80, expect)])
      await Promise.all([
        me('client', 'ok'), // env In (prod, stage)
        me('other', 'x'), // no env: In fails
        me('probe', 'ok'), // app In (probe), env DoesNotExist
        me('probe-dev', 'x'), // env dev: In and DoesNotExist both fail
        me('sem-peer/pc', 'ok'), // namespace stage NotIn (prod), team Exists
        me('sem-prod/pc', 'x'), // namespace stage prod: NotIn fails
        me('sem-far/fc', 'x'), // namespace without team: Exists fails
        me('sem-far/far', 'ok'), // namespace team DoesNotExist
        me('sem-peer/far', 'x'), // namespace has team
      ])
    })
    await t.test('label changes after the policy exists', async (t) => {
      c.labelPod(`${NS}/other`, { env: 'stage' })
      await c.sync()
      await expectFlows(t, w.other!, [to(w.me!, 80, 'ok')])
      c.labelPod(`${NS}/other`, { env: null })
      await c.sync()
      await expectFlows(t, w.other!, [to(w.me!, 80, 'x')])
      c.labelNamespace('sem-prod', { stage: 'qa' })
      await c.sync()
      await expectFlows(t, w['sem-prod/pc']!, [to(w.me!, 80, 'ok')])
      c.labelNamespace('sem-prod', { stage: 'prod' })
      await c.sync()
      await expectFlows(t, w['sem-prod/pc']!, [to(w.me!, 80, 'x')])
    })
    await t.test('policy update changes the allowed ports', async (t) => {
      c.applyPolicy(policy('web-range', { podSelector: sel({ tier: 'front' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }], ports: [tcp(8091)] }] }))
      await c.sync()
      await expectFlows(t, w.client!, [to(w.web1!, 8091, 'ok'), to(w.web1!, 8080, 'x'), to(w.web1!, 8085, 'x'), to(w.web1!, 8081, 'ok')])
    })
    await t.test('many peers on one port: one union set per direction, exact', async (t) => {
      // nine peers on TCP 8085, more than --union-above (8): one rule and one union set each way
      const blocks = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => ({ ipBlock: { cidr: `10.200.${n}.0/24` } }))
      c.applyPolicy(policy('many-in', { podSelector: sel({ tier: 'front' }), ingress: [{ from: [{ podSelector: sel({ app: 'client' }) }, ...blocks], ports: [tcp(8085)] }] }))
      c.applyPolicy(policy('many-out', { podSelector: sel({ egress: 'named' }), policyTypes: ['Egress'], egress: [{ to: [{ podSelector: sel({ tier: 'front' }) }, ...blocks], ports: [tcp(8085)] }] }))
      await c.sync()
      t.match(sh('ipset', ['list', '-n']), /^wren4u-/m, 'union sets in the kernel')
      await expectFlows(t, w.eclient!, [to(w.web1!, 8085, 'ok'), to(w.web1!, 8080, 'x'), to(w.web1!, 8081, 'ok')])
      await expectFlows(t, w.client!, [to(w.web1!, 8085, 'ok')])
      await expectFlows(t, w.other!, [to(w.web1!, 8085, 'x')])
    })
    await t.test('deleting the policies restores access', async (t) => {
      for (const n of ['web-named', 'web-range', 'dns-proto', 'eclient-egress', 'me-expr', 'many-in', 'many-out']) c.deletePolicy(`${NS}/${n}`)
      await c.sync()
      await expectFlows(t, w.other!, [to(w.web1!, 8080, 'ok'), to(w.web2!, 8081, 'ok'), to(w.dns!, 53, 'ok'), to(w.dns!, 5353, 'ok', true), to(w.me!, 80, 'ok')])
      await expectFlows(t, w.eclient!, [to(w.web1!, 8080, 'ok'), to(w.dns!, 53, 'ok', true)])
    })
  })
})
