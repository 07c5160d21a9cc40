// Change → programmed: a manifest edit is written, then the agent is asked to
// rescan and answer once the kernel holds it (`/synced`, what
// `wren-enforcer status --wait-synced` calls). Timed from the moment the file
// is in place (the change exists from then on, as a change exists once the API
// server has it) to the answer; writing the file is timed apart, since it is
// the editor's cost (ext4 here: a rename now and then waits on the journal).
// The agent's own figures for the same apply come from its status and log.
import { AgentLog, applyCosts, type ApplyCost } from './agentlog.ts'
import type { ManifestFolder } from './manifests.ts'
import { agentStatus, synced, type Dirs } from './node.ts'
import { podObj, type Obj, type SynthCluster, type SynthPod } from './synth.ts'

export interface EditRun {
  /** File in place → /synced answered, per edit. */
  wallMs: number[]
  /** Rendering and writing the file (temp file + rename), per edit. */
  writeMs: number[]
  /** The agent's lastApply.durationMs (compile + write) per edit. */
  agentMs: number[]
  costs: ApplyCost
  /** Edits the agent saw as no change (should be 0). */
  noops: number
}

export interface EditEnv {
  dirs: Dirs
  folder: ManifestFolder
  log: AgentLog
  /** Pause after each edit so the watcher's own (debounced) rescan is over before the next. */
  settleMs: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function mergeCosts(all: ApplyCost[]): ApplyCost {
  const out = applyCosts([])
  for (const c of all) for (const k of Object.keys(out) as (keyof ApplyCost)[]) out[k].push(...c[k])
  return out
}

export async function timeEdits(env: EditEnv, n: number, edit: (i: number) => void): Promise<EditRun> {
  const run: EditRun = { wallMs: [], writeMs: [], agentMs: [], costs: applyCosts([]), noops: 0 }
  const costs: ApplyCost[] = []
  let generation = (await agentStatus(env.dirs)).lastApply?.generation ?? 0
  for (let i = 0; i < n; i++) {
    await sleep(env.settleMs)
    env.log.mark()
    const t0 = performance.now()
    edit(i)
    const written = performance.now()
    await synced(env.dirs)
    run.wallMs.push(performance.now() - written)
    run.writeMs.push(written - t0)
    const st = await agentStatus(env.dirs)
    if (st.lastApply.generation === generation) run.noops++
    generation = st.lastApply.generation
    run.agentMs.push(st.lastApply.durationMs)
    costs.push(applyCosts(env.log.read()))
  }
  run.costs = mergeCosts(costs)
  return run
}

/** Remote pods whose tier flips between web and api: in and out of every "from tier=web" peer set of their namespace. */
export function labelCandidates(c: SynthCluster, count: number): SynthPod[] {
  const localNs = new Set(c.pods.filter((p) => p.local).map((p) => p.namespace))
  return c.pods.filter((p) => !p.local && localNs.has(p.namespace) && (p.labels.tier === 'web' || p.labels.tier === 'api')).slice(0, count)
}

export function flipTier(folder: ManifestFolder, pod: SynthPod, nodeName: string): void {
  pod.labels = { ...pod.labels, tier: pod.labels.tier === 'web' ? 'api' : 'web' }
  folder.update(podObj(pod, nodeName))
}

/** The "pod-peers" policy of the first local pod's namespace: it selects every pod there, so its chain is programmed. */
export function policyToEdit(c: SynthCluster): Obj {
  const ns = c.pods.find((p) => p.local)!.namespace
  const p = c.policies.find((x) => x.metadata.namespace === ns && x.metadata.name.endsWith('-pod-peers') && Object.keys(x.spec.podSelector).length === 0)
  if (!p) throw new Error(`no pod-peers policy selecting all of ${ns}: too few policies for the namespaces`)
  return p
}

export function setPolicyPort(folder: ManifestFolder, policy: Obj, port: number): void {
  policy.spec = { ...policy.spec, ingress: [{ ...policy.spec.ingress[0], ports: [{ protocol: 'TCP', port }] }] }
  folder.update(policy)
}
