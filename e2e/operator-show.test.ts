// The operator's view, on a real agent: `wren-enforcer show ns/pod` names the
// policy that allowed a flow and counts the packets each rule judged, and
// `/metrics` counts the applies. Proven against real connections.
import t from 'tap'
import { sh } from './lib/host.ts'
import { expectFlows, session, to } from './lib/behaviour.ts'
import { controlGet } from '../enforcer/control.ts'

const NS = 'ops'
const policy = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: NS }, spec })

/** Packet counter of the first rule of `show` output whose text matches `re`. */
function counter(text: string, re: RegExp): number {
  const line = text.split('\n').find((l) => re.test(l))
  const m = line && /\[(\d+):\d+\]/.exec(line)
  if (!m) throw new Error(`no counted rule matching ${re} in:\n${text}`)
  return Number(m[1])
}

t.test('show: the allowing policy and the denying rule count real packets', async (t) => {
  t.setTimeout(20 * 60_000)
  await session(t, async ({ cluster: c }) => {
    c.setNamespace({ name: NS })
    const web = await c.addPod({ namespace: NS, name: 'web', labels: { app: 'web' }, ports: [{ containerPort: 80 }] })
    const client = await c.addPod({ namespace: NS, name: 'client', labels: { app: 'client' } })
    const other = await c.addPod({ namespace: NS, name: 'other', labels: { app: 'other' } })
    c.applyPolicy(policy('allow-client', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] }))
    await c.sync()

    const show = () => sh(c.enforcerBin, ['show', `${NS}/web`, '--state-dir', c.stateDir])
    const before = show()
    t.match(before, new RegExp(`workload ${NS}/web .*ips ${web.ip.replace(/\./g, '\\.')}`), 'names the pod and its address')
    t.match(before, /policy ops\/allow-client ingress rule 0/, 'names the policy rule in the ingress path')
    t.match(before, /set wren4i-\S+: 1 members\n {2}\S*10\.92\./, 'lists the peer set with the client in it')
    const allowed0 = counter(before, /allow-client ingress rule 0/)
    const denied0 = counter(before, /no policy allowed ingress/)

    await expectFlows(t, client, [to(web, 80, 'ok')])
    await expectFlows(t, other, [to(web, 80, 'x')])
    const after = show()
    t.ok(counter(after, /allow-client ingress rule 0/) > allowed0, 'the allowing rule counted the client’s SYN')
    t.ok(counter(after, /no policy allowed ingress/) > denied0, 'the final DROP counted the other pod’s SYNs')

    const metrics = await controlGet(c.runDir, '/metrics')
    t.equal(metrics.code, 200)
    t.match(String(metrics.body), /wren_applies_total\{result="ok"\} [1-9]/, 'applies are counted')
    t.match(String(metrics.body), /wren_workloads_programmed 3/, 'three workloads programmed')
  })
})
