// `wren-enforcer run --kubeconfig` against the in-repo API server (real
// list/watch): pods wired by the plugin, a policy created, a pod relabelled
// and the policy deleted through the API, each proven with traffic right after
// `status --wait-synced` (a barrier: watch events are held back meanwhile).
//
// The pods are wired with Cluster.addPod (netns, CNI ADD, banner servers) on a
// Cluster whose folders we set ourselves instead of start(): its agent would
// read manifests, ours reads the API server.
import t, { type Test } from 'tap'
import { closeSync, cpSync, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { Cleanup, REPO, blackhole, exclusiveKernel, tempDir, trySh } from './lib/host.ts'
import { Cluster, NODE_NAME, POD_CIDR, delay, run, stopProcess, type Pod } from './lib/cluster.ts'
import { TestApiServer } from './lib/apiserver.ts'
import { expectFlows, leftovers, noForeignAgents, to, watchForeignAgents } from './lib/behaviour.ts'
import type { PodSpec } from './scenarios/types.ts'

const NS = 'api'

function podObject(spec: PodSpec): Record<string, unknown> {
  const ports = (spec.ports ?? []).map((p) => ({ ...p, protocol: p.protocol ?? 'TCP' }))
  const metadata = { name: spec.name, namespace: spec.namespace, labels: spec.labels, uid: `uid-${spec.namespace}-${spec.name}` }
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: { nodeName: NODE_NAME, containers: [{ name: 'main', image: 'x', ports }] } }
}

async function startAgent(cleanup: Cleanup, api: TestApiServer, c: Cluster): Promise<void> {
  const kubeconfig = join(c.logDir, 'kubeconfig')
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig())
  const log = openSync(join(c.logDir, 'agent.log'), 'a')
  const args = ['run', '--kubeconfig', kubeconfig, '--state-dir', c.stateDir, '--run-dir', c.runDir, '--node-name', NODE_NAME, '--log-level', 'debug']
  const agent = spawn(c.enforcerBin, args, { stdio: ['ignore', log, log] })
  closeSync(log)
  cleanup.push('stop agent', () => stopProcess(agent, 5000))
  for (const deadline = Date.now() + 20_000; ; ) {
    if (agent.exitCode !== null) throw new Error(`agent exited ${agent.exitCode}; log ${c.logDir}/agent.log`)
    if ((await run(c.enforcerBin, ['status', '--run-dir', c.runDir, '--wait-synced', '--timeout', '2s'])).code === 0) return
    if (Date.now() > deadline) throw new Error('agent not synced after 20 s')
    await delay(200)
  }
}

/** `status --wait-synced` lists the API server again (a barrier), so the flows hold right after it, without retries. */
async function synced(c: Cluster): Promise<void> {
  const r = await run(c.enforcerBin, ['status', '--run-dir', c.runDir, '--wait-synced', '--timeout', '10s'])
  if (r.code !== 0) throw new Error(`status --wait-synced failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
}

async function scenario(t: Test, api: TestApiServer, c: Cluster): Promise<void> {
  const pods: Record<string, Pod> = {}
  for (const spec of [
    { namespace: NS, name: 'client', labels: { app: 'client' } },
    { namespace: NS, name: 'intruder', labels: { app: 'intruder' } },
    { namespace: NS, name: 'srv', labels: { app: 'srv' }, ports: [{ containerPort: 80 }] },
  ]) {
    api.create('Pod', podObject(spec))
    pods[spec.name] = await c.addPod(spec)
  }
  const { client, intruder, srv } = pods as Record<'client' | 'intruder' | 'srv', Pod>
  await expectFlows(t, intruder, [to(srv, 80, 'ok')])
  const np = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'srv-from-client', namespace: NS }, spec: { podSelector: { matchLabels: { app: 'srv' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } }
  // watch events held back: only the barrier's fresh lists can bring each change in
  api.holdWatches()
  api.create('NetworkPolicy', np)
  await synced(c)
  await expectFlows(t, intruder, [to(srv, 80, 'x')])
  await expectFlows(t, client, [to(srv, 80, 'ok')])
  api.update('Pod', podObject({ ...intruder.spec, labels: { app: 'client' } }))
  await synced(c)
  await expectFlows(t, intruder, [to(srv, 80, 'ok')])
  api.update('Pod', podObject(intruder.spec))
  await synced(c)
  await expectFlows(t, intruder, [to(srv, 80, 'x')])
  api.releaseWatches()
  api.delete('NetworkPolicy', np)
  await synced(c)
  await expectFlows(t, intruder, [to(srv, 80, 'ok')])
}

// waits for the kernel lock and for other runs' agents: longer than tap's default
t.setTimeout(20 * 60_000)

t.test('wren-enforcer --kubeconfig against the in-repo API server', async (t) => {
  const cleanup = new Cleanup()
  await exclusiveKernel(cleanup)
  const c = new Cluster()
  try {
    await noForeignAgents(t)
    blackhole(cleanup, POD_CIDR)
    const root = tempDir(cleanup, 'wren-api-')
    // our own copy of the binaries: others rebuild dist/ in this checkout while we run
    for (const d of ['bin', 'dist']) cpSync(join(REPO, d), join(root, 'build', d), { recursive: true })
    symlinkSync(join(REPO, 'node_modules'), join(root, 'build', 'node_modules'))
    const bin = (name: string) => join(root, 'build', 'bin', name)
    Object.assign(c, { logDir: root, manifests: join(root, 'manifests'), stateDir: join(root, 'state'), runDir: join(root, 'run'), wrenBin: bin('wren'), enforcerBin: bin('wren-enforcer') })
    for (const d of [c.manifests, c.stateDir, c.runDir]) mkdirSync(d, { recursive: true })
    cleanup.push('wren-enforcer cleanup', () => void trySh(c.enforcerBin, ['cleanup']))
    const api = new TestApiServer()
    await api.start()
    cleanup.push('api server', () => api.close())
    api.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE_NAME } })
    api.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'kubernetes.io/metadata.name': NS } } })
    c.namespaces.set(NS, {})
    await startAgent(cleanup, api, c)
    const seen = watchForeignAgents(c)
    try {
      await scenario(t, api, c)
    } finally {
      t.same(seen.stop(), [], 'no other wren agent ran during this session')
    }
  } catch (e) {
    t.fail(`session: ${(e as Error).stack}`)
  } finally {
    const errs = [...(await c.teardown()), ...(await cleanup.run())]
    t.same(errs, [], 'teardown without errors')
    t.same(leftovers(), [], 'nothing of ours left on the host')
  }
})
