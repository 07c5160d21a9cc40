// Label selectors (metav1.LabelSelector): validation, matching and a canonical
// key, so two selectors that mean the same thing share one ipset.
import type { LabelSelector } from '../model.ts'

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'

export interface Requirement {
  key: string
  op: Operator
  values: string[] // sorted, deduplicated; empty for Exists/DoesNotExist
}

/** A validated selector: the AND of its requirements (none = matches everything). */
export interface Selector {
  reqs: Requirement[]
}

export type Labels = ReadonlyMap<string, string>

export type SelectorResult = { ok: true; selector: Selector } | { ok: false; error: string }

const OPERATORS: readonly string[] = ['In', 'NotIn', 'Exists', 'DoesNotExist']

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function sortedUnique(values: string[]): string[] {
  return [...new Set(values)].sort(compareText)
}

/** Code-unit order: locale-independent, so output never depends on the host. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function parseExpression(e: unknown, at: string): Requirement | string {
  if (!isRecord(e) || typeof e.key !== 'string' || e.key === '') return `${at}: key must be a non-empty string`
  const op = e.operator
  if (typeof op !== 'string' || !OPERATORS.includes(op)) return `${at}: unsupported operator ${JSON.stringify(op)}`
  const values = e.values ?? []
  if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) return `${at}: values must be strings`
  // "If the operator is In or NotIn, the values array must be non-empty. If the
  // operator is Exists or DoesNotExist, the values array must be empty."
  if ((op === 'In' || op === 'NotIn') && values.length === 0) return `${at}: operator ${op} needs values`
  if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) return `${at}: operator ${op} takes no values`
  return { key: e.key, op: op as Operator, values: sortedUnique(values as string[]) }
}

/**
 * Validates a selector. `matchLabels` entries become `In` requirements with one
 * value: "matchLabels ... is equivalent to an element of matchExpressions, whose
 * key field is key, the operator is In, and the values array contains only value.
 * The requirements are ANDed." An absent selector is treated like `{}`.
 */
export function parseSelector(sel: LabelSelector | undefined, at: string): SelectorResult {
  if (sel === undefined || sel === null) return { ok: true, selector: { reqs: [] } }
  if (!isRecord(sel)) return { ok: false, error: `${at} must be an object` }
  const reqs: Requirement[] = []
  const ml = sel.matchLabels ?? {}
  if (!isRecord(ml)) return { ok: false, error: `${at}.matchLabels must be an object` }
  for (const [key, value] of Object.entries(ml)) {
    if (key === '' || typeof value !== 'string') return { ok: false, error: `${at}.matchLabels[${JSON.stringify(key)}] must be a string` }
    reqs.push({ key, op: 'In', values: [value] })
  }
  const me = sel.matchExpressions ?? []
  if (!Array.isArray(me)) return { ok: false, error: `${at}.matchExpressions must be a list` }
  for (let i = 0; i < me.length; i++) {
    const r = parseExpression(me[i], `${at}.matchExpressions[${i}]`)
    if (typeof r === 'string') return { ok: false, error: r }
    reqs.push(r)
  }
  return { ok: true, selector: { reqs: canonicalReqs(reqs) } }
}

function canonicalReqs(reqs: Requirement[]): Requirement[] {
  const byText = new Map<string, Requirement>()
  for (const r of reqs) byText.set(JSON.stringify([r.key, r.op, r.values]), r)
  return [...byText.keys()].sort(compareText).map((k) => byText.get(k)!)
}

function matchesReq(r: Requirement, labels: Labels): boolean {
  const v = labels.get(r.key)
  switch (r.op) {
    case 'In':
      return v !== undefined && r.values.includes(v)
    case 'NotIn':
      // NotIn also matches objects that do not carry the key at all.
      return v === undefined || !r.values.includes(v)
    case 'Exists':
      return v !== undefined
    case 'DoesNotExist':
      return v === undefined
  }
}

/** "An empty label selector matches all objects"; otherwise every requirement must hold. */
export function matches(sel: Selector, labels: Labels): boolean {
  return sel.reqs.every((r) => matchesReq(r, labels))
}

/** Unambiguous canonical text (JSON of sorted requirements), used to key sets. */
export function selectorKey(sel: Selector): string {
  return JSON.stringify(sel.reqs.map((r) => [r.key, r.op, r.values]))
}

/** Short human form for comments, e.g. `app=web,tier in (a b),!debug`; `all` when empty. */
export function describeSelector(sel: Selector): string {
  if (sel.reqs.length === 0) return 'all'
  return sel.reqs
    .map((r) => {
      if (r.op === 'In') return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in ${r.values.join(' ')}`
      if (r.op === 'NotIn') return `${r.key} notin ${r.values.join(' ')}`
      return r.op === 'Exists' ? `${r.key} exists` : `${r.key} absent`
    })
    .join(',')
}

/** Labels of an object as a map; non-string scalars (YAML `v: 1`) are stringified. */
export function labelMap(labels: unknown): Map<string, string> {
  const out = new Map<string, string>()
  if (!isRecord(labels)) return out
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v === 'string') out.set(k, v)
    else if (typeof v === 'number' || typeof v === 'boolean') out.set(k, String(v))
  }
  return out
}
