// Wiring only: builds the agent's parts from its configuration and runs it
// until a signal. Nothing else in the enforcer reads flags or the environment.
import { runPluginRequest } from '../cni/serve.ts'
import { exec as plainExec, type Exec } from '../shared/exec.ts'
import { createSpawner, findSpawnHelper } from '../shared/spawner.ts'
import { createLogger, stderrSink } from '../shared/log.ts'
import { Agent, type Source } from './agent.ts'
import type { AgentConfig } from './config.ts'
import { serveControl } from './control.ts'
import { Dataplane } from './dataplane/writer.ts'
import type { KubeSource } from './sources/kube.ts'
import { ManifestSource } from './sources/manifests.ts'
import { RecordSource } from './sources/records.ts'
import { Store } from './store.ts'
import { NetlinkRoutes } from './network/kernel.ts'
import { Router } from './network/router.ts'
import { DeferredMetrics } from './metrics-deferred.ts'
import { Health, healthAnswer, serveHealth } from './health.ts'
import type { Server } from 'node:http'
import { http } from '../shared/node-http.ts'

export async function runAgent(config: AgentConfig): Promise<void> {
  const log = createLogger(stderrSink(), config.logLevel, { component: 'wren-enforcer' })
  const exec = commandRunner(log)
  const store = new Store({ log, nodeName: config.nodeName })
  const records = new RecordSource(config.stateDir, store, log)
  const cluster = await clusterSource(config, store, log)
  const sources: Source[] = [records, cluster]
  // resyncMs Infinity: the agent decides when the kernel is re-read (its drift check)
  const writer = new Dataplane({ exec, log, setMaxElem: config.enforcer.setMaxElem, backend: config.iptablesBackend, resyncMs: Infinity })
  const metrics = new DeferredMetrics()
  const routeKernel = new NetlinkRoutes(log)
  const routes = new Router({ kernel: routeKernel, nodeName: config.nodeName, mode: config.overlay, log })
  const agent = new Agent({ store, sources, records, writer, routes, config: config.enforcer, log, metrics })
  let programmed = false
  void agent.whenApplied().then((ok) => (programmed = ok))
  const disconnected = () => (cluster instanceof ManifestSource ? [] : cluster.disconnected())
  const health = new Health({ programmed: () => programmed, disconnected, readyGraceMs: config.readyGraceMs })

  const server = await serveControl(config.runDir, {
    status: async (kernel) => ({ ...agent.status(), health: { live: health.liveness(), ready: health.readiness() }, source: sourceStatus(cluster), ...(kernel && { kernel: await writer.status() }) }),
    health: (path) => healthAnswer(health, path),
    waitSynced: (ms) => agent.waitSynced(ms),
    waitProgrammed: (iface, ms) => agent.waitProgrammed(iface, ms),
    metrics: () => metrics.text(),
    sets: () => agent.describeSets(),
    // plugin invocations from the native shim, with the programmed-wait answered in-process
    cni: (frame) => runPluginRequest(frame, { runDir: config.runDir, waitProgrammed: (iface, ms) => agent.waitProgrammed(iface, ms) }, exec),
  })
  const scrape = config.metricsPort ? await serveMetrics(config.metricsPort, metrics) : undefined
  log.info('control socket ready', { runDir: config.runDir })
  health.start()
  const probes = await serveHealth(health, config.healthPort)
  log.info('health endpoints ready', { at: `127.0.0.1:${config.healthPort}` })
  await agent.start()
  // the agent's first rules come before the metrics library (see metrics-deferred.ts)
  agent
    .whenApplied()
    .then((ok) => (ok ? metrics.load() : undefined))
    .catch((e) => log.error('cannot load the metrics library; /metrics will fail', { err: (e as Error).message }))

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info('stopping; rules stay in place', { signal: sig })
      resolve()
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  await agent.stop()
  routeKernel.stop()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  scrape?.close()
  health.stop()
  probes.close()
}

/**
 * Every command the agent runs (restores, saves, the plugin's `ip -batch`) goes
 * through the spawn helper: forking the agent itself blocks it 5-7.5 ms per
 * command (see shared/spawner.ts). Without the helper, plain child processes.
 */
function commandRunner(log: ReturnType<typeof createLogger>): Exec {
  const helperPath = findSpawnHelper()
  if (helperPath) return createSpawner({ helperPath, log })
  log.warn('dist/wren-spawn not found (build it with scripts/build.mjs); running commands as child processes of the agent')
  return plainExec
}

/** /metrics on TCP for Prometheus (the agent runs on the host network). */
async function serveMetrics(port: number, metrics: DeferredMetrics): Promise<Server> {
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
    res.end(await metrics.text())
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, () => resolve()))
  return server
}

/** What the cluster source can tell an operator: files it could not load, or informer counters. */
function sourceStatus(source: ManifestSource | KubeSource): Record<string, unknown> {
  if (source instanceof ManifestSource) return { manifests: { problems: source.problems(), ...source.stats() } }
  return { kubernetes: source.stats() }
}

/**
 * The manifests folder, or the Kubernetes API. The client library loads only
 * in cluster mode: it costs ~275 ms of start-up and ~80 MB of memory.
 */
async function clusterSource(config: AgentConfig, store: Store, log: ReturnType<typeof createLogger>): Promise<ManifestSource | KubeSource> {
  if (config.manifestsDir) return new ManifestSource(config.manifestsDir, store, log)
  const [{ KubeConfig }, { KubeSource }] = await Promise.all([import('@kubernetes/client-node'), import('./sources/kube.ts')])
  const kubeConfig = new KubeConfig()
  if (config.inCluster) kubeConfig.loadFromCluster()
  else kubeConfig.loadFromFile(config.kubeconfig!)
  return new KubeSource({ kubeConfig, store, log, nodeName: config.nodeName })
}
