// Human-readable `wren-enforcer status`.
export function printStatus(s: any): void {
  const out: string[] = []
  out.push(`synced:      ${s.synced ? 'yes' : 'no'} (generation ${s.generation}, applied ${s.lastApply?.generation ?? 'none'})`)
  if (s.known) out.push(`known:       ${s.known.Namespace ?? 0} namespaces, ${s.known.Pod ?? 0} pods, ${s.known.NetworkPolicy ?? 0} policies, ${s.known.Node ?? 0} nodes, ${s.known.workloads ?? 0} local workloads`)
  if (s.lastApply) out.push(`last apply:  ${s.lastApply.at} in ${s.lastApply.durationMs} ms, ${s.lastApply.workloads.length} workloads programmed`)
  if (s.kernel) out.push(`kernel:      ${JSON.stringify(s.kernel)}`)
  if (s.lastError) out.push(`last error:  ${s.lastError}`)
  if (s.health) out.push(...healthLines(s.health))
  if (s.routes && (s.routes.nodes || s.routes.routes.length)) out.push(...routeLines(s.routes))
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

/** Routes between nodes: one line per route (`ip route` shows the same with `proto 87`), then any node wren could not route. */
function routeLines(r: any): string[] {
  const held = r.hold ? ' — HOLDING: routes left as they were (see problems)' : ''
  const out = [`routes:      ${r.nodes} nodes, overlay ${r.mode}, ${r.routes.length} routes, ${r.vxlanPeers} over VXLAN${held}`]
  for (const x of r.routes) out.push(`  ${x.dst.padEnd(20)} ${x.kind === 'blackhole' ? 'blackhole (this node)' : `${x.kind} via ${x.via}`}`)
  for (const p of r.problems ?? []) out.push(`  ${p.object}: ${p.message} → ${p.effect}`)
  if (r.lastError) out.push(`  last error: ${r.lastError}`)
  return out
}
