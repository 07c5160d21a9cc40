// What the policies selecting one workload allow in one direction and family,
// as port groups: every rule of every policy is split by port, and all rules
// sharing a port match become one group. A group matches its few peers one
// rule each, or many peers through one union set, so a new connection costs a
// bounded number of set lookups per port group however many policies select
// the pod (a chain per policy would cost one lookup per policy).
import { inSet } from './match.ts'
import type { MemberSource } from './members.ts'
import { peerPart, type PeerPart } from './peers.ts'
import { portMatches, type NamedPortScope } from './ports.ts'
import { policyId, type Direction, type PolicyPlan } from './policy.ts'
import type { SetUser } from './sets.ts'
import { compareText } from './selector.ts'

/** One allow rule of a workload: a port match, a peer match, and who allowed it. */
export interface AllowRule {
  /** Port match tokens (protocol, ports, or a named-port set): the cheap test, placed first. */
  ports: string[]
  /** The port match as people write it, e.g. `tcp:80`, `udp:all`, `all`. */
  label: string
  /** Peer match tokens; empty when some rule allows every peer on these ports. */
  peers: string[]
  /** `namespace/policy rule N` of every policy rule this rule stands for, in order. */
  origins: string[]
}

interface Part {
  peer: PeerPart
  origins: string[]
}

interface Group {
  ports: string[]
  label: string
  /** null once a rule allows every peer. */
  parts: Map<string, Part> | null
  origins: string[]
}

/**
 * The rules of `plans` that allow something in `dir`: grouped by port match
 * (groups sorted by their match), and within a group one rule per peer, or one
 * rule for all of them when there are more than `unionAbove`: up to that many,
 * a new connection costs at most that many lookups in the group and the peers'
 * own sets serve every workload naming them; beyond it, one lookup, at the price
 * of a set copying every peer's addresses.
 */
export function allowRules(plans: PolicyPlan[], dir: Direction, sets: SetUser, unionAbove: number): AllowRule[] {
  const groups = portGroups(plans, dir, sets)
  const field = dir === 'ingress' ? 'src' : 'dst'
  return [...groups.keys()].sort(compareText).flatMap((key) => {
    const g = groups.get(key)!
    const rule = (peers: string[], origins: string[]): AllowRule => ({ ports: g.ports, label: g.label, peers, origins })
    if (g.parts === null) return [rule([], g.origins)]
    const parts = [...g.parts.values()].sort((a, b) => compareText(a.peer.key, b.peer.key))
    if (parts.length === 1 || parts.length <= unionAbove) return parts.map((p) => rule(inSet(ownSet(p.peer, sets), field), p.origins))
    return [rule(inSet(unionSet(parts.map((p) => p.peer), sets), field), g.origins)]
  })
}

/** Every honoured rule of `plans` in `dir`, split by port match: port match text → its peers and origins. */
function portGroups(plans: PolicyPlan[], dir: Direction, sets: SetUser): Map<string, Group> {
  const groups = new Map<string, Group>()
  for (const plan of plans) {
    const d = plan[dir]
    if (!d?.ok) continue
    // A valid direction implies a valid subject selector (analysePolicy checks it first).
    const scope: NamedPortScope = dir === 'ingress' ? { direction: dir, namespace: plan.namespace, subject: plan.subject! } : { direction: dir }
    d.rules.forEach((r, i) => {
      const peers = r.peers === null ? null : r.peers.map((p) => peerPart(p, sets.family)).filter((p) => p !== null)
      // only peers of the other family: this rule allows nothing here
      if (peers?.length === 0) return
      const origin = `${policyId(plan)} rule ${i}`
      for (const port of portMatches(r.ports, scope, sets)) {
        const key = port.tokens.join(' ')
        let g = groups.get(key)
        if (!g) groups.set(key, (g = { ports: port.tokens, label: port.label, parts: new Map(), origins: [] }))
        if (g.origins.at(-1) !== origin) g.origins.push(origin)
        if (peers === null) g.parts = null
        else if (g.parts) for (const p of peers) addOrigin(g.parts, p, origin)
      }
    })
  }
  return groups
}

function addOrigin(parts: Map<string, Part>, peer: PeerPart, origin: string): void {
  const p = parts.get(peer.key)
  if (!p) parts.set(peer.key, { peer, origins: [origin] })
  else if (p.origins.at(-1) !== origin) p.origins.push(origin)
}

/** A peer's own set, shared by every rule naming that peer. */
function ownSet(p: PeerPart, sets: SetUser): string {
  return sets.use(p.kind, p.key, p.type, p.description, p.source)
}

/** One set holding every address of the peers (sorted by key, so equal groups share it). */
function unionSet(peers: PeerPart[], sets: SetUser): string {
  const source: MemberSource = { kind: 'union', parts: peers.map((p) => p.unionPart) }
  // pods first in the words: a long list of blocks is what gets cut at the comment's length
  const words = [...peers.filter((p) => p.kind === 'ip'), ...peers.filter((p) => p.kind !== 'ip')].map((p) => p.description)
  return sets.use('union', JSON.stringify(peers.map((p) => p.key)), 'hash:net', `any of: ${words.join(' or ')}`, source)
}
