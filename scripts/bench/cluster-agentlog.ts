// Where an agent's time goes between a Node change in the API and its routes in
// the kernel, from its own log (--log-level debug, millisecond timestamps). A
// Node change runs one agent sync: compile + dataplane write (the "applied"
// line carries its duration), then the route sync ("routes between nodes
// programmed"). So for each change made at wall time T:
//   event → sync start   = (applied.time - applied.ms) - T   (watch delivery, store, runner)
//   dataplane            = applied.ms
//   route sync           = routes.time - applied.time
// Each part is good to about a millisecond (the log's resolution).
import type { LogEntry } from './agentlog.ts'

export interface AgentSplit {
  eventToSyncMs: number[]
  dataplaneMs: number[]
  routeSyncMs: number[]
  /** Changes with no "routes … programmed" line after them (should be 0). */
  unmatched: number
}

const timeOf = (e: LogEntry) => Date.parse(e.time)

/** `changes`: wall-clock ms of each create/delete, in order. */
export function splitAgentTime(entries: LogEntry[], changes: number[]): AgentSplit {
  const out: AgentSplit = { eventToSyncMs: [], dataplaneMs: [], routeSyncMs: [], unmatched: 0 }
  const routes = entries.filter((e) => e.msg === 'routes between nodes programmed')
  const applied = entries.filter((e) => e.msg === 'applied')
  changes.forEach((t, i) => {
    const next = changes[i + 1] ?? Infinity
    // the log's ms floor can put a line up to 1 ms before the change's sub-ms time
    const r = routes.find((e) => timeOf(e) >= Math.floor(t) && timeOf(e) < next)
    const a = r && applied.filter((e) => timeOf(e) >= Math.floor(t) && timeOf(e) <= timeOf(r)).pop()
    if (!r || !a) return void out.unmatched++
    const syncStart = timeOf(a) - Number(a.ms)
    out.eventToSyncMs.push(Math.max(0, syncStart - t))
    out.dataplaneMs.push(Number(a.ms))
    out.routeSyncMs.push(timeOf(r) - timeOf(a))
  })
  return out
}
