// What bench-cluster measured, turned into the table's rows and the notes under it.
import type { RouteResult, Mode, Times } from './cluster-routes.ts'
import type { PairRuns } from './cluster-traffic.ts'
import { ms, percentile, row, summary, type Row } from './report.ts'

export interface ModeFigures {
  mode: Mode
  /** Pods wired per node, and how long wiring them all took. */
  podsPerNode: number
  wireMs: number
  routes: RouteResult
  conn: PairRuns
  iperf: PairRuns
}

const ROUTE_TARGET_MS = 100
const ENTRIES: Record<Mode, string> = { 'host-gw': 'route', vxlan: 'route + neighbour + FDB' }
const median = (xs: number[]) => percentile(xs, 50)
const list = (xs: number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(', ')
const short = (xs: number[]) => `p50 ${ms(percentile(xs, 50))}, p99 ${ms(percentile(xs, 99))}`

function routeRows(f: ModeFigures): Row[] {
  const r = f.routes
  const one = (what: string, key: keyof Times) => {
    const p99 = percentile(r.agent[key], 99)
    const ref = `by hand ${short(r.hand[key])}; API watch event ${short(r.watch[key])}`
    return row(`${f.mode}: Node ${what} (${ENTRIES[f.mode]})`, summary(r.agent[key]), `p99 ≤ ${ROUTE_TARGET_MS} ms`, ref, p99 <= ROUTE_TARGET_MS)
  }
  return [one('added → programmed on a', 'add'), one('deleted → withdrawn on a', 'del')]
}

/** The ratio of each round (cross ÷ same, measured back to back), then the median of those. */
function ratio(p: PairRuns): number {
  return median(p.cross.map((x, i) => x / p.same[i]!))
}

function trafficRows(f: ModeFigures): Row[] {
  const c = f.conn
  const t = f.iperf
  return [
    row(`${f.mode}: new TCP conns/s across nodes (median)`, `${median(c.cross).toFixed(0)}/s`, '', `same node ${median(c.same).toFixed(0)}/s`),
    row(`${f.mode}: conn rate across ÷ same node`, `${ratio(c).toFixed(2)}x`, '', `runs/s: across [${list(c.cross)}], same [${list(c.same)}]`),
    row(`${f.mode}: iperf3 across nodes (median)`, `${median(t.cross).toFixed(2)} Gbit/s`, '', `same node ${median(t.same).toFixed(2)} Gbit/s`),
    row(`${f.mode}: throughput across ÷ same node`, `${ratio(t).toFixed(2)}x`, '', `runs Gbit/s: across [${list(t.cross, 2)}], same [${list(t.same, 2)}]`),
  ]
}

export function buildRows(modes: ModeFigures[], reps: number): { title: string; rows: Row[]; notes: string[] } {
  const pods = modes[0]?.podsPerNode ?? 0
  const title = `wren cluster benchmark: 2 nodes × ${pods} pods (each node a netns with its own agent), ${reps} Node add/delete repetitions per underlay`
  const rows = modes.flatMap((f) => [...routeRows(f), ...trafficRows(f)])
  const notes = modes.flatMap((f) => [
    `${f.mode}: ${2 * f.podsPerNode} pods wired by bin/wren ADD in ${ms(f.wireMs)}; route latency = API create/delete → the last of node a's ${ENTRIES[f.mode]} lines in \`ip monitor\`; by hand = the same route written to a running \`ip -batch\` in node a → its line (the method's floor); API watch = the same event reaching a watcher in this process`,
    `${f.mode}: slowest Node additions ${slowest(f.routes.agent.add)} ms, deletions ${slowest(f.routes.agent.del)} ms`,
    splitNote(f),
  ])
  return { title, rows, notes }
}

/** The agent's own account of a Node change (additions and deletions together), from its log. */
function splitNote(f: ModeFigures): string {
  const s = f.routes.split
  if (!s) return `${f.mode}: no agent log split`
  const p = (xs: number[]) => `p50 ${ms(percentile(xs, 50))} / p99 ${ms(percentile(xs, 99))}`
  const unmatched = s.unmatched ? ` (${s.unmatched} changes not found in the log)` : ''
  return `${f.mode}: node a's agent, per Node change (its log, ±1 ms): API event → sync start ${p(s.eventToSyncMs)}; compile + dataplane write ${p(s.dataplaneMs)}; then route sync ${p(s.routeSyncMs)}${unmatched}`
}

function slowest(xs: number[]): string {
  return list([...xs].sort((a, b) => b - a).slice(0, 3), 1)
}
