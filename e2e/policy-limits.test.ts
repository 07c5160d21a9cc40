// A set that would hold more addresses than --set-max-elem: the kernel would
// refuse it and, with it, the whole apply. The agent leaves that set empty (the
// rules using it allow nothing), reports it, and programs everything else; once
// the set fits again, it is filled without a restart. Real traffic throughout.
import t from 'tap'
import { blackhole, trySh } from './lib/host.ts'
import { expectFlows, session, status, to, wrenSets } from './lib/behaviour.ts'

const MAX = 1024 // the smallest --set-max-elem the agent accepts
const sel = (labels: Record<string, string>) => ({ matchLabels: labels })
const policy = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'lim' }, spec })
/** Addresses of pods on other nodes, in a range blackholed for the test. */
const remoteIps = (n: number) => Array.from({ length: n }, (_, i) => `10.97.${Math.floor(i / 250)}.${(i % 250) + 1}`)

t.setTimeout(20 * 60_000)

t.test('a set over --set-max-elem is left empty and reported; the rest keeps working', async (t) => {
  await session(
    t,
    async ({ cluster: c, cleanup }) => {
      blackhole(cleanup, '10.97.0.0/16')
      c.setNamespace({ name: 'lim' })
      const port80 = [{ containerPort: 80 }]
      const srv = await c.addPod({ namespace: 'lim', name: 'srv', labels: { app: 'srv' }, ports: port80 })
      const many = await c.addPod({ namespace: 'lim', name: 'many', labels: { app: 'many' } })
      const few = await c.addPod({ namespace: 'lim', name: 'few', labels: { app: 'few' } })
      c.setRemotePods('crowd', 'lim', { app: 'many' }, remoteIps(MAX)) // with the local one: MAX + 1
      c.applyPolicy(policy('from-many', { podSelector: sel({ app: 'srv' }), ingress: [{ from: [{ podSelector: sel({ app: 'many' }) }] }] }))
      c.applyPolicy(policy('from-few', { podSelector: sel({ app: 'srv' }), ingress: [{ from: [{ podSelector: sel({ app: 'few' }) }] }] }))
      await c.sync()

      const st = status(c)
      t.equal(st.lastError, undefined, 'the apply succeeded')
      const helper = trySh('pgrep', ['-P', String(c.agentPid), '-x', 'wren-spawn']).stdout.trim()
      t.ok(helper, "the agent's commands ran through its spawn helper (a wren-spawn child of the agent)")
      const problems: { object: string; message: string; effect: string }[] = st.lastApply?.problems ?? []
      const over = problems.find((p) => /app=many/.test(p.object))
      t.match(over, { message: `${MAX + 1} entries, more than --set-max-elem ${MAX}`, effect: /allow nothing/ }, `status names the set: ${JSON.stringify(problems)}`)
      const name = over?.object.split(' ')[1] ?? ''
      t.equal(wrenSets().get(name)?.length ?? -1, 0, `${name} is in the kernel, empty`)
      await expectFlows(t, few, [to(srv, 80, 'ok')])
      await expectFlows(t, many, [to(srv, 80, 'x')])

      c.setRemotePods('crowd', 'lim', { app: 'many' }, remoteIps(MAX - 1)) // MAX in all: fits
      await c.sync()
      t.same(status(c).lastApply?.problems ?? [], [], 'nothing to report once the set fits')
      t.equal(wrenSets().get(name)?.length, MAX, 'the same set, filled')
      c.forgetFlows()
      await expectFlows(t, many, [to(srv, 80, 'ok')])
      await expectFlows(t, few, [to(srv, 80, 'ok')])
    },
    undefined,
    { agentArgs: ['--set-max-elem', String(MAX)] },
  )
})
