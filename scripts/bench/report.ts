// Figures, targets and the printed table.

export interface Row {
  figure: string
  measured: string
  target: string
  reference: string
  /** true: target met, false: missed, undefined: no target. */
  ok?: boolean
}

/** Nearest-rank percentile of an unsorted list. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}

export const ms = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? `${x.toFixed(0)} ms` : `${x.toFixed(1)} ms`) : 'n/a')

export function summary(xs: number[]): string {
  return `p50 ${ms(percentile(xs, 50))}, p99 ${ms(percentile(xs, 99))}, max ${ms(Math.max(...xs))}`
}

export function row(figure: string, measured: string, target = '', reference = '', ok?: boolean): Row {
  return { figure, measured, target, reference, ok }
}

export function printTable(title: string, rows: Row[]): void {
  const cells = rows.map((r) => [r.figure, r.measured, r.target || '—', r.reference || '—', r.ok === undefined ? '' : r.ok ? 'ok' : 'MISSED'])
  const head = ['figure', 'measured', 'target', 'reference', 'verdict']
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`
  const out = [`\n${title}`, line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)]
  process.stdout.write(out.join('\n') + '\n')
}

export function note(text: string): void {
  process.stdout.write(`  ${text}\n`)
}
