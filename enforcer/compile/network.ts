// The cluster-wide part of the layout, from the pod ranges of every node:
// masquerade for pod traffic leaving the cluster, and anti-spoofing for pod
// sources arriving from other nodes. Pure. Nothing here exists while the
// cluster's pod ranges are unknown (no Node objects, no --cluster-cidr), so a
// node without them is programmed exactly as before.
import type { Chain, Family, Hook, IpSet } from '../dataplane/types.ts'
import type { EnforcerConfig, Node } from '../model.ts'
import { CHAINS, podCidrSetName, VXLAN_DEVICE } from '../../shared/names.ts'
import { canonicalCidrs, clusterPodCidrs } from '../network/plan.ts'
import { DROP, inIface, inSet, MASQUERADE, notInSet, rpfilterInvert, rule } from './match.ts'

/** The cluster's pod ranges of one family, sorted: nodes' ranges and the configured ones. */
export function podRanges(nodes: readonly Node[], config: EnforcerConfig, family: Family): string[] {
  return canonicalCidrs([...clusterPodCidrs(nodes), ...config.clusterCidrs]).filter((c) => (c.includes(':') ? 6 : 4) === family)
}

export interface NetworkPart {
  hooks: Hook[]
  chains: Chain[]
  sets: IpSet[]
  /** Rules for the raw table's anti-spoofing chain, after the workload rule. */
  antiSpoofing: Chain['rules']
}

export function networkPart(family: Family, ranges: readonly string[], config: EnforcerConfig): NetworkPart {
  if (!ranges.length) return { hooks: [], chains: [], sets: [], antiSpoofing: [] }
  const set = podCidrSetName(family)
  // frozen: the compiler hands the same part to later compiles, and the writer memoises frozen member lists
  const sets: IpSet[] = [Object.freeze({ name: set, type: 'hash:net', family, members: Object.freeze([...ranges]) as string[], comment: 'every pod range of the cluster' })]
  // A pod source arriving on any interface must route back through it: a local
  // pod's address only comes from its veth (else its /32 or the blackholed
  // range fails the check), another node's only from where its range routes
  // (the underlay for host-gw, the VXLAN device).
  const antiSpoofing = [
    rule([...inSet(set, 'src'), ...rpfilterInvert], DROP, 'spoofed pod source'),
    // anything else arriving over the overlay must come from where it routes too
    rule([...inIface(VXLAN_DEVICE), ...rpfilterInvert], DROP, 'spoofed source over VXLAN'),
  ]
  if (!config.masquerade) return { hooks: [], chains: [], sets, antiSpoofing }
  const masquerade: Chain = {
    name: CHAINS.natPostrouting,
    table: 'nat',
    rules: [rule([...inSet(set, 'src'), ...notInSet(set, 'dst')], MASQUERADE, 'pod traffic leaving the cluster pod ranges')],
  }
  return { hooks: [{ table: 'nat', chain: 'POSTROUTING', target: CHAINS.natPostrouting }], chains: [masquerade], sets, antiSpoofing }
}
