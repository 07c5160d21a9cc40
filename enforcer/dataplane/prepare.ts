// Desired state checked and rendered once per apply: chain names, rule tokens,
// and every reference (jump/goto to a wren chain, --match-set) resolved against
// the same desired state, so that the writer can never emit a rule pointing at
// a chain or set it is not also creating. Pure.
import { OWNER_PREFIX } from '../../shared/names.ts'
import { RenderError, canonicalMembers, checkSetName, renderChain, renderRule, ruleHashes, type RenderedChain } from './render.ts'
import type { Chain, DesiredState, Family, FamilyState, IpSet, Rule, Table } from './types.ts'

export interface PreparedHook {
  hash: string
  /** The rule after "-I CHAIN N ". */
  spec: string
}

export interface PreparedTable {
  chains: Map<string, RenderedChain>
  /** Built-in chain → wren's hook rules, in the order they must head that chain. */
  hooks: Map<string, PreparedHook[]>
}

export interface PreparedSet {
  set: IpSet
  members: Set<string>
}

export interface Prepared {
  families: Map<Family, Map<Table, PreparedTable>>
  sets: Map<string, PreparedSet>
}

/**
 * Renderings kept from the previous prepare, so an apply that changes one
 * chain does not hash and render ten thousand rules again. Keys are the full
 * content (JSON of the rules, NUL-joined members); each prepare keeps only the
 * entries it used, so the memo never outgrows one desired state.
 */
export class PrepareMemo {
  chains = new Map<string, RenderedChain>()
  sets = new Map<string, Set<string>>()
  /**
   * The same, keyed by object identity, for frozen chains and member lists
   * (the Compiler hands out the very same frozen objects while they are
   * unchanged): no key text to build. Frozen means their content cannot have
   * changed since they were rendered.
   */
  frozenChains = new WeakMap<Chain, { key: string; rc: RenderedChain; refs: Reference[] }>()
  frozenMembers = new WeakMap<readonly string[], { head: string; key: string; members: Set<string> }>()
  /** Per family, the chains part of the last prepare when its chain list was frozen (the Compiler hands the same list back while no chain changed). */
  families = new Map<Family, FamilyChains>()
}

/** A family's chains, rendered and checked for all but the references to sets (sets may differ). */
interface FamilyChains {
  chains: readonly Chain[]
  owner: string
  /** Per table, chain name → rendering; shared between prepares, never written to once built. */
  tables: Map<Table, Map<string, RenderedChain>>
  keyed: [string, RenderedChain][]
  checks: { table: Table; place: string; refs: Reference[] }[]
}

function deeplyFrozen(c: Chain): boolean {
  return Object.isFrozen(c) && Object.isFrozen(c.rules) && c.rules.every((r) => Object.isFrozen(r) && Object.isFrozen(r.match) && Object.isFrozen(r.action))
}

export function hookRule(chain: string, target: string): Rule {
  return { match: [], action: ['-j', target], comment: `${OWNER_PREFIX} hook from ${chain}` }
}

/** `owner`: every chain and set must carry it, or the writer could not find them again. */
export function prepare(state: DesiredState, maxelem: number, owner: string = OWNER_PREFIX, memo = new PrepareMemo()): Prepared {
  const next = new PrepareMemo()
  const sets = new Map<string, PreparedSet>()
  for (const fs of [state.v4, state.v6]) {
    for (const set of fs.sets) {
      checkSetName(set.name)
      if (!set.name.startsWith(owner)) throw new RenderError(`set ${set.name} does not start with ${owner}`)
      if (set.family !== fs.family) throw new RenderError(`set ${set.name} is IPv${set.family} but listed under v${fs.family}`)
      if (sets.has(set.name)) throw new RenderError(`set ${set.name} is defined twice`)
      const head = `${set.type}\0${set.family}\0${set.name}\0`
      const isFrozen = Object.isFrozen(set.members)
      const known = isFrozen ? memo.frozenMembers.get(set.members) : undefined
      const hit = known?.head === head ? known : undefined
      const key = hit?.key ?? `${head}${set.members.join('\0')}`
      const members = hit?.members ?? memo.sets.get(key) ?? canonicalMembers(set)
      next.sets.set(key, members)
      if (isFrozen && !hit) memo.frozenMembers.set(set.members, { head, key, members })
      if (members.size > maxelem) throw new RenderError(`set ${set.name} has ${members.size} members, more than maxelem ${maxelem}`)
      sets.set(set.name, { set, members })
    }
  }
  const families = new Map<Family, Map<Table, PreparedTable>>()
  families.set(4, prepareFamily(state.v4, sets, owner, memo, next))
  families.set(6, prepareFamily(state.v6, sets, owner, memo, next))
  memo.chains = next.chains
  memo.sets = next.sets
  memo.families = next.families
  return { families, sets }
}

