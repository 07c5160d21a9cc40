// In-process micro-benchmark of the compiler and the writer's prepare step on
// the synthetic cluster: cold compile, then compile + prepare after one pod
// label change and after one policy change, two ways:
// - store: the changed object is upserted into a Store and the compiler gets
//   store.snapshot(), as the agent does; unchanged objects keep their identity;
// - fresh: every step hands the compiler a fresh clone of everything, so caches
//   keyed on identity get no help (the content-comparison fallback).
//
//   node --experimental-transform-types scripts/bench/compile-micro.ts [--quick] [--runs N] [--check] [--only store|fresh]
//
// --check compares every incremental result with a fresh compile (slow).
import { compile, Compiler } from '../../enforcer/compile/index.ts'
import { prepare, PrepareMemo } from '../../enforcer/dataplane/prepare.ts'
import { DEFAULT_ENFORCER_CONFIG, type LocalWorkload, type Snapshot } from '../../enforcer/model.ts'
import { Store } from '../../enforcer/store.ts'
import { connPolicies, podObj, synthesize, type Obj } from './synth.ts'
import { labelCandidates, policyToEdit } from './edits.ts'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const check = args.includes('--check')
const runs = Number(args[args.indexOf('--runs') + 1]) || 20
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined
const size = quick ? { pods: 500, policies: 100, namespaces: 10, local: 20 } : { pods: 5000, policies: 1000, namespaces: 50, local: 110 }
const NODE = 'bench-node'

const c = synthesize(size)
const allPods = [...c.pods, c.conn.server, c.conn.client]
const ipOfLocal = (i: number) => `10.42.${i >> 8}.${i & 255}`
const workloads: LocalWorkload[] = allPods.filter((p) => p.local).map((p, i) => ({ hostIface: `wren${String(i).padStart(11, '0')}`, namespace: p.namespace, pod: p.name, ips: [ipOfLocal(i + 1)] }))

const conn = connPolicies(100)
function snapshot(): Snapshot {
  // fresh objects each time, like a re-parsed manifests folder
  return structuredClone({
    namespaces: [...c.namespaces, c.conn.namespace] as Obj[],
    pods: allPods.map((p) => podObj(p, NODE)),
    policies: [...c.policies, ...conn],
    workloads,
  }) as unknown as Snapshot
}

const store = new Store({ nodeName: NODE })
store.batch(() => {
  for (const n of [...c.namespaces, c.conn.namespace]) store.upsert('Namespace', n, 'manifests')
  for (const p of allPods) store.upsert('Pod', podObj(p, NODE), 'manifests')
  for (const p of [...c.policies, ...conn]) store.upsert('NetworkPolicy', p, 'manifests')
  store.setWorkloads(workloads)
})

const config = DEFAULT_ENFORCER_CONFIG
const ms = (t0: number) => performance.now() - t0
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms  p99 ${pct(xs, 99).toFixed(1)} ms  (n=${xs.length})`

let t = performance.now()
const snap0 = snapshot()
const cloneMs = ms(t)
t = performance.now()
const cold = compile(snap0, config)
const coldMs = ms(t)
const compiler = new Compiler(config)
t = performance.now()
compiler.compile(snap0)
const coldCompilerMs = ms(t)
const memo = new PrepareMemo()
t = performance.now()
prepare(cold, config.setMaxElem, undefined, memo)
const coldPrepareMs = ms(t)
const rules = cold.v4.chains.reduce((n, ch) => n + ch.rules.length, 0)
const members = cold.v4.sets.reduce((n, s) => n + s.members.length, 0)
console.log(`size ${JSON.stringify(size)}: ${cold.v4.chains.length} v4 chains, ${rules} v4 rules, ${cold.v4.sets.length} v4 sets with ${members} members (snapshot clone ${cloneMs.toFixed(0)} ms)`)
console.log(`cold compile() ${coldMs.toFixed(1)} ms; Compiler first ${coldCompilerMs.toFixed(1)} ms; cold prepare ${coldPrepareMs.toFixed(1)} ms`)

const candidates = labelCandidates(c, runs)
const policy = policyToEdit(c)
const steps: { name: string; edit: (i: number) => void }[] = [
  {
    name: 'label change',
    edit: (i) => {
      const p = candidates[i % candidates.length]
      p.labels = { ...p.labels, tier: p.labels.tier === 'web' ? 'api' : 'web' }
      store.upsert('Pod', podObj(p, NODE), 'manifests')
    },
  },
  {
    name: 'policy change',
    edit: (i) => {
      policy.spec = { ...policy.spec, ingress: [{ ...policy.spec.ingress[0], ports: [{ protocol: 'TCP', port: 8000 + (i % 50) }] }] }
      store.upsert('NetworkPolicy', policy, 'manifests')
    },
  },
]
const modes: { name: string; snapshot: () => Snapshot }[] = [
  { name: 'store', snapshot: () => store.snapshot() },
  { name: 'fresh', snapshot },
].filter((m) => !only || m.name === only)
for (const mode of modes) {
  compiler.compile(mode.snapshot()) // the mode's first objects are all new to the compiler: not what is measured
  for (const step of steps) {
    const compileMs: number[] = []
    const prepareMs: number[] = []
    for (let i = 0; i < runs; i++) {
      step.edit(i)
      const snap = mode.snapshot()
      let t0 = performance.now()
      const out = compiler.compile(snap)
      compileMs.push(ms(t0))
      t0 = performance.now()
      prepare(out, config.setMaxElem, undefined, memo)
      prepareMs.push(ms(t0))
      if (check && JSON.stringify(out) !== JSON.stringify(compile(snap, config))) throw new Error(`${step.name} ${i}: incremental output differs from a fresh compile`)
    }
    console.log(`${mode.name} ${step.name}: compile ${fmt(compileMs)}; prepare ${fmt(prepareMs)}`)
  }
}
