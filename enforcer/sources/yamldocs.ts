// A manifest file's text → the plain values of its documents (`---`).
//
// Why two parsers: the `yaml` package builds a full document tree (CST, AST)
// before handing out plain values, which costs ~1.2 s and a few hundred MB of
// garbage for a 2.7 MB folder (5,000 pods); js-yaml goes straight to plain
// values, ~10x faster. js-yaml runs with its core schema, which is what `yaml`
// does by default (YAML 1.2 core: no timestamps, no `<<` merge keys), so both
// read a valid manifest the same way. Whatever js-yaml refuses, and any text
// with an anchor (js-yaml shares aliased nodes without the alias-expansion cap
// that `yaml` enforces), goes to `yaml`, whose verdict and error message (with
// line and column) stand: only the speed of the common case differs.
import { createRequire } from 'node:module'
import { CORE_SCHEMA, loadAll } from 'js-yaml'

// `yaml` only when a text needs it: loading it costs ~30 ms of the agent's start.
type YamlModule = typeof import('yaml')
let yamlModule: YamlModule | undefined
const yaml = (): YamlModule => (yamlModule ??= createRequire(import.meta.url)('yaml') as YamlModule)

export type ParsedDocs = { ok: true; docs: unknown[] } | { ok: false; message: string }

/** `&name` where YAML allows a node property: at a line start or after a space or flow indicator. */
const ANCHOR = /(?:^|[\s,[{])&[^\s,[\]{}]/

/** ANCHOR.test(text), without running the regex over a text that has no `&` at all (most manifests). */
function hasAnchor(text: string): boolean {
  return text.includes('&') && ANCHOR.test(text)
}

export function parseDocuments(text: string): ParsedDocs {
  if (!hasAnchor(text)) {
    try {
      return { ok: true, docs: loadAll(text, null, { schema: CORE_SCHEMA }) }
    } catch {
      // fall through: the reference parser decides, and words the error
    }
  }
  return parseStrict(text)
}

/** The `yaml` package's reading of the text (the reference). */
export function parseStrict(text: string): ParsedDocs {
  const docs = yaml().parseAllDocuments(text)
  const broken = docs.flatMap((d) => d.errors)
  if (broken.length) return { ok: false, message: broken[0].message.trim() }
  try {
    return { ok: true, docs: docs.map((d) => d.toJS()) }
  } catch (e) {
    // e.g. aliases expanding past the cap that guards against "billion laughs"
    return { ok: false, message: (e as Error).message }
  }
}

/** A line that starts a document (`---` alone or before content); YAML forbids it inside one. */
const DOC_START = /^---(?=[ \t\r\n]|$)/gm
/** Only blank and comment lines. */
const BLANK = /^(?:[ \t]*(?:#.*)?(?:\r?\n|$))*$/
/** Directives and document-end markers, which tie neighbouring documents together. */
const NOT_SPLITTABLE = /^(?:%|\.\.\.(?:[ \t\r\n]|$))/m

/**
 * The text cut before each document-start line, so that unchanged documents
 * can be recognised by their text; undefined when a cut could change the
 * meaning (directives, `...`, anchors). Parsing each piece with
 * parseDocuments() gives the documents of the whole text, in order.
 */
export function splitDocuments(text: string): string[] | undefined {
  if (((text.includes('%') || text.includes('...')) && NOT_SPLITTABLE.test(text)) || hasAnchor(text)) return undefined
  const out: string[] = []
  let from = 0
  for (const m of text.matchAll(DOC_START)) {
    // comments before the first marker are no document of their own: they stay with it
    const lead = from === 0 && BLANK.test(text.slice(0, m.index))
    if (m.index > from && !lead) out.push(text.slice(from, m.index))
    if (!lead) from = m.index
  }
  out.push(text.slice(from))
  return out
}

/** One piece of splitDocuments(): its documents, or undefined if js-yaml refuses it (ask parseDocuments on the whole text). */
export function parsePiece(piece: string): unknown[] | undefined {
  try {
    return loadAll(piece, null, { schema: CORE_SCHEMA })
  } catch {
    return undefined
  }
}
