// Connectivity matrices: rows are sources (pods, the outside host), columns are
// destination:port, a cell is what a real connection did. Expected cells are
// written in the scenarios as one string per row; this module parses them,
// compares them with what was measured and prints both side by side.
import type { Expect, Scenario, Step } from './types.ts'
import type { Outcome } from '../lib/probe.ts'

/** What a probe measured; `wrong` = reached a server, but not the expected one. */
export type Measured = Outcome | 'wrong' | '.'

export interface Cell {
  row: string
  col: string
  expect: Expect
  got: Measured
  detail?: string
}

export type Matrix = Cell[][]

const EXPECTS: readonly string[] = ['ok', 'x', 'nodns', '.']

/** Parses a step's expected grid; every row and column must be given, nothing more. */
export function expectedGrid(sc: Scenario, step: Step): Expect[][] {
  const rowIds = new Set(sc.rows.map((r) => r.id))
  for (const k of Object.keys(step.expect)) {
    if (!rowIds.has(k)) throw new Error(`${sc.seed} "${step.title}": unknown row ${k}`)
  }
  return sc.rows.map((r) => {
    const line = step.expect[r.id]
    if (line === undefined) throw new Error(`${sc.seed} "${step.title}": no expectation for row ${r.id}`)
    const cells = line.trim().split(/\s+/)
    if (cells.length !== sc.columns.length) {
      throw new Error(`${sc.seed} "${step.title}" row ${r.id}: ${cells.length} cells for ${sc.columns.length} columns`)
    }
    for (const c of cells) if (!EXPECTS.includes(c)) throw new Error(`${sc.seed} "${step.title}" row ${r.id}: bad cell ${c}`)
    return cells as Expect[]
  })
}

export function mismatches(m: Matrix): Cell[] {
  return m.flat().filter((c) => c.got !== c.expect)
}

function cellText(c: Cell): string {
  return c.got === c.expect ? c.got : `*${c.got}/${c.expect}`
}

/**
 * The matrix as text: measured cells; a mismatch shows `*measured/expected`.
 * Row labels are source ids, column labels the scenario's column ids.
 */
export function formatMatrix(sc: Scenario, m: Matrix): string {
  const head = ['', ...sc.columns.map((c) => c.id)]
  const body = m.map((cells, i) => [sc.rows[i]!.id, ...cells.map(cellText)])
  const widths = head.map((h, j) => Math.max(h.length, ...body.map((r) => r[j]!.length)))
  const line = (r: string[]) => r.map((t, j) => t.padEnd(widths[j]!)).join('  ').trimEnd()
  const out = [line(head), ...body.map(line)]
  const bad = mismatches(m)
  for (const c of bad) out.push(`  * ${c.row} -> ${c.col}: measured ${c.got}, expected ${c.expect}${c.detail ? ` (${c.detail})` : ''}`)
  return out.map((l) => `  ${l}`).join('\n')
}

export const LEGEND = 'cells: ok reached (right server answered)  x blocked (timed out)  nodns name did not resolve  . not probed  *measured/expected = MISMATCH'
