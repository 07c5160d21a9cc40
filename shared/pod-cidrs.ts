// A Node's pod ranges, decided in one place for the agent (objects.ts
// normalises Nodes with it) and install-cni (node-cidrs.ts).

/** spec.podCIDRs (primary family first, as the API orders it), else the older single spec.podCIDR. */
export function podCidrsOf(node: { spec?: { podCIDRs?: string[]; podCIDR?: string } } | undefined): string[] {
  const list = node?.spec?.podCIDRs?.filter(Boolean) ?? []
  if (list.length) return list
  return node?.spec?.podCIDR ? [node.spec.podCIDR] : []
}
