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
import type { EnforcerConfig, NetworkPolicy, Node, Snapshot } from '../model.ts'
import { fixedChains, hooks } from './chains.ts'
import { networkPart, podRanges, type NetworkPart } from './network.ts'
import { ClusterBuilder } from './cluster-builder.ts'
import { namespaceOf, type Cluster } from './cluster.ts'
import { IdentityMemo } from './identity.ts'
import { comment, markBits } from './match.ts'
import { MemberCache } from './members.ts'
import { allowRules } from './allow.ts'
import { analysePolicy, conflictPlan, DIRECTIONS, selects, type PolicyPlan } from './policy.ts'
import { SetRegistry, type SetRequest, type SetUser } from './sets.ts'
import { compareText } from './selector.ts'
import { stableJson } from '../../shared/stable-json.ts'
import { deepFrozen } from '../../shared/frozen.ts'
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
  if (!Number.isInteger(config.unionAbove) || config.unionAbove < 0) throw new Error(`unionAbove ${config.unionAbove} must be an integer of at least 0`)
}

/**
 * Text that differs whenever two policy objects could compile differently:
 * JSON, with the values JSON would conflate (NaN and null, an absent and an
 * undefined field) spelled apart. Used only as a cache key.
 */
function contentKey(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'string') return x.startsWith('\0') ? '\0' + x : x
    if (typeof x === 'number') return Number.isFinite(x) ? x : `\0${x}`
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol' || typeof x === 'bigint') return `\0${typeof x}:${String(x)}`
    return x
  })
}

/** A policy's plan and the problems analysing it found, kept while the policy's content is unchanged. */
interface Analysis {
  plan: PolicyPlan
  problems: Problem[]
}

/** Chains and the sets building them asked for, registered again when the chains are reused. */
interface Compiled {
  chains: Chain[]
  uses: SetRequest[]
}

/** Passes set lookups through and remembers the requests they made. */
class RecordingSets implements SetUser {
  readonly uses: SetRequest[] = []
  readonly family: Family
  constructor(private readonly inner: SetRegistry) {
    this.family = inner.family
  }
  use(...args: Parameters<SetUser['use']>): string {
    const name = this.inner.use(...args)
    this.uses.push(this.inner.request(name)!)
    return name
  }
}

/** Chains are shared between compiles and with the writer: frozen, so nobody can edit a cached one. */
function frozen(chain: Chain): Chain {
  for (const r of chain.rules) {
    Object.freeze(r.match)
    Object.freeze(r.action)
    Object.freeze(r)
  }
  Object.freeze(chain.rules)
  return Object.freeze(chain)
}

/**
 * The compiler with memory: compile(snapshot) returns exactly what the pure
 * compile() returns for the same snapshot (tests hold it to that after every
 * kind of change), but reuses what an earlier call already worked out:
 * - a policy's analysis, while its content is unchanged (it depends on the
 *   policy alone, never on the cluster);
 * - set members, while no pod the set's selector matches (before or after)
 *   changed (members.ts explains why that is enough);
 * - workload and fixed chains, while their inputs (pod, policy plans by
 *   identity) are unchanged, so the writer sees the same objects and skips
 *   rendering them.
 * Every cache keeps only what the last compile used.
 */
export class Compiler {
  private readonly clusters = new ClusterBuilder()
  private readonly members = new MemberCache()
  private analyses = new Map<string, Analysis>()
  private chains = new Map<string, Compiled>()
  private usedChains = new Map<string, Compiled>()
  /** Content keys of deep-frozen policy objects. */
  private policyKeys = new IdentityMemo<NetworkPolicy, string>()
  /** A number per plan object, for reuse keys: plans live as long as their policy's content. */
  private planIds = new WeakMap<PolicyPlan, number>()
  private nextPlanId = 0
  /** The last policy list, when deep-frozen, and what it analysed to. */
  private lastPolicies?: { list: NetworkPolicy[]; plans: PolicyPlan[]; problems: Problem[] }
  /** Per family, the last selections and the chains and set requests they gave. */
  private lastFamilies = new Map<Family, FamilyChains & { selections: Selection[]; network: NetworkPart }>()
  /** Per family, the node list last seen and the cluster-wide part its pod ranges gave. */
  private lastNetwork = new Map<Family, { nodes: readonly Node[]; key: string; part: NetworkPart }>()

  constructor(private readonly config: EnforcerConfig) {}

