// Local workloads: which host interfaces get chains, and their per-direction
// chains (wren-fw-IFACE for what the pod sends, wren-tw-IFACE for what it receives).
import type { Chain, Problem, Rule } from '../dataplane/types.ts'
import type { LocalWorkload } from '../model.ts'
import { workloadChain } from '../../shared/names.ts'
import { podKey, type Cluster } from './cluster.ts'
import type { AllowRule } from './allow.ts'
import { ACCEPT, clearMark, ctEstablished, ctInvalid, DROP, markIsSet, RETURN, rule, setMark, validIface } from './match.ts'
import { policyId, type Direction, type PolicyPlan } from './policy.ts'
import { compareText } from './selector.ts'

export interface Subject {
  iface: string
  /** The pod behind the interface; null when the runtime gave no pod identity (unlabelled, selected by nothing). */
  pod: { namespace: string; name: string; labels: Map<string, string> } | null
}

const identityOf = (w: LocalWorkload): string => JSON.stringify([w.namespace ?? null, w.pod ?? null])

function problemFor(w: LocalWorkload, message: string): Problem {
  return { object: `Workload ${JSON.stringify(w.hostIface)}`, message, effect: 'no chains for this interface; its traffic is dropped' }
}

/** Interfaces claimed by two different pods are ambiguous: neither gets chains. */
function uniqueByIface(workloads: LocalWorkload[], prefix: string, problems: Problem[]): LocalWorkload[] {
  const byIface = new Map<string, LocalWorkload[]>()
  for (const w of workloads) {
    if (typeof w?.hostIface !== 'string' || !validIface(w.hostIface, prefix)) {
      problems.push(problemFor(w, `host interface is not ${prefix} followed by up to ${15 - prefix.length} lowercase letters or digits`))
      continue
    }
    byIface.set(w.hostIface, [...(byIface.get(w.hostIface) ?? []), w])
  }
  const out: LocalWorkload[] = []
  for (const [iface, list] of byIface) {
    if (new Set(list.map(identityOf)).size > 1) problems.push(problemFor(list[0], `host interface ${iface} is claimed by several pods`))
    else out.push(list[0])
  }
  return out.sort((a, b) => compareText(a.hostIface, b.hostIface))
}

function resolveOne(w: LocalWorkload, cluster: Cluster, problems: Problem[]): Subject | null {
  const hasNs = typeof w.namespace === 'string' && w.namespace !== ''
  const hasPod = typeof w.pod === 'string' && w.pod !== ''
  if (!hasNs && !hasPod) return { iface: w.hostIface, pod: null }
  if (!hasNs || !hasPod) {
    problems.push(problemFor(w, 'workload names only half a pod identity (namespace or pod missing)'))
    return null
  }
  const key = podKey(w.namespace!, w.pod!)
  const pods = cluster.byKey.get(key) ?? []
  if (pods.length !== 1) {
    // Until the pod (and so its labels) is known, no policy can be evaluated for it.
    const message = pods.length === 0 ? `waiting for pod ${key}` : `pod ${key} appears ${pods.length} times`
    problems.push({ object: `Pod ${key}`, message, effect: `no chains for ${w.hostIface}; its traffic is dropped` })
    return null
  }
  return { iface: w.hostIface, pod: { namespace: pods[0].namespace, name: pods[0].name, labels: pods[0].labels } }
}

/** The workloads that get chains, sorted by interface; the rest are reported. */
export function resolveWorkloads(workloads: LocalWorkload[], cluster: Cluster, prefix: string, problems: Problem[]): Subject[] {
  const out: Subject[] = []
  for (const w of uniqueByIface(workloads, prefix, problems)) {
    const s = resolveOne(w, cluster, problems)
    if (s) out.push(s)
  }
  return out
}

export const workloadChainName = (iface: string, dir: Direction): string => workloadChain(dir === 'egress' ? 'fw' : 'tw', iface)

/**
 * The chain judging one direction of one workload. `policies` are the policies
 * selecting the pod for that direction, in namespace/name order; `allows` what
 * they allow (allow.ts).
 *
 * "a pod is isolated for ingress if there is any NetworkPolicy that both selects
 * the pod and has "Ingress" in its policyTypes" (likewise egress); an isolated
 * pod accepts only what some such policy allows (policies are additive), a
 * non-isolated pod accepts everything.
 *
 * Ingress (wren-tw-, reached from wren-FORWARD only, after the sender's egress
 * chain let the packet through) is the last judge: an allowed packet is
 * ACCEPTed at once. Egress (wren-fw-, also reached from wren-INPUT): allowing
 * sets the accept mark and returns, so the receiver's ingress still runs.
 */
export function compileWorkloadChain(subject: Subject, dir: Direction, policies: PolicyPlan[], allows: AllowRule[], mark: number): Chain {
  const who = subject.pod ? `workload ${subject.pod.namespace}/${subject.pod.name}` : `workload ${subject.iface}`
  const rules: Rule[] = [rule(ctEstablished, ACCEPT, `${who} established`), rule(ctInvalid, DROP, `${who} invalid`)]
  if (dir === 'egress') rules.push(rule([], clearMark(mark), `${who} clear accept mark`))
  for (const g of allows) {
    const text = `${dir} ${g.label} allowed by ${g.origins.join(', ')}`
    const match = [...g.ports, ...g.peers]
    if (dir === 'ingress') rules.push(rule(match, ACCEPT, text))
    else rules.push(rule(match, setMark(mark), text), rule(markIsSet(mark), RETURN, text))
  }
  if (policies.length > 0) rules.push(rule([], DROP, `${who} no policy allowed ${dir}: isolated by ${policies.map(policyId).join(', ')}`))
  else rules.push(rule([], dir === 'ingress' ? ACCEPT : setMark(mark), `${who} not isolated for ${dir}`))
  return { name: workloadChainName(subject.iface, dir), table: 'filter', rules }
}
