// Desired (prepared) vs actual (kernel or cache) → the restore inputs of one
// apply, in the order they must run. Pure.
//
//   a. sets:    one `ipset restore`: new sets created and filled; small changes
//               as del/add; large changes filled into tempSetName(name) and swapped
//   b. tables:  per (family, table) an `iptables-restore --noflush` block (the
//               writer sends a family's tables in one restore, the two families
//               side by side): changed or new chains declared, flushed and
//               rewritten whole; hook rules fixed
//   c. stale:   per (family, table) a second block flushing and deleting stale
//               chains, which nothing references once (b) is in
//   d. sets:    one `ipset restore` destroying stale sets, now unreferenced;
//               list:sets first (wren's earlier layout made them): a set a
//               list:set holds cannot be destroyed
import { tempSetName } from '../../shared/names.ts'
import type { ForeignRule, KernelSet, KernelTable } from './kernel.ts'
import type { Prepared, PreparedHook, PreparedSet, PreparedTable } from './prepare.ts'
import { RenderError, renderMember, renderSetCreate } from './render.ts'
import type { Family, Table } from './types.ts'

export interface ActualState {
  tables: Map<Family, Map<Table, KernelTable>>
  sets: Map<string, KernelSet>
}

export interface TableWrite {
  family: Family
  table: Table
  /** Phase b input, absent when the table needs nothing. */
  write?: string
  /** Phase c input, absent when no chain is stale. */
  remove?: string
}

export interface PlanStats {
  setsCreated: number
  setsUpdated: number
  setsSwapped: number
  setsDestroyed: number
  membersAdded: number
  membersRemoved: number
  chainsWritten: number
  chainsDeleted: number
  hooksInserted: number
  hooksRemoved: number
}

export interface Plan {
  sets?: string
  tables: TableWrite[]
  destroySets?: string
  stats: PlanStats
}

export function emptyStats(): PlanStats {
  return {
    setsCreated: 0, setsUpdated: 0, setsSwapped: 0, setsDestroyed: 0, membersAdded: 0,
    membersRemoved: 0, chainsWritten: 0, chainsDeleted: 0, hooksInserted: 0, hooksRemoved: 0,
  }
}

export function makePlan(desired: Prepared, actual: ActualState, maxelem: number): Plan {
  const stats = emptyStats()
  const sets = planSets(desired, actual.sets, maxelem, stats)
  const tables: TableWrite[] = []
  for (const family of [4, 6] as const) {
    const want = desired.families.get(family) ?? new Map<Table, PreparedTable>()
    const have = actual.tables.get(family) ?? new Map<Table, KernelTable>()
    for (const table of new Set([...want.keys(), ...have.keys()])) {
      const empty: PreparedTable = { chains: new Map(), hooks: new Map() }
      const tw = planTable(family, table, want.get(table) ?? empty, have.get(table), stats)
      if (tw.write || tw.remove) tables.push(tw)
    }
  }
  const stale = [...actual.sets.keys()].filter((n) => !desired.sets.has(n) && !sets.tempsDestroyed.has(n))
  stale.sort((a, b) => Number(actual.sets.get(b)!.type === 'list:set') - Number(actual.sets.get(a)!.type === 'list:set'))
  stats.setsDestroyed = stale.length
  const destroySets = stale.length ? stale.map((n) => `destroy ${n}`).join('\n') + '\n' : undefined
  return { sets: sets.text, tables, destroySets, stats }
}