  compile(snapshot: Snapshot): DesiredState {
    validateConfig(this.config)
    const problems: Problem[] = []
    const { cluster, changed } = this.clusters.build(snapshot, problems)
    this.members.update(changed)
    const plans = this.analysePolicies(snapshot.policies, problems)
    const subjects = resolveWorkloads(snapshot.workloads, cluster, this.config.ifacePrefix, problems)
    const selections = select(subjects, plans)
    const out: DesiredState = {
      v4: this.familyState(4, cluster, selections, problems, this.network(4, snapshot.nodes ?? [])),
      v6: this.familyState(6, cluster, selections, problems, this.network(6, snapshot.nodes ?? [])),
      problems: sortedProblems(problems),
      workloads: subjects.map((s) => s.iface),
    }
    this.members.prune()
    this.chains = this.usedChains
    this.usedChains = new Map()
    return out
  }

  /**
   * One plan per namespace/name, sorted; different objects under one name fail
   * closed. The very same frozen list as last time (the store keeps it while no
   * policy changed) has the same plans.
   */
  private analysePolicies(policies: NetworkPolicy[], problems: Problem[]): PolicyPlan[] {
    const last = this.lastPolicies
    if (last?.list === policies) {
      problems.push(...last.problems)
      return last.plans
    }
    const found: Problem[] = []
    const plans = this.analyseAll(policies, found)
    problems.push(...found)
    // every policy in the identity memo was deep-frozen when it went in
    const frozenList = Object.isFrozen(policies) && policies.every((p) => this.policyKeys.get(p) !== undefined)
    this.lastPolicies = frozenList ? { list: policies, plans, problems: found } : undefined
    return plans
  }

  private analyseAll(policies: NetworkPolicy[], problems: Problem[]): PolicyPlan[] {
    const groups = new Map<string, NetworkPolicy[]>()
    for (const p of policies) {
      if (typeof p?.metadata?.name !== 'string' || p.metadata.name === '') continue
      const id = `${namespaceOf(p.metadata)}/${p.metadata.name}`
      const group = groups.get(id)
      if (group) group.push(p)
      else groups.set(id, [p])
    }
    const analyses = new Map<string, Analysis>()
    const plans: PolicyPlan[] = []
    for (const id of [...groups.keys()].sort(compareText)) {
      const group = groups.get(id)!
      if (group.length === 1 || new Set(group.map((p) => stableJson(p.spec))).size === 1) {
        let key = this.policyKeys.get(group[0])
        if (key === undefined) {
          key = contentKey([namespaceOf(group[0].metadata), group[0].metadata.name, group[0].spec])
          this.policyKeys.set(group[0], key)
        }
        let a = analyses.get(key) ?? this.analyses.get(key)
        if (!a) {
          const found: Problem[] = []
          a = { plan: analysePolicy(group[0], found), problems: found }
        }
        analyses.set(key, a)
        problems.push(...a.problems)
        plans.push(a.plan)
        continue
      }
      const plan = conflictPlan(namespaceOf(group[0].metadata), group[0].metadata.name)
      problems.push({ object: `NetworkPolicy ${id}`, message: 'several different objects share this namespace/name', effect: 'isolated every pod of the namespace for ingress and egress; no traffic allowed by this policy' })
      plans.push(plan)
    }
    this.analyses = analyses
    return plans
  }

  private planId(plan: PolicyPlan): number {
    let id = this.planIds.get(plan)
    if (id === undefined) this.planIds.set(plan, (id = this.nextPlanId++))
    return id
  }

  /** Chains built by `build` from exactly the inputs in `key`, reused while the key is unchanged; their sets registered in `sets`. */
  private reuse(key: string, sets: SetRegistry, build: (sets: SetUser) => Chain[]): Compiled {
    let c = this.usedChains.get(key) ?? this.chains.get(key)
    if (c) for (const r of c.uses) sets.add(r)
    else {
      const recorder = new RecordingSets(sets)
      c = { chains: build(recorder).map(frozen), uses: recorder.uses }
    }
    this.usedChains.set(key, c)
    return c
  }

  /** The cluster-wide part for one family, the same object while the pod ranges are the same. */
  private network(family: Family, nodes: readonly Node[]): NetworkPart {
    const last = this.lastNetwork.get(family)
    // by identity only for a deep-frozen list (the store's): anything else may have changed in place
    if (last?.nodes === nodes && deepFrozen(nodes)) return last.part
    const ranges = podRanges(nodes, this.config, family)
    const part = last && last.key === ranges.join(' ') ? last.part : networkPart(family, ranges, this.config)
    this.lastNetwork.set(family, { nodes, key: ranges.join(' '), part })
    return part
  }

  private familyState(family: Family, cluster: Cluster, selections: Selection[], problems: Problem[], network: NetworkPart): FamilyState {
    // The chains and the sets they name depend only on the selections (the plans by identity) and the
    // cluster-wide part; members on the cluster.
    const last = this.lastFamilies.get(family)
    const same = last && last.network === network && sameSelections(last.selections, selections)
    const { chains, requests, reused } = same ? last : this.familyChains(family, selections, network)
    for (const [key, c] of reused) this.usedChains.set(key, c)
    this.lastFamilies.set(family, { selections, network, chains, requests, reused })
    const sets = requests.map((r) => ({ name: r.name, type: r.type, family, members: this.fitting(r, this.members.members(r, family, cluster), problems), comment: comment(r.description) }))
    if (network.sets.length) sets.push(...network.sets)
    sets.sort((a, b) => compareText(a.name, b.name))
    return { family, hooks: [...hooks(), ...network.hooks], chains, sets }
  }

