// The fixed part of the layout: hooks from the built-in chains, the FORWARD
// entry chain, dispatch by interface, host traffic and anti-spoofing. These
// have the same shape in both families and depend only on the interface list.
import type { Chain, Family, Hook, Rule } from '../dataplane/types.ts'
import type { EnforcerConfig } from '../model.ts'
import { CHAINS } from '../../shared/names.ts'
import {
  ACCEPT, clearMark, DROP, goto, icmp6Type, inIface, inPrefix, jump, markIsSet, outIface, outPrefix, rpfilterInvert, rule,
} from './match.ts'
import { workloadChainName } from './workload.ts'
import type { NetworkPart } from './network.ts'

export function hooks(): Hook[] {
  return [
    { table: 'filter', chain: 'FORWARD', target: CHAINS.forward },
    { table: 'filter', chain: 'INPUT', target: CHAINS.input },
    { table: 'filter', chain: 'OUTPUT', target: CHAINS.output },
    { table: 'raw', chain: 'PREROUTING', target: CHAINS.rawPrerouting },
  ]
}

/**
 * Egress runs first: the sender's chain DROPs what it denies and marks what it
 * allows. Then the receiver's ingress chain ACCEPTs or DROPs (workload.ts); a
 * packet to a non-wren destination reaches the final ACCEPT by the egress mark.
 * So neither side's policy is skipped.
 */
function forwardChain(c: EnforcerConfig): Chain {
  return {
    name: CHAINS.forward,
    table: 'filter',
    rules: [
      rule([], clearMark(c.acceptMark), 'clear accept mark'),
      rule(inPrefix(c.ifacePrefix), jump(CHAINS.fromWlDispatch), 'from a workload: its egress policy'),
      rule(outPrefix(c.ifacePrefix), jump(CHAINS.toWlDispatch), 'to a workload: its ingress policy'),
      rule(markIsSet(c.acceptMark), ACCEPT, 'policy accepted'),
    ],
  }
}

/** Goto, not jump: the workload chain's RETURN goes straight back to the caller of the dispatch chain. */
function dispatchChain(name: string, ifaces: string[], side: 'in' | 'out'): Chain {
  const rules: Rule[] = ifaces.map((i) =>
    side === 'in' ? rule(inIface(i), goto(workloadChainName(i, 'egress')), `from ${i}`) : rule(outIface(i), goto(workloadChainName(i, 'ingress')), `to ${i}`),
  )
  // An interface without chains (unknown, or its pod not yet known) is dropped: fail closed.
  rules.push(rule([], DROP, 'unknown wren interface'))
  return { name, table: 'filter', rules }
}

/** IPv6 neighbour discovery (router/neighbour solicitation and advertisement) the pod needs to reach its gateway. */
const NDP_TYPES = [133, 135, 136]

/**
 * Pod → own node. Kubernetes requires it (kubelet probes answer through it), so by
 * default it is accepted; otherwise the pod's egress chain judges it, and its
 * verdict comes back to wren-INPUT as the accept mark.
 */
function wlToHostChain(family: Family, ifaces: string[], c: EnforcerConfig): Chain {
  const rules: Rule[] = []
  if (!c.allowWorkloadToHost && family === 6) {
    for (const t of NDP_TYPES) rules.push(rule(icmp6Type(t), ACCEPT, `neighbour discovery type ${t}`))
  }
  for (const i of ifaces) {
    rules.push(c.allowWorkloadToHost ? rule(inIface(i), ACCEPT, `from ${i} to host`) : rule(inIface(i), goto(workloadChainName(i, 'egress')), `from ${i} to host: egress policy`))
  }
  rules.push(rule([], DROP, 'unknown wren interface'))
  return { name: CHAINS.wlToHost, table: 'filter', rules }
}

function inputChain(c: EnforcerConfig): Chain {
  const rules = [rule(inPrefix(c.ifacePrefix), jump(CHAINS.wlToHost), 'from a workload to this host')]
  if (!c.allowWorkloadToHost) rules.push(rule([...inPrefix(c.ifacePrefix), ...markIsSet(c.acceptMark)], ACCEPT, 'egress policy accepted'))
  return { name: CHAINS.input, table: 'filter', rules }
}

/**
 * The fixed chains for one family; `ifaces` are the interfaces that got workload
 * chains, sorted; `network` the cluster-wide part (network.ts), when pod ranges are known.
 */
export function fixedChains(family: Family, ifaces: string[], c: EnforcerConfig, network?: NetworkPart): Chain[] {
  return [
    forwardChain(c),
    dispatchChain(CHAINS.fromWlDispatch, ifaces, 'in'),
    dispatchChain(CHAINS.toWlDispatch, ifaces, 'out'),
    inputChain(c),
    wlToHostChain(family, ifaces, c),
    // "traffic to and from the node where a Pod is running is always allowed": host → pod.
    { name: CHAINS.output, table: 'filter', rules: [rule(outPrefix(c.ifacePrefix), ACCEPT, 'host to workload')] },
    // Anti-spoofing: the source must route back through the interface it came in on.
    { name: CHAINS.rawPrerouting, table: 'raw', rules: [rule([...inPrefix(c.ifacePrefix), ...rpfilterInvert], DROP, 'spoofed source'), ...(network?.antiSpoofing ?? [])] },
    ...(network?.chains ?? []),
  ]
}