function planSets(desired: Prepared, have: Map<string, KernelSet>, maxelem: number, stats: PlanStats) {
  const creates: string[] = []
  const edits: string[] = []
  const swaps: string[] = []
  const tempsDestroyed = new Set<string>()
  for (const [name, ps] of desired.sets) {
    const k = have.get(name)
    const create = (n: string) => renderSetCreate(n, ps.set.type, ps.set.family, maxelem)
    if (!k) {
      stats.setsCreated++
      stats.membersAdded += ps.members.size
      creates.push(create(name), ...[...ps.members].map((m) => renderMember('add', name, m)))
      continue
    }
    const { adds, dels } = memberDiff(ps, k)
    const sameHeader = k.type === ps.set.type && k.family === ps.set.family && k.maxelem === maxelem
    if (sameHeader && adds.length + dels.length === 0) continue
    if (sameHeader && (adds.length + dels.length) * 2 <= Math.max(k.members.size, ps.members.size)) {
      stats.setsUpdated++
      stats.membersAdded += adds.length
      stats.membersRemoved += dels.length
      // deletions first: a peer that lost its IP must never be matched while the new one is added
      edits.push(...dels.map((m) => renderMember('del', name, m)), ...adds.map((m) => renderMember('add', name, m)))
      continue
    }
    if (k.type !== ps.set.type || k.family !== ps.set.family)
      throw new RenderError(`set ${name} exists as ${k.type} IPv${k.family}, desired ${ps.set.type} IPv${ps.set.family}: the kernel cannot swap across types; set names must encode type and family`)
    stats.setsSwapped++
    stats.membersAdded += adds.length
    stats.membersRemoved += dels.length
    const tmp = tempSetName(name)
    if (have.has(tmp)) {
      swaps.push(`destroy ${tmp}`) // left by an interrupted apply; never referenced by a rule
      tempsDestroyed.add(tmp)
    }
    swaps.push(create(tmp), ...[...ps.members].map((m) => renderMember('add', tmp, m)), `swap ${tmp} ${name}`, `destroy ${tmp}`)
  }
  const all = [...creates, ...swaps, ...edits]
  return { text: all.length ? all.join('\n') + '\n' : undefined, tempsDestroyed }
}

function memberDiff(ps: PreparedSet, k: KernelSet): { adds: string[]; dels: string[] } {
  const adds: string[] = []
  const dels: string[] = []
  // the writer's cache holds the very member set of the last apply (expectedState): unchanged, nothing to walk
  if (ps.members === k.members) return { adds, dels }
  for (const m of ps.members) if (!k.members.has(m)) adds.push(m)
  for (const m of k.members) if (!ps.members.has(m)) dels.push(m)
  return { adds, dels }
}

function sameList(a: readonly string[], b: readonly string[] | undefined): boolean {
  return !!b && a.length === b.length && a.every((x, i) => x === b[i])
}

function planTable(family: Family, table: Table, want: PreparedTable, have: KernelTable | undefined, stats: PlanStats): TableWrite {
  const decl: string[] = []
  const body: string[] = []
  for (const [name, rc] of want.chains) {
    const current = have?.chains.get(name)
    if (sameList(rc.hashes, current)) continue
    stats.chainsWritten++
    decl.push(`:${name} - [0:0]`)
    // the declaration alone flushes under --noflush; the explicit -F says so to a reader of the logged input
    if (current) body.push(`-F ${name}`)
    body.push(...rc.lines)
  }
  const hookLines = planHooks(want.hooks, have?.foreign ?? new Map(), stats)
  const write = decl.length || hookLines.length ? restoreText(table, [...decl, ...hookLines.deletes, ...body, ...hookLines.inserts]) : undefined
  const stale = [...(have?.chains.keys() ?? [])].filter((n) => !want.chains.has(n))
  stats.chainsDeleted += stale.length
  // declaring a chain under --noflush flushes it, so every stale chain is empty before the first -X
  const remove = stale.length ? restoreText(table, [...stale.map((n) => `:${n} - [0:0]`), ...stale.map((n) => `-X ${n}`)]) : undefined
  return { family, table, write, remove }
}

function restoreText(table: Table, lines: string[]): string {
  return `*${table}\n${lines.join('\n')}\nCOMMIT\n`
}

/**
 * wren's hooks must head their built-in chain, once each, in order. When a
 * chain is not exactly so, all of wren's rules in it are deleted (by their saved
 * spec) and the hooks inserted again at the top, inside the same atomic restore.
 * A hook no longer wanted is deleted the same way.
 */
function planHooks(want: Map<string, PreparedHook[]>, foreign: Map<string, ForeignRule[]>, stats: PlanStats) {
  const deletes: string[] = []
  const inserts: string[] = []
  for (const chain of new Set([...want.keys(), ...foreign.keys()])) {
    const hooks = want.get(chain) ?? []
    const rules = foreign.get(chain) ?? []
    const ok = hooks.every((h, i) => rules[i]?.ours && rules[i].hash === h.hash) && rules.slice(hooks.length).every((r) => !r.ours)
    if (ok) continue
    for (const r of rules) {
      if (!r.ours) continue
      deletes.push(`-D ${chain} ${r.spec}`)
      stats.hooksRemoved++
    }
    hooks.forEach((h, i) => inserts.push(`-I ${chain} ${i + 1} ${h.spec}`))
    stats.hooksInserted += hooks.length
  }
  return { deletes, inserts, length: deletes.length + inserts.length }
}