  /**
   * The members, or none when there are more than a set may hold (maxelem):
   * the kernel would refuse the whole apply, and a cut set would allow an
   * arbitrary part. Empty, the rules matching the set allow nothing (fail
   * closed) and everything else is still programmed.
   */
  private fitting(r: SetRequest, members: string[], problems: Problem[]): string[] {
    const max = this.config.setMaxElem
    if (members.length <= max) return members
    problems.push({
      object: `ipset ${r.name} (${r.description})`,
      message: `${members.length} entries, more than --set-max-elem ${max}`,
      effect: 'the set is left empty: the policy rules matching it allow nothing until --set-max-elem is raised',
    })
    return []
  }

  private familyChains(family: Family, selections: Selection[], network: NetworkPart): FamilyChains {
    const { config } = this
    const sets = new SetRegistry(family)
    const reused: [string, Compiled][] = []
    const reuse = (key: string, build: (sets: SetUser) => Chain[]) => {
      const c = this.reuse(key, sets, build)
      reused.push([key, c])
      return c.chains
    }
    const chains: Chain[] = []
    for (const s of selections) {
      for (const dir of DIRECTIONS) {
        const plans = s[dir]
        const key = JSON.stringify(['workload', family, s.subject.iface, s.subject.pod?.namespace ?? null, s.subject.pod?.name ?? null, dir, plans.map((p) => this.planId(p))])
        chains.push(...reuse(key, (sets) => [compileWorkloadChain(s.subject, dir, plans, allowRules(plans, dir, sets, config.unionAbove), config.acceptMark)]))
      }
    }
    const ifaces = selections.map((s) => s.subject.iface)
    const netKey = network.sets.flatMap((s) => s.members)
    chains.push(...reuse(JSON.stringify(['fixed', family, ifaces, netKey]), () => fixedChains(family, ifaces, config, network)))
    // Same order as comparing `${table} ${name}` (no table name is a prefix of another), without building strings.
    chains.sort((a, b) => compareText(a.table, b.table) || compareText(a.name, b.name))
    // frozen: the writer may then take the same list back for the same chains
    return { chains: Object.freeze(chains) as Chain[], requests: sets.requests(), reused }
  }
}

/** What one family's chains were built from, and what they came to. */
interface FamilyChains {
  chains: Chain[]
  /** The sets the chains name, sorted by name. */
  requests: SetRequest[]
  /** The workload and fixed chains by reuse key, kept as used when the chains are reused whole. */
  reused: [string, Compiled][]
}

/** Same interfaces, pods and policy plans (by identity), in the same order: the same chains. */
function sameSelections(a: Selection[], b: Selection[]): boolean {
  if (a.length !== b.length) return false
  const samePlans = (x: PolicyPlan[], y: PolicyPlan[]) => x.length === y.length && x.every((p, i) => p === y[i])
  return a.every((s, i) => {
    const t = b[i]
    return s.subject.iface === t.subject.iface && s.subject.pod?.namespace === t.subject.pod?.namespace && s.subject.pod?.name === t.subject.pod?.name && (s.subject.pod === null) === (t.subject.pod === null) && samePlans(s.ingress, t.ingress) && samePlans(s.egress, t.egress)
  })
}

function select(subjects: Subject[], plans: PolicyPlan[]): Selection[] {
  const byNamespace = new Map<string, PolicyPlan[]>()
  for (const p of plans) {
    const list = byNamespace.get(p.namespace)
    if (list) list.push(p)
    else byNamespace.set(p.namespace, [p])
  }
  return subjects.map((subject) => {
    const pod = subject.pod
    const applying = pod ? (byNamespace.get(pod.namespace) ?? []).filter((p) => selects(p, pod.namespace, pod.labels)) : []
    return { subject, ingress: applying.filter((p) => p.ingress), egress: applying.filter((p) => p.egress) }
  })
}

function sortedProblems(problems: Problem[]): Problem[] {
  const unique = new Map(problems.map((p) => [JSON.stringify([p.object, p.message, p.effect]), p]))
  return [...unique.keys()].sort(compareText).map((k) => unique.get(k)!)
}

/** The pure compiler: a fresh Compiler, so nothing is remembered between calls. */
export function compile(snapshot: Snapshot, config: EnforcerConfig): DesiredState {
  return new Compiler(config).compile(snapshot)
}
