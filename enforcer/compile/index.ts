// The pure compiler: (pods, namespaces, policies, local workloads, config) →
// desired sets and chains for IPv4 and IPv6, plus the problems found.
//
// No I/O, no clock, no environment. The output depends only on the content of
// the snapshot, never on the order of its lists: every collection is sorted by
// a content key before it is emitted.
//
// Decisions worth knowing (each explained where it is implemented):
// - A policy direction with any field wren cannot honour allows nothing but
//   still isolates (policy.ts); an unusable spec.podSelector selects the whole
//   namespace; an unknown policyType isolates both directions.
// - Host-network and Succeeded/Failed pods are never peers (cluster.ts).
// - Egress named ports use one cluster-wide ip,port set per (protocol, name),
//   ANDed with the peer match (ports.ts); ingress named ports use the subject pods.
// - A workload whose pod is unknown gets no chains, so dispatch drops it (workload.ts).
// - A bad config (prefix, mark) throws: nothing is compiled, the kernel stays as it is.
import type { Chain, DesiredState, Family, FamilyState, Problem } from '../dataplane/types.ts'
import type { EnforcerConfig, NetworkPolicy, Snapshot } from '../model.ts'
import { fixedChains, hooks } from './chains.ts'
import { buildCluster, namespaceOf, type Cluster } from './cluster.ts'
import { markBits } from './match.ts'
import { analysePolicy, compilePolicyChain, conflictPlan, DIRECTIONS, policyChainName, selects, type Direction, type PolicyPlan } from './policy.ts'
import { SetRegistry } from './sets.ts'
import { compareText } from './selector.ts'
import { compileWorkloadChain, resolveWorkloads, type Subject } from './workload.ts'

/** A workload and the policies selecting it, per direction, in namespace/name order. */
interface Selection {
  subject: Subject
  ingress: PolicyPlan[]
  egress: PolicyPlan[]
}

function validateConfig(config: EnforcerConfig): void {
  // The compiler cannot fix a bad config; refusing to compile keeps the kernel as it is.
  if (!/^[a-z0-9]{1,10}$/.test(config.ifacePrefix)) throw new Error(`ifacePrefix ${JSON.stringify(config.ifacePrefix)} must be 1-10 lowercase letters or digits`)
  markBits(config.acceptMark)
}

/** JSON with sorted object keys, so equal objects compare equal whatever their key order. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (typeof v === 'object' && v !== null) {
    const entries = Object.keys(v).sort(compareText).map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

/** One plan per namespace/name, sorted; different objects under one name fail closed. */
function analysePolicies(policies: NetworkPolicy[], problems: Problem[]): PolicyPlan[] {
  const groups = new Map<string, NetworkPolicy[]>()
  for (const p of policies) {
    if (typeof p?.metadata?.name !== 'string' || p.metadata.name === '') continue
    const id = `${namespaceOf(p.metadata)}/${p.metadata.name}`
    groups.set(id, [...(groups.get(id) ?? []), p])
  }
  const plans: PolicyPlan[] = []
  for (const id of [...groups.keys()].sort(compareText)) {
    const group = groups.get(id)!
    if (new Set(group.map((p) => stableJson(p.spec))).size === 1) {
      plans.push(analysePolicy(group[0], problems))
      continue
    }
    const plan = conflictPlan(namespaceOf(group[0].metadata), group[0].metadata.name)
    problems.push({ object: `NetworkPolicy ${id}`, message: 'several different objects share this namespace/name', effect: 'isolated every pod of the namespace for ingress and egress; no traffic allowed by this policy' })
    plans.push(plan)
  }
  return plans
}

function select(subjects: Subject[], plans: PolicyPlan[]): Selection[] {
  return subjects.map((subject) => {
    const pod = subject.pod
    const applying = pod ? plans.filter((p) => selects(p, pod.namespace, pod.labels)) : []
    return { subject, ingress: applying.filter((p) => p.ingress), egress: applying.filter((p) => p.egress) }
  })
}

function familyState(family: Family, cluster: Cluster, selections: Selection[], config: EnforcerConfig): FamilyState {
  const sets = new SetRegistry(family)
  // A policy chain exists only if some local workload jumps to it.
  const used = new Map<string, { plan: PolicyPlan; dir: Direction }>()
  for (const s of selections) for (const dir of DIRECTIONS) for (const plan of s[dir]) used.set(policyChainName(plan, dir), { plan, dir })
  const chains: Chain[] = [...used.values()].map(({ plan, dir }) => compilePolicyChain(plan, dir, cluster, sets, config.acceptMark))
  for (const s of selections) for (const dir of DIRECTIONS) chains.push(compileWorkloadChain(s.subject, dir, s[dir], config.acceptMark))
  chains.push(...fixedChains(family, selections.map((s) => s.subject.iface), config))
  chains.sort((a, b) => compareText(`${a.table} ${a.name}`, `${b.table} ${b.name}`))
  return { family, hooks: hooks(), chains, sets: sets.all() }
}

function sortedProblems(problems: Problem[]): Problem[] {
  const unique = new Map(problems.map((p) => [JSON.stringify([p.object, p.message, p.effect]), p]))
  return [...unique.keys()].sort(compareText).map((k) => unique.get(k)!)
}

export function compile(snapshot: Snapshot, config: EnforcerConfig): DesiredState {
  validateConfig(config)
  const problems: Problem[] = []
  const cluster = buildCluster(snapshot, problems)
  const plans = analysePolicies(snapshot.policies, problems)
  const subjects = resolveWorkloads(snapshot.workloads, cluster, config.ifacePrefix, problems)
  const selections = select(subjects, plans)
  return {
    v4: familyState(4, cluster, selections, config),
    v6: familyState(6, cluster, selections, config),
    problems: sortedProblems(problems),
    workloads: subjects.map((s) => s.iface),
  }
}
