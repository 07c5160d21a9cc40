// Reading what the kernel holds, restricted to wren's own objects, from
// `iptables-save` and `ipset save` text. Pure parsers; the writer runs the
// commands. Rules are identified by the "wren:HASH" in their comment, never by
// their text: iptables-save reorders and normalises what was written.
import { OWNER_PREFIX } from '../../shared/names.ts'
import type { Family } from './types.ts'

/** A rule in a built-in chain, kept so hooks can be checked by position. */
export interface ForeignRule {
  /** The rule as saved, after "-A CHAIN " (replayable as "-D CHAIN <spec>"). */
  spec: string
  /** True when it is wren's: it jumps or goes to a chain under the owner prefix. */
  ours: boolean
  hash?: string
}

export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

export interface KernelTable {
  /** wren chain → hashes of its rules in order ('' for a rule without one). */
  chains: Map<string, string[]>
  /** Built-in chains that contain at least one wren rule, with all their rules in order. */
  foreign: Map<string, ForeignRule[]>
}

export interface KernelSet {
  /** Whatever the kernel says, e.g. the list:sets of wren's earlier layout (plan.ts destroys those first). */
  type: string
  family: Family
  maxelem: number
  members: Set<string>
}

const HASH_RE = /--comment "?wren:([0-9a-f]{16})/
const TARGET_RE = /(?:^| )-[jg] (\S+)/

export function emptyTable(): KernelTable {
  return { chains: new Map(), foreign: new Map() }
}

/**
 * Parses `iptables-save` output into one KernelTable per table present. `owner`
 * is the name prefix that makes a chain (and a hook into it) wren's.
 */
export function parseSave(text: string, owner: string = OWNER_PREFIX): Map<string, KernelTable> {
  const tables = new Map<string, KernelTable>()
  let cur: KernelTable | undefined
  // rules of every non-wren chain seen so far, kept only if one of them turns out to be ours
  let others = new Map<string, ForeignRule[]>()
  const finish = () => {
    if (!cur) return
    for (const [chain, rules] of others) if (rules.some((r) => r.ours)) cur.foreign.set(chain, rules)
    others = new Map()
  }
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      finish()
      cur = emptyTable()
      tables.set(line.slice(1).trim(), cur)
    } else if (!cur) {
      continue
    } else if (line.startsWith(':')) {
      const name = line.slice(1, line.indexOf(' '))
      if (name.startsWith(owner)) cur.chains.set(name, [])
    } else if (line.startsWith('-A ')) {
      const sp = line.indexOf(' ', 3)
      const chain = line.slice(3, sp < 0 ? undefined : sp)
      const spec = sp < 0 ? '' : line.slice(sp + 1)
      const hash = HASH_RE.exec(spec)?.[1]
      const owned = cur.chains.get(chain)
      if (owned) owned.push(hash ?? '')
      else if (BUILTIN_CHAINS.has(chain)) {
        const ours = TARGET_RE.exec(spec)?.[1]?.startsWith(owner) ?? false
        let list = others.get(chain)
        if (!list) others.set(chain, (list = []))
        list.push({ spec, ours, hash })
      }
    } else if (line.startsWith('COMMIT')) {
      finish()
    }
  }
  finish()
  return tables
}

/** Parses `ipset save` output, keeping only sets whose names start with the owner prefix. */
export function parseIpsetSave(text: string, owner: string = OWNER_PREFIX): Map<string, KernelSet> {
  const sets = new Map<string, KernelSet>()
  for (const line of text.split('\n')) {
    if (line.startsWith('add ')) {
      const sp = line.indexOf(' ', 4)
      const set = sets.get(line.slice(4, sp))
      if (set) set.members.add(line.slice(sp + 1).trim())
    } else if (line.startsWith('create ')) {
      const f = line.split(' ')
      if (!f[1].startsWith(owner)) continue
      const opt = (k: string) => {
        const i = f.indexOf(k)
        return i < 0 ? undefined : f[i + 1]
      }
      sets.set(f[1], {
        type: f[2],
        family: opt('family') === 'inet6' ? 6 : 4,
        // a list:set has `size` for maxelem, and no family (plan.ts does not compare it)
        maxelem: Number(opt('maxelem') ?? opt('size') ?? 65536),
        members: new Set(),
      })
    }
  }
  return sets
}
