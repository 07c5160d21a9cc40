// Human-readable `wren-enforcer status`.
export function printStatus(s: any): void {
  const out: string[] = []
  out.push(`synced:      ${s.synced ? 'yes' : 'no'} (generation ${s.generation}, applied ${s.lastApply?.generation ?? 'none'})`)
  if (s.known) out.push(`known:       ${s.known.Namespace ?? 0} namespaces, ${s.known.Pod ?? 0} pods, ${s.known.NetworkPolicy ?? 0} policies, ${s.known.workloads ?? 0} local workloads`)
  if (s.lastApply) out.push(`last apply:  ${s.lastApply.at} in ${s.lastApply.durationMs} ms, ${s.lastApply.workloads.length} workloads programmed`)
  if (s.kernel) out.push(`kernel:      ${JSON.stringify(s.kernel)}`)
  if (s.lastError) out.push(`last error:  ${s.lastError}`)
  if (s.health) out.push(...healthLines(s.health))
  for (const p of s.source?.manifests?.problems ?? []) out.push(`manifest:    ${p.file}: ${p.message}`)
  const problems = s.lastApply?.problems ?? []
  out.push(`problems:    ${problems.length ? '' : 'none'}`)
  for (const p of problems) out.push(`  ${p.object}: ${p.message} → ${p.effect}`)
  process.stdout.write(out.join('\n') + '\n')
}

/** Liveness and readiness as the kubelet's probes see them, with each reason and each source off the API. */
function healthLines(h: any): string[] {
  const live = h.live?.live ? `live (loop lag ≤ ${h.live.maxLoopLagMs} ms)` : `NOT LIVE: ${h.live?.reason}`
  const out = [`health:      ${live}, ${h.ready?.ready ? 'ready' : 'NOT READY'}`]
  for (const r of h.ready?.reasons ?? []) out.push(`  not ready: ${r}`)
  for (const d of h.ready?.disconnected ?? []) out.push(`  api:       ${d.source} unreachable since ${d.since} (${Math.round(d.forMs / 1000)} s)${d.error ? `: ${d.error}` : ''}`)
  return out
}
