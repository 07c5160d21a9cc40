// Benchmark of the dataplane writer on the real kernel (root):
//   node --experimental-transform-types scripts/bench-dataplane.ts [chains] [rulesPerChain] [sets] [members] [runs]
// Defaults: 1,000 chains, 10 rules each (10,000 rules), 1,000 sets of 50 members.
// Compares apply (cold, no-op, one member change, one chain change; with a
// fresh kernel read and from the cache) against raw `ipset restore` +
// `iptables-restore --noflush` of the same rendered text. Everything is created
// under the owner prefix `wrenbench` and removed at the end, also on failure.
import { exec, execOk } from '../shared/exec.ts'
import { Cleanup, exclusiveKernel } from '../e2e/lib/host.ts'
import { nullLogger } from '../shared/log.ts'
import { backendFor } from '../enforcer/dataplane/backend.ts'
import { prepare } from '../enforcer/dataplane/prepare.ts'
import { renderMember, renderSetCreate } from '../enforcer/dataplane/render.ts'
import { Dataplane, type ApplyResult } from '../enforcer/dataplane/writer.ts'
import type { Chain, DesiredState, IpSet, Rule } from '../enforcer/dataplane/types.ts'

const OWNER = 'wrenbench'
const [nChains, nRules, nSets, nMembers, runs] = [1000, 10, 1000, 50, 20].map((d, i) => Number(process.argv[2 + i] ?? d))
const backend = backendFor('nft', 'benchmark')

function member(set: number, i: number, salt = 0): string {
  const v = set * 1000 + i + salt * 100_000
  return `10.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`
}

function build(variant: { setSalt?: number; chainTweak?: boolean } = {}): DesiredState {
  const sets: IpSet[] = []
  for (let s = 0; s < nSets; s++) {
    const members = Array.from({ length: nMembers }, (_, i) => member(s, i))
    if (s === 0 && variant.setSalt) members[0] = member(s, 0, variant.setSalt)
    sets.push({ name: `${OWNER}4-${s}`, type: 'hash:ip', family: 4, members, comment: '' })
  }
  const chains: Chain[] = []
  const dispatch: Rule[] = []
  for (let c = 0; c < nChains - 1; c++) {
    const name = `${OWNER}-c-${c}`
    dispatch.push({ match: ['-i', `wb${c}`], action: ['-g', name], comment: `workload ${c}` })
    const rules: Rule[] = []
    for (let r = 0; r < nRules - 1; r++) {
      const set = `${OWNER}4-${(c * 7 + r) % nSets}`
      const port = String(1000 + r + (variant.chainTweak && c === 0 ? 1 : 0))
      rules.push({ match: ['-p', 'tcp', '--dport', port, '-m', 'set', '--match-set', set, 'src'], action: ['-j', 'MARK', '--set-xmark', '0x10000/0x10000'], comment: `policy ns/p${c} rule ${r}` })
    }
    rules.push({ match: ['-m', 'mark', '--mark', '0x10000/0x10000'], action: ['-j', 'RETURN'], comment: 'allowed' })
    chains.push({ name, table: 'filter', rules })
  }
  chains.push({ name: `${OWNER}-disp`, table: 'filter', rules: dispatch })
  return {
    v4: { family: 4, hooks: [{ table: 'filter', chain: 'FORWARD', target: `${OWNER}-disp` }], chains, sets },
    v6: { family: 6, hooks: [], chains: [], sets: [] },
    problems: [],
    workloads: [],
  }
}

/** The same objects as one ipset and one iptables restore input, as a hand-written loader would send them. */
function rawText(state: DesiredState): { sets: string; rules: string } {
  const p = prepare(state, 65536, OWNER)
  const sets: string[] = []
  for (const [name, ps] of p.sets) sets.push(renderSetCreate(name, 'hash:ip', 4, 65536), ...[...ps.members].map((m) => renderMember('add', name, m)))
  const t = p.families.get(4)!.get('filter')!
  const lines = ['*filter', ...[...t.chains.keys()].map((n) => `:${n} - [0:0]`)]
  for (const rc of t.chains.values()) lines.push(...rc.lines)
  lines.push(`-I FORWARD 1 ${t.hooks.get('FORWARD')![0].spec}`, 'COMMIT', '')
  return { sets: sets.join('\n') + '\n', rules: lines.join('\n') }
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now()
  const r = await fn()
  return [performance.now() - t0, r]
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]
  return `p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms (n=${s.length})`
}

