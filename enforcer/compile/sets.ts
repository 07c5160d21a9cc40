// Collects the ipsets one family's chains reference. A set is emitted only
// when a rule asks for it, once per name. Rules name a set by what it selects
// (a MemberSource, plain data); its members are resolved against the cluster
// once per compile, after every chain is built.
import type { Family, IpSet, SetType } from '../dataplane/types.ts'
import { setName, type SetKind } from '../../shared/names.ts'
import { comment } from './match.ts'
import type { MemberSource } from './members.ts'
import { compareText } from './selector.ts'

/** What building a chain needs from the sets: a name for each set it matches. */
export interface SetUser {
  readonly family: Family
  use(kind: SetKind, key: string, type: SetType, description: string, source: MemberSource): string
}

export interface SetRequest {
  name: string
  /** Unambiguous text of what the set selects; equal keys mean equal members. */
  key: string
  type: SetType
  description: string
  source: MemberSource
}

/** Set names are hashes; the same few hundred keys come back on every compile. */
const names = new Map<string, string>()
function cachedSetName(kind: SetKind, family: Family, key: string): string {
  const k = `${kind}\0${family}\0${key}`
  let name = names.get(k)
  if (name === undefined) {
    if (names.size >= 100_000) names.clear()
    names.set(k, (name = setName(kind, family, key)))
  }
  return name
}

export class SetRegistry implements SetUser {
  private readonly byName = new Map<string, SetRequest>()

  constructor(readonly family: Family) {}

  /**
   * Returns the name of the set for `key`, registering it on first use. The
   * name hashes the key (what the set means), never its members, so a pod IP
   * change edits members and leaves every chain that names the set untouched.
   */
  use(kind: SetKind, key: string, type: SetType, description: string, source: MemberSource): string {
    const name = cachedSetName(kind, this.family, key)
    if (!this.byName.has(name)) this.byName.set(name, { name, key: `${kind}\0${key}`, type, description, source })
    return name
  }

  /** The request registered under `name`. */
  request(name: string): SetRequest | undefined {
    return this.byName.get(name)
  }

  /** Registers a request an earlier use() of this family made (a reused chain's), skipping the name's hash. */
  add(r: SetRequest): void {
    if (!this.byName.has(r.name)) this.byName.set(r.name, r)
  }

  /** Every set used, sorted by name; `members` returns sorted, deduplicated members. */
  all(members: (r: SetRequest) => string[]): IpSet[] {
    return this.requests().map((r) => ({ name: r.name, type: r.type, family: this.family, members: members(r), comment: comment(r.description) }))
  }

  /** Every request, sorted by set name. */
  requests(): SetRequest[] {
    return [...this.byName.values()].sort((a, b) => compareText(a.name, b.name))
  }
}

/** Sorted and deduplicated, as IpSet.members must be. */
export function canonicalList(members: string[]): string[] {
  return [...new Set(members)].sort(compareText)
}
