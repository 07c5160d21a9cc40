// The agent's label-change path in one process, without the kernel: the real
// ManifestSource, RecordSource, Store, Agent and Dataplane writer, with a fake
// exec that answers the writer's commands after a fixed delay (what an
// `ipset restore` of a few members costs). Times edit written → waitSynced(),
// as the benchmark's `/synced` does, minus the socket; no lock needed, so it
// can run beside a kernel benchmark (expect noise then).
//
//   node --experimental-transform-types [V8 flags] scripts/bench/agent-inproc.ts [--quick] [--changes N] [--exec-ms MS] [--labels-only] [--prof-out FILE]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../enforcer/agent.ts'
import { DEFAULT_ENFORCER_CONFIG } from '../../enforcer/model.ts'
import { Dataplane } from '../../enforcer/dataplane/writer.ts'
import { ManifestSource } from '../../enforcer/sources/manifests.ts'
import { RecordSource } from '../../enforcer/sources/records.ts'
import { Store } from '../../enforcer/store.ts'
import { writeRecord } from '../../shared/record.ts'
import { createLogger } from '../../shared/log.ts'
import type { Exec } from '../../shared/exec.ts'
import { flipTier, labelCandidates, policyToEdit, setPolicyPort } from './edits.ts'
import { ManifestFolder } from './manifests.ts'
import { synthesize } from './synth.ts'

const args = process.argv.slice(2)
const opt = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt)
const quick = args.includes('--quick')
const changes = opt('--changes', 50)
const execMs = opt('--exec-ms', 3)
const size = quick ? { pods: 500, policies: 100, namespaces: 10, local: 20 } : { pods: 5000, policies: 1000, namespaces: 50, local: 110 }
const NODE = 'bench-node'

const root = mkdtempSync(join(tmpdir(), 'wren-inproc-'))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms  p99 ${pct(xs, 99).toFixed(1)} ms  max ${Math.max(...xs).toFixed(1)} ms`

/** Time spent per wrapped method (and in GC) since the last reset: where an edit's milliseconds go. */
const phases = new Map<string, number[]>()
let current = new Map<string, number>()
function timed(proto: any, method: string, label: string): void {
  const orig = proto[method]
  proto[method] = function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now()
    const r = orig.apply(this, a)
    const add = () => current.set(label, (current.get(label) ?? 0) + performance.now() - t0)
    if (r && typeof r.then === 'function') return r.finally(add)
    add()
    return r
  }
}
const { PerformanceObserver } = await import('node:perf_hooks')
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) current.set('gc', (current.get('gc') ?? 0) + e.duration)
}).observe({ entryTypes: ['gc'] })
const { Compiler } = await import('../../enforcer/compile/index.ts')
timed(Compiler.prototype, 'compile', 'compile')
timed(Store.prototype, 'snapshot', 'snapshot')
timed(Dataplane.prototype, 'applyNow', 'writer')
timed(ManifestSource.prototype, 'scan', 'manifests scan')
timed(RecordSource.prototype, 'scan', 'records scan')
const { prepare } = await import('../../enforcer/dataplane/prepare.ts')
void prepare

async function main(): Promise<void> {
  const c = synthesize(size)
  const dir = join(root, 'manifests')
  const folder = ManifestFolder.layout(dir, NODE, c)
  mkdirSync(dir, { recursive: true })
  folder.writeAll()
  const state = join(root, 'state')
  const local = [...c.pods.filter((p) => p.local), c.conn.server, c.conn.client]
  local.forEach((p, i) =>
    writeRecord(state, { containerId: `c${i}`, ifname: 'eth0', network: 'wren', namespace: p.namespace, pod: p.name, netns: `/run/netns/x${i}`, hostIface: `wren${String(i).padStart(11, '0')}`, ips: [`10.98.${i >> 8}.${(i & 255) + 1}`], mac: '02:00:00:00:00:01', created: new Date().toISOString() }),
  )
  const lines: string[] = []
  const log = createLogger((line) => void lines.push(line), 'debug', { component: 'inproc' })
  const exec: Exec = async (cmd) => {
    await sleep(execMs)
    return { code: 0, stdout: cmd.includes('save') && cmd.startsWith('iptables-nft') ? ':KUBE-IPTABLES-HINT - [0:0]\n' : '', stderr: '' }
  }
  const store = new Store({ log, nodeName: NODE })
  const records = new RecordSource(state, store, log)
  const manifests = new ManifestSource(dir, store, log)
  const writer = new Dataplane({ exec, log, backend: 'nft', resyncMs: Infinity })
  const agent = new Agent({ store, sources: [records, manifests], records, writer, config: DEFAULT_ENFORCER_CONFIG, log })
  await agent.start()
  if (!(await agent.waitSynced(60_000))) throw new Error('no first sync')
  const run = async (what: string, edit: (i: number) => void) => {
    await sleep(300)
    current = new Map()
    const wall: number[] = []
    for (let i = 0; i < changes; i++) {
      await sleep(250)
      const t0 = performance.now()
      edit(i)
      if (!(await agent.waitSynced(10_000))) throw new Error('not synced')
      wall.push(performance.now() - t0)
      for (const [k, v] of current) phases.set(k, [...(phases.get(k) ?? []), v])
      current = new Map()
    }
    console.log(`${what}: write → synced ${fmt(wall)} (n=${wall.length})`)
    for (const [k, v] of phases) console.log(`  ${k}: ${fmt(v)}`)
    phases.clear()
  }
  const cands = labelCandidates(c, 10)
  const profOut = args.includes('--prof-out') ? args[args.indexOf('--prof-out') + 1] : undefined
  const session = profOut ? new (await import('node:inspector/promises')).Session() : undefined
  if (session) {
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
  }
  await run('label change', (i) => flipTier(folder, cands[i % cands.length], NODE))
  if (session) {
    const { profile } = await session.post('Profiler.stop')
    ;(await import('node:fs')).writeFileSync(profOut!, JSON.stringify(profile))
  }
  const policy = policyToEdit(c)
  if (!args.includes('--labels-only')) await run('policy change', (i) => setPolicyPort(folder, policy, 8100 + i))
  const mem = process.memoryUsage()
  console.log(`rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB (peak ${(process.resourceUsage().maxRSS / 1024).toFixed(0)}), heap used ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB`)
  await agent.stop()
}

main()
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
  .finally(() => rmSync(root, { recursive: true, force: true }))
