// /healthz and /readyz of a real `wren-enforcer run`, as the kubelet's probes
// see them: on 127.0.0.1 only, live from the start, ready once the first sync
// is programmed; from the in-repo API server through a kubeconfig, not ready
// while it is unreachable at start, not ready again once it has been away
// longer than --ready-grace (503 saying which kinds and why), ready again when
// it is back. The API server sits behind a TCP relay on a fixed port, so
// "the API is gone" is a refused connection, as when kube-apiserver is down.
import t, { type Test } from 'tap'
import { closeSync, cpSync, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { Cleanup, REPO, exclusiveKernel, tempDir, trySh } from './lib/host.ts'
import { delay, run, stopProcess } from './lib/cluster.ts'
import { TestApiServer } from './lib/apiserver.ts'

const NODE = 'health-node'

/** A TCP relay to the API server that can be taken down (connections cut, port closed) and brought back on the same port. */
class Relay {
  private server?: Server
  private readonly sockets = new Set<Socket>()
  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}
  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1')
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => (client.destroy(), upstream.destroy()))
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', resolve))
    this.server = server
  }
  async down(): Promise<void> {
    const s = this.server
    this.server = undefined
    for (const sock of this.sockets) sock.destroy()
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()))
  }
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

async function probe(port: number, path: '/healthz' | '/readyz', host = '127.0.0.1'): Promise<{ code: number; body: any }> {
  const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(5000) })
  return { code: res.status, body: await res.json() }
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await get().catch((e) => e as T)
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v instanceof Error ? v.message : v)} after ${timeoutMs} ms`)
    await delay(100)
  }
}

interface Bins {
  enforcer: string
  root: string
}

/** Our own copy of bin/ and dist/: others rebuild dist/ in this checkout while we run. */
function snapshot(cleanup: Cleanup): Bins {
  const root = tempDir(cleanup, 'wren-health-')
  for (const d of ['bin', 'dist']) cpSync(join(REPO, d), join(root, 'build', d), { recursive: true })
  symlinkSync(join(REPO, 'node_modules'), join(root, 'build', 'node_modules'))
  const enforcer = join(root, 'build', 'bin', 'wren-enforcer')
  cleanup.push('wren-enforcer cleanup', () => void trySh(enforcer, ['cleanup']))
  return { enforcer, root }
}

function startAgent(cleanup: Cleanup, bins: Bins, name: string, source: string[], extra: string[]): { child: ChildProcess; runDir: string; log: string } {
  const dir = join(bins.root, name)
  const [stateDir, runDir] = [join(dir, 'state'), join(dir, 'run')]
  for (const d of [stateDir, runDir]) mkdirSync(d, { recursive: true })
  const log = join(dir, 'agent.log')
  const fd = openSync(log, 'a')
  const child = spawn(bins.enforcer, ['run', ...source, '--state-dir', stateDir, '--run-dir', runDir, '--node-name', NODE, '--log-level', 'debug', ...extra], { stdio: ['ignore', fd, fd], env: agentEnv() })
  closeSync(fd)
  cleanup.push(`stop agent ${name}`, () => stopProcess(child, 5000))
  return { child, runDir, log }
}

/** The agent as it runs on a node: without the test runner's NODE_OPTIONS hooks. */
function agentEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _hooks, ...env } = process.env
  return env
}

async function statusText(bins: Bins, runDir: string): Promise<string> {
  return (await run(bins.enforcer, ['status', '--run-dir', runDir])).stdout
}

async function manifestsAgent(t: Test, cleanup: Cleanup, bins: Bins): Promise<void> {
  const manifests = join(bins.root, 'manifests')
  mkdirSync(manifests)
  writeFileSync(join(manifests, 'ns.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: health, labels: {kubernetes.io/metadata.name: health}}\n')
  const port = await freePort()
  const agent = startAgent(cleanup, bins, 'manifests', ['--manifests', manifests], ['--health-port', String(port)])
  const ready = await until('readyz', () => probe(port, '/readyz'), (r) => r?.code === 200)
  t.same(ready.body, { ready: true, reasons: [], disconnected: [] }, '/readyz 200 once synced')
  const live = await probe(port, '/healthz')
  t.equal(live.code, 200, '/healthz 200')
  t.equal(live.body.live, true)
  t.ok(live.body.maxLoopLagMs < 5000, `loop lag ${live.body.maxLoopLagMs} ms`)
  // bound to loopback only: one listener, 127.0.0.1; another address of this host refuses
  const listeners = trySh('ss', ['-Hltn', `sport = :${port}`]).stdout.trim().split('\n').map((l) => l.split(/\s+/)[3])
  t.same(listeners, [`127.0.0.1:${port}`], 'listens on 127.0.0.1 only')
  const other = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)
  if (other) await t.rejects(probe(port, '/healthz', other.address), `${other.address}:${port} refuses`)
  t.match(await statusText(bins, agent.runDir), /health: +live \(loop lag ≤ \d+ ms\), ready/, 'status says live and ready')
  const viaSocket = await run(bins.enforcer, ['status', '--run-dir', agent.runDir, '--json'])
  t.match(JSON.parse(viaSocket.stdout).health, { live: { live: true }, ready: { ready: true } }, 'status --json carries both')
  await stopProcess(agent.child, 5000)
}

async function apiAgent(t: Test, cleanup: Cleanup, bins: Bins): Promise<void> {
  const api = new TestApiServer()
  await api.start()
  cleanup.push('api server', () => api.close())
  api.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } })
  api.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'health', labels: { 'kubernetes.io/metadata.name': 'health' } } })
  const relay = new Relay(await freePort(), Number(new URL(api.url).port))
  cleanup.push('relay', () => relay.down())
  const kubeconfig = join(bins.root, 'kubeconfig')
  const kc = api.kubeConfig()
  kc.clusters[0] = { ...kc.clusters[0]!, server: `http://127.0.0.1:${relay.port}` }
  writeFileSync(kubeconfig, kc.exportConfig())
  const port = await freePort()
  // the API is unreachable when the agent starts
  const agent = startAgent(cleanup, bins, 'api', ['--kubeconfig', kubeconfig], ['--health-port', String(port), '--ready-grace', '2s'])
  const early = await until('health server', () => probe(port, '/readyz'), (r) => r?.code === 503)
  t.match(early.body.reasons, ['the first sync is not programmed yet'], 'API down at start: not ready, not synced')
  t.equal((await probe(port, '/healthz')).code, 200, 'but live')
  await until('an informer disconnected', () => probe(port, '/readyz'), (r) => r?.body?.disconnected?.length > 0)
  await relay.up()
  await until('ready after the API came', () => probe(port, '/readyz'), (r) => r?.code === 200)
  t.pass('API up: ready')

  await relay.down()
  const cut = Date.now()
  const within = await until('a kind disconnected', () => probe(port, '/readyz'), (r) => r?.body?.disconnected?.length > 0)
  t.equal(within.code, 200, `still ready within the grace (${Date.now() - cut} ms after the cut)`)
  const lost = await until('not ready past the grace', () => probe(port, '/readyz'), (r) => r?.code === 503)
  t.ok(Date.now() - cut >= 2000, `not ready ${Date.now() - cut} ms after the cut (grace 2 s)`)
  t.ok(lost.body.reasons.length >= 1)
  for (const r of lost.body.reasons) t.match(r, /^(Namespace|Pod|NetworkPolicy|Node): no answer from the API for \d+ s \(grace 2 s\): .*ECONNREFUSED/, r)
  t.equal((await probe(port, '/healthz')).code, 200, 'an API outage is no reason to restart: live')
  t.match(await statusText(bins, agent.runDir), /NOT READY\n {2}not ready: .*no answer from the API/, 'status says why')

  await relay.up()
  const back = await until('ready again', () => probe(port, '/readyz'), (r) => r?.code === 200)
  t.same(back.body, { ready: true, reasons: [], disconnected: [] }, 'API back: ready, nothing disconnected')
  await stopProcess(agent.child, 5000)
}

// waits for the kernel lock (another run's agent): longer than tap's default
t.setTimeout(20 * 60_000)

t.test('health endpoints of a running agent', async (t) => {
  const cleanup = new Cleanup()
  await exclusiveKernel(cleanup)
  try {
    const bins = snapshot(cleanup)
    await t.test('manifests: live, ready once synced, on 127.0.0.1 only, in status', (t) => manifestsAgent(t, cleanup, bins))
    await t.test('API: not ready until the first sync; not ready past --ready-grace without the API, ready when it is back', (t) => apiAgent(t, cleanup, bins))
  } finally {
    t.same(await cleanup.run(), [], 'teardown without errors')
  }
})