async function repeat(label: string, dp: Dataplane, states: DesiredState[]): Promise<void> {
  const ms: number[] = []
  let last: ApplyResult | undefined
  let interrupted = 0
  for (let i = 0; i < runs; i++) {
    try {
      const [t, r] = await time(() => dp.apply(states[i % states.length]))
      ms.push(t)
      last = r
    } catch (e) {
      // another wren writer on this machine (a test's agent or cleanup) removed our objects: rebuild, drop the sample
      if (++interrupted > runs) throw e
      await dp.apply(states[i % states.length]).catch(() => dp.apply(states[i % states.length]))
    }
  }
  if (interrupted) console.log(`  (${interrupted} samples dropped: objects removed by another wren writer)`)
  console.log(`${label.padEnd(34)} ${stats(ms)}; last: read ${last!.read}, restores ${last!.restores}, prepare ${last!.prepareMs.toFixed(1)} ms, read ${last!.readMs.toFixed(1)} ms`)
}

async function main(): Promise<void> {
  // an agent on this machine would remove our `wrenbench` objects as stale ones of its own
  const lock = new Cleanup()
  await exclusiveKernel(lock)
  try {
    await measure()
  } finally {
    await lock.run()
  }
}

async function measure(): Promise<void> {
  const base = build()
  const memberChange = [build({ setSalt: 1 }), base]
  const chainChange = [build({ chainTweak: true }), base]
  const cleaner = new Dataplane({ exec, log: nullLogger, backend, owner: OWNER })
  await cleaner.cleanup()
  try {
    console.log(`state: ${nChains} chains, ${nChains * nRules - 1} rules, ${nSets} sets x ${nMembers} members`)
    const raw = rawText(base)
    const rawMs: number[] = []
    const coldMs: number[] = []
    let dp = new Dataplane({ exec, log: nullLogger, backend, owner: OWNER, resyncMs: 0 })
    for (let i = 0; i < 3; i++) {
      // interleaved, so that load from other work on the machine hits both alike
      const [rawSets] = await time(() => execOk(exec, 'ipset', ['restore'], { input: raw.sets }))
      const [rawRules] = await time(() => execOk(exec, backend.restore(4), ['--noflush', '--wait=10'], { input: raw.rules }))
      rawMs.push(rawSets + rawRules)
      if (i === 0) {
        const [save] = await time(() => execOk(exec, backend.save(4), ['-t', 'filter']))
        const [ipsave] = await time(() => execOk(exec, 'ipset', ['save']))
        console.log(`kernel read: iptables-save -t filter ${save.toFixed(0)} ms, ipset save ${ipsave.toFixed(0)} ms`)
      }
      await cleaner.cleanup()
      dp = new Dataplane({ exec, log: nullLogger, backend, owner: OWNER, resyncMs: 0 })
      const [cold, r] = await time(() => dp.apply(base))
      coldMs.push(cold)
      console.log(`  run ${i}: raw ${rawMs[i].toFixed(0)} ms, cold apply ${cold.toFixed(0)} ms (prepare ${r.prepareMs.toFixed(0)}, read ${r.readMs.toFixed(0)}, write ${r.writeMs.toFixed(0)}, restores ${r.restores})`)
      if (i < 2) await cleaner.cleanup()
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]
    console.log(`cold apply median ${med(coldMs).toFixed(0)} ms vs raw median ${med(rawMs).toFixed(0)} ms: ${(med(coldMs) / med(rawMs)).toFixed(2)}x`)
    await repeat('no-op, kernel read each apply', dp, [base])
    await repeat('one member change, kernel read', dp, memberChange)
    await repeat('one chain change, kernel read', dp, chainChange)
    const cached = new Dataplane({ exec, log: nullLogger, backend, owner: OWNER, resyncMs: 3_600_000 })
    await cached.apply(base)
    await repeat('no-op, cached', cached, [base])
    await repeat('one member change, cached', cached, memberChange)
    await repeat('one chain change, cached', cached, chainChange)
    const fresh = new Dataplane({ exec, log: nullLogger, backend, owner: OWNER })
    const [restart, rr] = await time(() => fresh.apply(base))
    console.log(`restart (new writer, same state): ${restart.toFixed(0)} ms, restores ${rr.restores}`)
  } finally {
    const [c] = await time(() => cleaner.cleanup())
    console.log(`cleanup: ${c.toFixed(0)} ms`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
