// What a run measured, turned into the table's rows and the notes under it.
import { applyCosts, milestones, type ApplyCost, type LogEntry } from './agentlog.ts'
import type { ConnResult } from './connrate.ts'
import type { EditRun } from './edits.ts'
import type { RawTimes } from './rawload.ts'
import { ms, percentile, row, summary, type Row } from './report.ts'
import type { Options } from '../bench-enforcer.ts'

export interface Figures {
  options: Options
  folder: { files: number; objects: number; bytes: number }
  wireMs: number
  coldWallMs: number
  cold: { status: any; entries: LogEntry[]; spawnedAtWall: number }
  /** Reading + parsing the whole manifests folder once, in the benchmark process. */
  parseMs: number
  raw: RawTimes
  captured: { ruleLines: number; setLines: number }
  labels: EditRun
  policy: EditRun
  policyName: string
  conn: ConnResult
  kernelAfter: any
  memory: { hwmMiB: number; rssMiB: number }
}

const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ')

function costLine(what: string, c: ApplyCost): string {
  const p = (xs: number[]) => (xs.length ? `p50 ${ms(percentile(xs, 50))} / p99 ${ms(percentile(xs, 99))}` : 'none logged')
  return `${what}: agent sync ${p(c.syncMs)} = compile ${p(c.compileMs)} + writer ${p(c.writerMs)}; writer kernel read ${p(c.readMs)}, writes ${p(c.writeMs)}, restores/apply ${c.restores.length ? percentile(c.restores, 50) : '-'}`
}

function coldRows(f: Figures): Row[] {
  const agentMs = applyCosts(f.cold.entries).syncMs[0] ?? f.cold.status.lastApply.durationMs
  const ratio = f.coldWallMs / f.raw.totalMs
  const rawText = `raw load ${ms(f.raw.totalMs)} (ipset ${ms(f.raw.ipsetMs)} + iptables ${ms(f.raw.iptablesMs)})`
  return [
    row('cold sync: spawn → programmed', ms(f.coldWallMs), '≤ 2000 ms', rawText, f.coldWallMs <= 2000),
    row('cold sync ÷ raw load', `${ratio.toFixed(2)}x`, '≤ 1.5x', rawText, ratio <= 1.5),
    row('cold sync: agent first apply (compile+write)', ms(agentMs), '', rawText),
  ]
}

function editRow(figure: string, r: EditRun, targetP99: number): Row[] {
  const p99 = percentile(r.wallMs, 99)
  return [
    row(`${figure}: file in place → /synced`, summary(r.wallMs), `p99 ≤ ${targetP99} ms`, `in-agent ${summary(r.agentMs)}; writing the file ${summary(r.writeMs)}`, p99 <= targetP99),
  ]
}

function kernelRows(f: Figures): Row[] {
  const k = f.cold.status.kernel
  return [
    row('chains / rules (v4; v6)', `${k.v4.chains} / ${k.v4.rules}; ${k.v6.chains} / ${k.v6.rules}`, '', `${f.captured.ruleLines} rule lines saved`),
    row('ipsets / members', `${k.sets} / ${k.members}`, '', `${f.captured.setLines} ipset lines saved`),
    row('agent peak RSS (VmHWM)', `${f.memory.hwmMiB.toFixed(0)} MiB`, '≤ 200 MB', `RSS at end ${f.memory.rssMiB.toFixed(0)} MiB`, f.memory.hwmMiB * 1.048576 <= 200),
  ]
}

/** Rounds alternate none / policies back to back, so each round's ratio cancels slow drift; the median round counts. */
function connRows(f: Figures): Row[] {
  const none = percentile(f.conn.none, 50)
  const withP = percentile(f.conn.withPolicies, 50)
  const ratio = percentile(f.conn.none.map((n, i) => f.conn.withPolicies[i] / n), 50)
  return [
    row(`new conns/s, ${f.conn.policies} policies on receiver (median)`, `${withP.toFixed(0)}/s`, '', `no policy ${none.toFixed(0)}/s`),
    row('conn rate ratio (median of rounds)', `${ratio.toFixed(3)}x`, '≥ 0.9x', `runs: none [${list(f.conn.none)}], policies [${list(f.conn.withPolicies)}]`, ratio >= 0.9),
  ]
}

export function buildRows(f: Figures): { title: string; rows: Row[]; notes: string[] } {
  const o = f.options
  const known = f.cold.status.known
  const title = `wren-enforcer benchmark: ${known.Pod} pods, ${known.NetworkPolicy} policies, ${known.Namespace} namespaces, ${known.workloads} local workloads (${f.folder.files} manifest files, ${(f.folder.bytes / 1e6).toFixed(1)} MB)`
  const rows = [...coldRows(f), ...editRow('pod label change', f.labels, 50), ...editRow('policy change', f.policy, 150), ...kernelRows(f), ...connRows(f)]
  const notes = [
    `setup: ${o.local} pods wired by bin/wren ADD in ${ms(f.wireMs)}; label edits flip tier web↔api of remote pods (set members changed per edit: p50 ${percentile(f.labels.costs.members, 50)}, chains written: p50 ${percentile(f.labels.costs.chains, 50)}); policy edits change the port of ${f.policyName} (chains written per edit: p50 ${percentile(f.policy.costs.chains, 50)})`,
    costLine('cold sync', applyCosts(f.cold.entries)),
    costLine('label edits', f.labels.costs),
    costLine('policy edits', f.policy.costs),
    `in place → /synced minus in-agent sync = source rescans (files stat'ed; a changed file re-read, only its changed documents parsed) + runner debounce + socket round trip: label p50 ${ms(percentile(diff(f.labels), 50))}, policy p50 ${ms(percentile(diff(f.policy), 50))}`,
    coldPhases(f),
    `reference for the rescan: reading + parsing the whole folder (${f.folder.objects} objects) with the yaml library alone takes ${ms(f.parseMs)} (the agent parses a file again only when its bytes change, and then only its changed documents)`,
    `slowest label edits (in place → /synced / in-agent ms): ${slowest(f.labels)}; slowest policy edits: ${slowest(f.policy)}`,
    `edits the agent saw as no change: labels ${f.labels.noops}, policy ${f.policy.noops}`,
  ]
  return { title, rows, notes }
}

/** The three slowest edits, wall time beside the agent's own, to tell the agent's outliers from the rest's. */
function slowest(r: EditRun): string {
  const order = r.wallMs.map((w, i) => i).sort((a, b) => r.wallMs[b] - r.wallMs[a])
  return order.slice(0, 3).map((i) => `${r.wallMs[i].toFixed(0)}/${r.agentMs[i].toFixed(0)}`).join(', ')
}

function diff(r: EditRun): number[] {
  return r.wallMs.map((w, i) => w - r.agentMs[i])
}

const MILESTONES = ['control socket ready', 'sources synced', 'UNSURE which iptables backend', 'iptables backend', 'dataplane applied']

function coldPhases(f: Figures): string {
  const m = milestones(f.cold.entries, f.cold.spawnedAtWall, MILESTONES)
  return `cold sync milestones after spawn (agent log, ms resolution): ${m.map((x) => `${x.msg} @${x.atMs} ms`).join(' → ')} → apply seen in log @${f.coldWallMs.toFixed(0)} ms`
}