function prepareFamily(fs: FamilyState, sets: Map<string, PreparedSet>, owner: string, memo: PrepareMemo, next: PrepareMemo): Map<Table, PreparedTable> {
  let fc = memo.families.get(fs.family)
  if (!fc || fc.chains !== fs.chains || fc.owner !== owner || !Object.isFrozen(fs.chains)) fc = familyChains(fs, owner, memo)
  next.families.set(fs.family, fc)
  for (const [key, rc] of fc.keyed) next.chains.set(key, rc)
  const tables = new Map<Table, PreparedTable>()
  for (const [t, chains] of fc.tables) tables.set(t, { chains, hooks: new Map() })
  for (const { table, place, refs } of fc.checks) checkReferences(refs, place, tables.get(table)!, sets, fs.family)
  const table = (t: Table) => {
    let pt = tables.get(t)
    if (!pt) tables.set(t, (pt = { chains: new Map(), hooks: new Map() }))
    return pt
  }
  for (const h of fs.hooks) {
    const pt = table(h.table)
    const rule = hookRule(h.chain, h.target)
    checkReferences(ruleReferences(rule, 0), `v${fs.family} hook ${h.table}/${h.chain}`, pt, sets, fs.family, false)
    const list = pt.hooks.get(h.chain) ?? []
    if (list.some((x) => x.spec.endsWith(` -j ${h.target}`))) throw new RenderError(`hook ${h.table}/${h.chain} → ${h.target} listed twice`)
    const [hash] = ruleHashes(h.chain, [rule])
    list.push({ hash, spec: renderRule('', '', rule, hash).trim() })
    pt.hooks.set(h.chain, list)
  }
  return tables
}

/** Renders a family's chains (from the memo where it has them) and lists the references each must resolve. */
function familyChains(fs: FamilyState, owner: string, memo: PrepareMemo): FamilyChains {
  const fc: FamilyChains = { chains: fs.chains, owner, tables: new Map(), keyed: [], checks: [] }
  for (const c of fs.chains) {
    let chains = fc.tables.get(c.table)
    if (!chains) fc.tables.set(c.table, (chains = new Map()))
    if (!c.name.startsWith(owner)) throw new RenderError(`chain ${c.name} does not start with ${owner}`)
    if (chains.has(c.name)) throw new RenderError(`chain ${c.name} is defined twice in v${fs.family} ${c.table}`)
    // a chain in the frozen memo was deeply frozen when it went in, and frozen is for good
    let known = memo.frozenChains.get(c)
    if (!known) {
      const key = `${c.name}\0${JSON.stringify(c.rules)}`
      known = { key, rc: memo.chains.get(key) ?? renderChain(c.name, c.rules), refs: chainReferences(c) }
      if (deeplyFrozen(c)) memo.frozenChains.set(c, known)
      else fc.chains = [] // not reusable: an unfrozen chain may change in place
    }
    fc.keyed.push([known.key, known.rc])
    fc.checks.push({ table: c.table, place: `v${fs.family} chain ${c.name}`, refs: known.refs })
    chains.set(c.name, known.rc)
  }
  return fc
}

/** A wren chain a rule jumps to, or a set it matches: what must exist in the same desired state. */
interface Reference {
  rule: number
  kind: 'chain' | 'set'
  name: string
}

const JUMPS: ReadonlySet<string> = new Set(['-j', '-g', '--jump', '--goto'])

function ruleReferences(rule: Rule, index: number): Reference[] {
  const tokens = [...rule.match, ...rule.action]
  const out: Reference[] = []
  for (let i = 0; i + 1 < tokens.length; i++) {
    const [flag, name] = [tokens[i], tokens[i + 1]]
    if (JUMPS.has(flag) && name.startsWith(OWNER_PREFIX)) out.push({ rule: index, kind: 'chain', name })
    if (flag === '--match-set') out.push({ rule: index, kind: 'set', name })
  }
  return out
}

/** The references of a chain's rules, worked out once per frozen chain (the check itself runs on every prepare). */
function chainReferences(c: Chain): Reference[] {
  return c.rules.flatMap((r, i) => ruleReferences(r, i))
}

function checkReferences(refs: Reference[], place: string, pt: PreparedTable, sets: Map<string, PreparedSet>, family: Family, numbered = true): void {
  for (const { rule: i, kind, name } of refs) {
    const where = numbered ? `${place} rule ${i}` : place
    if (kind === 'chain' && !pt.chains.has(name)) throw new RenderError(`${where}: jumps to ${name}, which is not in the desired state of that table`)
    if (kind !== 'set') continue
    const s = sets.get(name)
    if (!s) throw new RenderError(`${where}: matches set ${name}, which is not in the desired state`)
    if (s.set.family !== family) throw new RenderError(`${where}: IPv${family} rule matches IPv${s.set.family} set ${name}`)
  }
}
