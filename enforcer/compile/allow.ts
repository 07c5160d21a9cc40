// What the policies selecting one workload allow in one direction and family,
// as port groups: every rule of every policy is split by port, and the peers
// of all rules sharing a port match are merged into one set. A new connection
// then costs one set lookup per port group it could belong to, however many
// policies select the pod (a chain per policy costs one lookup per policy).
import type { SetType } from '../dataplane/types.ts'
import type { SetKind } from '../../shared/names.ts'
import { inSet } from './match.ts'
import type { MemberSource } from './members.ts'
import { peerPart, type PeerPart } from './peers.ts'
import { portMatches, type NamedPortScope } from './ports.ts'
import { policyId, type Direction, type PolicyPlan } from './policy.ts'
import type { SetUser } from './sets.ts'
import { compareText } from './selector.ts'

/** One port match of a workload, and who may use it. */
export interface PortGroup {
  /** Port match tokens (protocol, ports, or a named-port set): the cheap test, placed first. */
  ports: string[]
  /** The port match as people write it, e.g. `tcp:80`, `udp:all`, `all`. */
  label: string
  /** Peer match tokens; empty when some rule allows every peer on these ports. */
  peers: string[]
  /** `namespace/policy rule N` of every rule contributing to the group, in order. */
  origins: string[]
}

interface Collecting {
  ports: string[]
  label: string
  /** null once a rule allows every peer. */
  parts: Map<string, PeerPart> | null
  origins: string[]
}

/** The rules of `plans` that allow something in `dir`, grouped by port match; groups sorted by their match. */
export function portGroups(plans: PolicyPlan[], dir: Direction, sets: SetUser): PortGroup[] {
  const groups = new Map<string, Collecting>()
  for (const plan of plans) {
    const d = plan[dir]
    if (!d?.ok) continue
    // A valid direction implies a valid subject selector (analysePolicy checks it first).
    const scope: NamedPortScope = dir === 'ingress' ? { direction: dir, namespace: plan.namespace, subject: plan.subject! } : { direction: dir }
    d.rules.forEach((r, i) => {
      let parts: PeerPart[] | null = null
      if (r.peers !== null) {
        parts = r.peers.map((p) => peerPart(p, sets.family)).filter((p) => p !== null)
        // only peers of the other family: this rule allows nothing here
        if (parts.length === 0) return
      }
      for (const port of portMatches(r.ports, scope, sets)) {
        const key = port.tokens.join(' ')
        let g = groups.get(key)
        if (!g) groups.set(key, (g = { ports: port.tokens, label: port.label, parts: new Map(), origins: [] }))
        g.origins.push(`${policyId(plan)} rule ${i}`)
        if (parts === null) g.parts = null
        else if (g.parts) for (const p of parts) g.parts.set(p.key, p)
      }
    })
  }
  const field = dir === 'ingress' ? 'src' : 'dst'
  return [...groups.keys()].sort(compareText).map((key) => {
    const g = groups.get(key)!
    const peers = g.parts === null ? [] : inSet(peersSet([...g.parts.values()], sets), field)
    return { ports: g.ports, label: g.label, peers, origins: g.origins }
  })
}

/** One peer: its own set (shared with every group naming it alone); several: a union set of all their addresses. */
function peersSet(parts: PeerPart[], sets: SetUser): string {
  if (parts.length === 1) {
    const p = parts[0]
    return sets.use(p.kind, p.key, p.type, p.description, p.source)
  }
  const sorted = [...parts].sort((a, b) => compareText(a.key, b.key))
  const source: MemberSource = { kind: 'union', parts: sorted.map((p) => p.unionPart) }
  const kind: SetKind = 'union'
  const type: SetType = 'hash:net'
  return sets.use(kind, JSON.stringify(sorted.map((p) => p.key)), type, `any of: ${sorted.map((p) => p.description).join('; ')}`, source)
}
