// The README, as a user types it. The project's standard: "Every command the
// README shows is run by a test exactly as a user types it (the built
// executable, from a fresh clone's layout), not only the function behind it."
//
// Every command of README.md's ```sh blocks is looked up in TABLE (exact text →
// how it is run here); a command without a row fails this test, so a new
// README command cannot go untested. Each is run as `sh -c TEXT` from the
// repository root, in an environment its flow prepares (a flow is the order a
// user runs them in: install-cni → uninstall-cni; run → status → show →
// cleanup), and its result is checked against what the README says it does.
// Everything a flow makes is undone by its cleanup stack, also on failure.
// Not run: ./scripts/test (it runs this file; CI runs it) and the commands that
// need a Kubernetes cluster and its tools (kubectl, kind, ctr), whose files and
// names are checked against what ./scripts/build-image wrote instead.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Cleanup, REPO } from './lib/host.ts'
import { apiFlow, cleanupAfterAgent, manifestsFlow, showWiredPod, startAgent, statusFromApi, statusSynced } from './lib/readme-agent.ts'
import { cniFlow, installFromNode, installFromRange, uninstall } from './lib/readme-cni.ts'
import { readmeCommands, userEnv, type Flow, type FlowCtx, type StepFn } from './lib/readme-commands.ts'
import { benchCluster, benchCni, benchEnforcer, buildImage, clusterOnly, coveredByCi, demo, imageFlow, scriptsFlow } from './lib/readme-scripts.ts'

interface Row {
  cmd: string
  flow: Flow<any>
  run: StepFn<any>
  how: string
}
const row = <C extends FlowCtx>(cmd: string, flow: Flow<C>, run: StepFn<C>, how: string): Row => ({ cmd, flow, run, how })

const ciFlow: Flow<FlowCtx> = { name: 'the test suite', prepare: async (_t, cleanup) => ({ cleanup, env: userEnv() }) }
const CLUSTER = 'not run (needs a cluster and its tools); checked: what it names exists after ./scripts/build-image and matches dist/image/wren.yaml'

/** Every README command, exactly as shown → how this test runs it; flows in the order a user goes. */
const TABLE: Row[] = [
  row('./bin/wren-enforcer install-cni --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d --pod-cidr 10.244.1.0/24', cniFlow, installFromRange,
    'run into the real /opt/cni/bin and /etc/cni/net.d (left as found; a foreign plugin file in each): wren + wren.d/ only, the conflist with 10.244.1.0/24, MTU uplink − 50'),
  row('./bin/wren-enforcer install-cni --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d --kubeconfig ~/.kube/config', cniFlow, installFromNode,
    "HOME's .kube/config reaches the in-repo API server; it waits while Node <hostname> has no spec.podCIDRs, then installs both families once given"),
  row('./bin/wren-enforcer uninstall-cni --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d', cniFlow, uninstall,
    'removes the five files install-cni wrote; the foreign files and everything there before stay'),
  row('./bin/wren-enforcer run --manifests ./my-cluster/', manifestsFlow, startAgent,
    'in the background, under the kernel lock; ./my-cluster/ made for it (namespace demo, pod demo/web, a policy); default /var/lib/wren, /var/run/wren (left as found)'),
  row('./bin/wren-enforcer status --wait-synced --timeout 10s', manifestsFlow, statusSynced, 'retried while the agent comes up: synced, 1 namespace / 1 pod / 1 policy, no problems'),
  row('./bin/wren-enforcer show demo/web', manifestsFlow, showWiredPod,
    'after a CNI ADD by bin/wren into netns ws-readme (the plugin’s default dirs): names the pod, its address, the allowing policy rule, counters'),
  row('./bin/wren-enforcer cleanup', manifestsFlow, cleanupAfterAgent, 'after CNI DEL and SIGTERM to the agent: no chain, rule, set, route or VXLAN device of wren left'),
  row('./bin/wren-enforcer run --kubeconfig ~/.kube/config', apiFlow, startAgent,
    "in the background, under the kernel lock; HOME's .kube/config reaches the in-repo API server (Node <hostname> with v4+v6 podCIDRs and InternalIP, demo objects)"),
  row('./bin/wren-enforcer status --wait-synced --timeout 10s', apiFlow, statusFromApi, 'synced, the demo objects known, its own ranges blackholed; every kind watched on that API server'),
  row('./bin/wren-enforcer cleanup', apiFlow, cleanupAfterAgent, 'after SIGTERM to the agent: its routes (proto 87), chains and sets gone'),
  row('./scripts/demo', scriptsFlow, demo, 'every seed scenario: a matrix per step, all as expected, a PASS per seed at the end; nothing left on the host'),
  row('./scripts/bench-cni', scriptsFlow, benchCni, 'BENCH_N=20 in its environment (default 100): every series measured, the three targets judged'),
  row('./scripts/bench-enforcer', scriptsFlow, benchEnforcer, "WREN_BENCH_* at --quick's sizes in its environment (500 pods / 100 policies): every figure printed"),
  row('./scripts/bench-cluster', scriptsFlow, benchCluster, 'run with --quick appended (no size setting in its environment; a full run is far longer)'),
  row('./scripts/build-image', imageFlow, buildImage, 'dist/image/wren-<version>.oci.tar holding localhost/wren:<version>, and wren.yaml running that image'),
  row('kind load image-archive dist/image/wren-0.1.0.oci.tar', imageFlow, clusterOnly, CLUSTER),
  row('ctr -n k8s.io images import wren-0.1.0.oci.tar', imageFlow, clusterOnly, CLUSTER),
  row('kubectl apply -f dist/image/wren.yaml', imageFlow, clusterOnly, CLUSTER),
  row('kubectl -n kube-system rollout status daemonset/wren', imageFlow, clusterOnly, CLUSTER),
  row('kubectl -n kube-system get pods -l k8s-app=wren -o wide', imageFlow, clusterOnly, CLUSTER),
  row('kubectl -n kube-system exec POD -c agent -- wren-enforcer status', imageFlow, clusterOnly, CLUSTER),
  row('kubectl -n kube-system exec POD -c agent -- wren-enforcer show NAMESPACE/NAME', imageFlow, clusterOnly, CLUSTER),
  row('kubectl -n kube-system exec POD -c agent -- wren-enforcer cleanup', imageFlow, clusterOnly, CLUSTER),
  row('kubectl delete -f dist/image/wren.yaml', imageFlow, clusterOnly, CLUSTER),
  row('./scripts/test', ciFlow, coveredByCi, 'not run here (it runs this file): CI runs it, .ci/run execs it'),
]
/** Rows for commands on their way into the README (work in progress elsewhere): run once it shows them. */
const PENDING = new Set(['./scripts/bench-cluster'])
const CLUSTER_TOOLS = /^(kubectl|kind|ctr) /

