// Collects the ipsets one family's chains reference. A set is emitted only
// when a rule asks for it, once per name, with its members computed once.
import type { Family, IpSet, SetType } from '../dataplane/types.ts'
import { setName, type SetKind } from '../../shared/names.ts'
import { comment } from './match.ts'
import { compareText } from './selector.ts'

export class SetRegistry {
  private readonly sets = new Map<string, IpSet>()

  constructor(readonly family: Family) {}

  /**
   * Returns the name of the set for `key`, registering it on first use. The
   * name hashes the key (what the set means), never its members, so a pod IP
   * change edits members and leaves every chain that names the set untouched.
   */
  use(kind: SetKind, key: string, type: SetType, description: string, members: () => string[]): string {
    const name = setName(kind, this.family, key)
    if (!this.sets.has(name)) {
      const sorted = [...new Set(members())].sort(compareText)
      this.sets.set(name, { name, type, family: this.family, members: sorted, comment: comment(description) })
    }
    return name
  }

  all(): IpSet[] {
    return [...this.sets.values()].sort((a, b) => compareText(a.name, b.name))
  }
}
