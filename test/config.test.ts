// The agent's flags: defaults, and every problem reported at once.
import t from 'tap'
import { agentConfig, parseDuration } from '../enforcer/config.ts'
import { AgentMetrics } from '../enforcer/metrics.ts'
import { DeferredMetrics } from '../enforcer/metrics-deferred.ts'

t.test('defaults with one source', async (t) => {
  const { config, problems } = agentConfig({ manifests: '/m' })
  t.same(problems, [])
  t.match(config, { manifestsDir: '/m', stateDir: '/var/lib/wren', runDir: '/var/run/wren', iptablesBackend: 'auto', enforcer: { ifacePrefix: 'wren', acceptMark: 0x10000, allowWorkloadToHost: true, unionAbove: 8 } })
})

t.test('every problem at once', async (t) => {
  const { problems } = agentConfig({ manifests: '/m', kubeconfig: '/k', ifacePrefix: 'Bad-Prefix', acceptMark: '0x3', logLevel: 'loud', setMaxElem: '5', unionAbove: '-1', workloadToHost: 'maybe', iptablesBackend: 'xt', metricsPort: '70000' })
  t.equal(problems.length, 9, problems.join('\n'))
  t.match(problems.join('\n'), /exactly one source[\s\S]*iface-prefix[\s\S]*log-level[\s\S]*set-max-elem[\s\S]*union-above[\s\S]*workload-to-host[\s\S]*iptables-backend[\s\S]*metrics-port[\s\S]*accept-mark/)
})

t.test('accept mark must be one bit and not kube-proxy’s', async (t) => {
  t.match(agentConfig({ manifests: '/m', acceptMark: '0x4000' }).problems, [/kube-proxy/])
  t.same(agentConfig({ manifests: '/m', acceptMark: '0x200000' }).config.enforcer.acceptMark, 0x200000)
})

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('10s'), 10_000)
  t.equal(parseDuration('2m'), 120_000)
  t.equal(parseDuration('3'), 3000)
  t.throws(() => parseDuration('soon'), /bad duration/)
})

t.test('metrics count applies and failures', async (t) => {
  const m = new AgentMetrics(false)
  m.applied(7, 0.012, 3, 1)
  m.failed()
  m.storeCounts({ Pod: 4, 'Pod/manifests': 4, workloads: 3 })
  const text = await m.text()
  t.match(text, /wren_applies_total\{result="ok"\} 1/)
  t.match(text, /wren_applies_total\{result="error"\} 1/)
  t.match(text, /wren_workloads_programmed 3/)
  t.match(text, /wren_store_objects\{kind="Pod"\} 4/)
  t.notMatch(text, /Pod\/manifests/)
})

t.test('metrics reported before the library loads are replayed in order', async (t) => {
  const m = new DeferredMetrics()
  m.applied(1, 0.5, 2, 0)
  m.failed()
  m.applied(2, 0.01, 3, 1)
  const text = await m.text() // loads on demand
  t.match(text, /wren_applies_total\{result="ok"\} 2/)
  t.match(text, /wren_applies_total\{result="error"\} 1/)
  t.match(text, /wren_applied_generation 2/, 'the last call wins, as it happened')
  t.match(text, /wren_apply_duration_seconds_count 2/)
  m.storeCounts({ Pod: 9 })
  t.match(await m.text(), /wren_store_objects\{kind="Pod"\} 9/, 'after loading, calls go straight through')
})

t.test('routing between nodes: overlay, masquerade, cluster CIDRs', async (t) => {
  const d = agentConfig({ manifests: '/m' })
  t.match(d.config, { overlay: 'auto', enforcer: { masquerade: true, clusterCidrs: [] } }, 'defaults: auto, masquerade on, no extra ranges')
  t.equal(agentConfig({ manifests: '/m', masquerade: false }).config.enforcer.masquerade, false, '--no-masquerade')
  t.equal(agentConfig({ manifests: '/m', masquerade: 'false' }).config.enforcer.masquerade, false, '--masquerade false (a ConfigMap value)')
  t.equal(agentConfig({ manifests: '/m', masquerade: 'true' }).config.enforcer.masquerade, true, '--masquerade true')
  t.same(agentConfig({ manifests: '/m', clusterCidr: ['10.244.0.0/16, fd00:10:244::/56', '10.96.0.0/12'] }).config.enforcer.clusterCidrs, ['10.244.0.0/16', 'fd00:10:244::/56', '10.96.0.0/12'], 'comma-separated and repeated')
  const bad = agentConfig({ manifests: '/m', overlay: 'ipip', masquerade: 'yes', clusterCidr: ['10.244.0.0/33'] }).problems
  t.equal(bad.length, 3, bad.join('\n'))
  for (const flag of [/--overlay ipip/, /--cluster-cidr 10\.244\.0\.0\/33/, /--masquerade yes/]) t.match(bad.join('\n'), flag)
})
