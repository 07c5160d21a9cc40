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
    // a second policy on the same port, naming eight more peers: more than --union-above (8) on
    // one port, so one rule for both policies, all nine peers united in one set
    const labs = [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.0/25'] } }, ...[1, 2, 3, 4, 5, 6, 7].map((n) => ({ ipBlock: { cidr: `198.51.${n}.0/24` } }))]
    c.applyPolicy(policy('allow-lab', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: labs, ports: [{ port: 80 }] }] }))
    await c.sync()

    const show = () => sh(c.enforcerBin, ['show', `${NS}/web`, '--state-dir', c.stateDir, '--run-dir', c.runDir])
    const before = show()
    t.match(before, new RegExp(`workload ${NS}/web .*ips ${web.ip.replace(/\./g, '\\.')}`), 'names the pod and its address')
    const allowing = /ingress tcp:80 allowed by ops\/allow-client rule 0, ops\/allow-lab rule 0/
    t.match(before, allowing, 'names both policy rules behind the port group in the ingress path')
    t.match(before, new RegExp(`set wren4u-\\S+: 9 members[^\n]*\n(  \\S+\n)*  ${client.ip.replace(/\./g, '\\.')}\n`), 'lists the group\'s set with the client in it')
    t.match(before, /\n {2}192\.0\.2\.128\/25\n/, 'and the block with its except carved out')
    // the kernel keeps no such text: the agent names what the union holds
    const header = before.split('\n').find((l) => l.startsWith('set wren4u-')) ?? ''
    for (const peer of ['pods app=client in ops', 'ipBlock 192.0.2.0/24 except 192.0.2.0/25', 'ipBlock 198.51.1.0/24']) t.ok(header.includes(peer), `the union's header names ${peer}`)
    t.match(header, /: 9 members — any of: /)
    const allowed0 = counter(before, allowing)
    const denied0 = counter(before, /no policy allowed ingress/)

    await expectFlows(t, client, [to(web, 80, 'ok')])
    await expectFlows(t, other, [to(web, 80, 'x')])
    const after = show()
    t.ok(counter(after, allowing) > allowed0, 'the allowing rule counted the client’s SYN')
    t.ok(counter(after, /no policy allowed ingress/) > denied0, 'the final DROP counted the other pod’s SYNs')

    const metrics = await controlGet(c.runDir, '/metrics')
    t.equal(metrics.code, 200)
    t.match(String(metrics.body), /wren_applies_total\{result="ok"\} [1-9]/, 'applies are counted')
    t.match(String(metrics.body), /wren_workloads_programmed 3/, 'three workloads programmed')
  })
})
