// One NetworkPolicy → a plan: who it selects, and what each direction allows
// (allow.ts turns the plans selecting a workload into its rules).
//
// Failure granularity: a field wren cannot honour anywhere in a direction's
// rules invalidates that whole direction of the policy. The policy still
// isolates the pods it selects in that direction, but contributes no allow
// rule to it (fail closed: a half-understood rule could only ever widen).
import type { NetworkPolicy } from '../model.ts'
import { namespaceOf } from './cluster.ts'
import type { Problem } from '../dataplane/types.ts'
import { parsePeers, type PeerSpec } from './peers.ts'
import { parsePorts, type PortSpec } from './ports.ts'
import { matches, parseSelector, type Labels, type Selector } from './selector.ts'

export type Direction = 'ingress' | 'egress'
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress']

export interface RulePlan {
  peers: PeerSpec[] | null // null: all peers
  ports: PortSpec[] | null // null: all ports
}

export type DirectionPlan = { ok: true; rules: RulePlan[] } | { ok: false; error: string }

export interface PolicyPlan {
  namespace: string
  name: string
  /** null when spec.podSelector is unusable: the policy then selects every pod of its namespace (fail closed). */
  subject: Selector | null
  /** Present for each direction the policy isolates (its effective policyTypes). */
  ingress?: DirectionPlan
  egress?: DirectionPlan
}

export const policyId = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`

type Types = { ingress: boolean; egress: boolean } | { error: string }

/**
 * "policyTypes ... If this field is not specified, it will default based on the
 * existence of ingress or egress rules; policies that contain an egress section
 * are assumed to affect egress, and all policies (whether or not they contain an
 * ingress section) are assumed to affect ingress." (An empty list defaults too,
 * and an empty `egress: []` counts as no egress section, as the API server does.)
 */
function effectiveTypes(spec: NetworkPolicy['spec']): Types {
  const raw = spec.policyTypes
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    return { ingress: true, egress: Array.isArray(spec.egress) && spec.egress.length > 0 }
  }
  if (!Array.isArray(raw)) return { error: 'spec.policyTypes must be a list' }
  const bad = raw.filter((t) => t !== 'Ingress' && t !== 'Egress')
  if (bad.length) return { error: `spec.policyTypes has unknown value ${JSON.stringify(bad[0])}` }
  return { ingress: raw.includes('Ingress'), egress: raw.includes('Egress') }
}

function parseDirection(spec: NetworkPolicy['spec'], dir: Direction, namespace: string): DirectionPlan {
  // "ingress: ... If this field is empty then this NetworkPolicy does not allow
  //  any traffic (and serves solely to ensure that the pods it selects are
  //  isolated by default)." Rules are ORed: traffic matching any rule is allowed.
  const raw: unknown = dir === 'ingress' ? spec.ingress : spec.egress
  if (raw === undefined || raw === null) return { ok: true, rules: [] }
  if (!Array.isArray(raw)) return { ok: false, error: `spec.${dir} must be a list` }
  const peerField = dir === 'ingress' ? 'from' : 'to'
  const rules: RulePlan[] = []
  for (let i = 0; i < raw.length; i++) {
    const at = `spec.${dir}[${i}]`
    const r: unknown = raw[i]
    if (typeof r !== 'object' || r === null) return { ok: false, error: `${at} must be an object` }
    const peers = parsePeers((r as Record<string, unknown>)[peerField], namespace, `${at}.${peerField}`)
    if (!peers.ok) return peers
    const ports = parsePorts((r as Record<string, unknown>).ports, `${at}.ports`)
    if (!ports.ok) return ports
    rules.push({ peers: peers.peers, ports: ports.ports })
  }
  return { ok: true, rules }
}

/** Builds the plan for one policy; every field wren cannot honour becomes a Problem. */
export function analysePolicy(policy: NetworkPolicy, problems: Problem[]): PolicyPlan {
  const namespace = namespaceOf(policy.metadata)
  const name = policy.metadata.name
  const object = `NetworkPolicy ${namespace}/${name}`
  const spec: NetworkPolicy['spec'] = policy.spec ?? ({} as NetworkPolicy['spec'])
  const plan: PolicyPlan = { namespace, name, subject: null }
  // "podSelector: Selects the pods to which this NetworkPolicy object applies ...
  //  An empty podSelector selects all pods in this namespace."
  const subject = parseSelector(spec.podSelector, 'spec.podSelector')
  if (subject.ok) plan.subject = subject.selector
  else problems.push({ object, message: subject.error, effect: 'treated as selecting every pod in the namespace' })
  const types = effectiveTypes(spec)
  if ('error' in types) {
    problems.push({ object, message: types.error, effect: 'isolated selected pods for ingress and egress; no traffic allowed by this policy' })
    plan.ingress = { ok: false, error: types.error }
    plan.egress = { ok: false, error: types.error }
    return plan
  }
  for (const dir of DIRECTIONS) {
    if (!types[dir]) continue
    const d = subject.ok ? parseDirection(spec, dir, namespace) : { ok: false as const, error: subject.error }
    if (!d.ok && subject.ok) problems.push({ object, message: d.error, effect: `isolated selected pods for ${dir}; no ${dir} allowed by this policy` })
    plan[dir] = d
  }
  return plan
}

/** A plan for a namespace/name that appears more than once with different content. */
export function conflictPlan(namespace: string, name: string): PolicyPlan {
  const error = 'several different objects share this namespace/name'
  return { namespace, name, subject: null, ingress: { ok: false, error }, egress: { ok: false, error } }
}

/** Whether the policy applies to a pod: same namespace, and its podSelector matches the pod's labels. */
export function selects(plan: PolicyPlan, namespace: string, labels: Labels): boolean {
  return plan.namespace === namespace && (plan.subject === null || matches(plan.subject, labels))
}