const readme = readmeCommands(readFileSync(join(REPO, 'README.md'), 'utf8'))
const rows = TABLE.filter((r) => readme.includes(r.cmd))
/** command → one line per time it was exercised */
const exercised = new Map<string, string[]>()

// the demo alone takes minutes, and the kernel lock may first wait for other tests
t.setTimeout(120 * 60_000)

t.test("the README's commands and this table agree", async (t) => {
  const known = new Set(TABLE.map((r) => r.cmd))
  t.same(readme.filter((c) => !known.has(c)), [], 'README commands this test does not know how to run (add a row to TABLE in e2e/readme.test.ts)')
  t.same(TABLE.filter((r) => !readme.includes(r.cmd) && !PENDING.has(r.cmd)).map((r) => r.cmd), [], 'rows for commands the README no longer shows')
  t.same(rows.filter((r) => r.run === clusterOnly).map((r) => r.cmd), readme.filter((c) => CLUSTER_TOOLS.test(c)), 'the cluster-only commands are exactly those of kubectl, kind and ctr')
  const notRun = rows.filter((r) => r.run === clusterOnly || r.run === coveredByCi).map((r) => r.cmd)
  t.same(notRun.sort(), readme.filter((c) => CLUSTER_TOOLS.test(c) || c === './scripts/test').sort(), 'the only commands not run: the cluster-only ones and ./scripts/test')
})

/** Cleanups of the flow in progress, for a SIGINT/SIGTERM (tap's timeout) to undo. */
const live = new Set<Cleanup>()
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, async () => {
    for (const c of live) await c.run()
    process.exit(130)
  })
}

const root = process.getuid?.() === 0
for (const flow of [...new Set(rows.map((r) => r.flow))]) {
  t.test(flow.name, { skip: root ? false : 'needs root' }, async (t) => {
    const cleanup = new Cleanup()
    const hold = new Cleanup()
    live.add(cleanup).add(hold)
    let ctx: FlowCtx | undefined
    try {
      ctx = await flow.prepare(t, cleanup, hold)
      let broken = ''
      for (const r of rows.filter((r) => r.flow === flow)) {
        const skipped = broken
        const res = await t.test(r.cmd, { skip: skipped ? `after ${skipped}` : false }, async (t) => {
          try {
            await r.run(t, r.cmd, ctx!)
          } catch (e) {
            broken = `${r.cmd} failed`
            t.fail((e as Error).stack ?? String(e))
          }
        })
        const verdict = skipped ? 'skipped' : res?.ok ? 'ok' : 'FAILED'
        exercised.set(r.cmd, [...(exercised.get(r.cmd) ?? []), `${verdict}: ${r.how} [${flow.name}]`])
      }
    } catch (e) {
      t.fail(`preparing "${flow.name}": ${(e as Error).stack}`)
    } finally {
      t.same(await cleanup.run(), [], 'everything the flow made undone')
      if (ctx && flow.after) await flow.after(t, ctx)
      t.same(await hold.run(), [], 'locks released')
      live.delete(cleanup)
      live.delete(hold)
    }
  })
}

t.test('how each README command was exercised', async (t) => {
  const lines = readme.flatMap((c) => [`$ ${c}`, ...(exercised.get(c) ?? [TABLE.some((r) => r.cmd === c) ? '(not reached)' : 'NOT KNOWN to this test']).map((l) => `    ${l}`)])
  t.comment(lines.join('\n'))
  const notOk = readme.filter((c) => !exercised.get(c)?.length || exercised.get(c)!.some((l) => !l.startsWith('ok')))
  t.same(notOk, [], 'every README command exercised, every time with success')
})
