// `wren-enforcer show POD|IFACE`: the operator's view of one workload. Prints,
// straight from the kernel, the dispatch rules naming its interface, its
// egress (fw) and ingress (tw) chains with their port-group rules, any chain they
// jump to and the sets those match, with packet counters, so that "why did this packet live
// or die" can be answered by reading one screen. Read-only.
import { listRecords, type WorkloadRecord } from '../shared/record.ts'
import { execOk, type Exec } from '../shared/exec.ts'
import type { Logger } from '../shared/log.ts'
import { CHAINS, workloadChain } from '../shared/names.ts'
import { detectBackend, type BackendMode } from './dataplane/backend.ts'
import { controlGet } from './control.ts'

export interface ShowOptions {
  target: string
  stateDir: string
  /** Where the agent's control socket is: it names what each set holds. Optional; the kernel alone still answers. */
  runDir?: string
  exec: Exec
  log: Logger
  backend?: BackendMode | 'auto'
  maxMembers?: number
}

/** A pod given as namespace/name, or a host interface name. */
export function findWorkload(records: WorkloadRecord[], target: string): WorkloadRecord | undefined {
  if (target.includes('/')) {
    const [ns, pod] = target.split('/', 2)
    return records.find((r) => r.namespace === ns && r.pod === pod)
  }
  return records.find((r) => r.hostIface === target)
}

/** `-A chain …` lines of a save output, grouped by chain, in order. */
export function rulesByChain(save: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of save.split('\n')) {
    const m = /^(\[\d+:\d+\] )?-A (\S+) (.*)$/.exec(line)
    if (!m) continue
    const rules = out.get(m[2]) ?? out.set(m[2], []).get(m[2])!
    rules.push(`${m[1] ?? ''}${m[3]}`)
  }
  return out
}

/** The chains reachable from the workload's own chains, in reading order. */
export function chainsOf(iface: string, rules: Map<string, string[]>): string[] {
  const seen: string[] = []
  const visit = (chain: string) => {
    if (seen.includes(chain) || !rules.has(chain)) return
    seen.push(chain)
    for (const r of rules.get(chain)!) {
      const jump = /-[jg] (wren-\S+)/.exec(r)
      if (jump) visit(jump[1])
    }
  }
  visit(workloadChain('fw', iface))
  visit(workloadChain('tw', iface))
  return seen
}

export async function show(o: ShowOptions): Promise<string> {
  const rec = findWorkload(listRecords(o.stateDir), o.target)
  const iface = rec?.hostIface ?? (/^[a-z0-9]{1,15}$/.test(o.target) ? o.target : undefined)
  if (!iface) throw new Error(`no workload ${o.target} in ${o.stateDir} (give namespace/pod or a host interface name)`)
  const backend = await detectBackend(o.exec, o.log, o.backend)
  const out: string[] = []
  if (rec) out.push(`workload ${rec.namespace ?? '-'}/${rec.pod ?? rec.containerId}  iface ${iface}  ips ${rec.ips.join(' ')}`)
  else out.push(`interface ${iface} has no workload record: wren drops its traffic (fail closed)`)
  const sets = new Set<string>()
  for (const fam of [4, 6] as const) {
    const rules = rulesByChain(await execOk(o.exec, backend.save(fam), ['-c', '-t', 'filter']))
    const dispatch = [CHAINS.fromWlDispatch, CHAINS.toWlDispatch].flatMap((c) => (rules.get(c) ?? []).filter((r) => r.includes(` ${iface} `)).map((r) => `${c}: ${r}`))
    const chains = chainsOf(iface, rules)
    if (!dispatch.length && !chains.length) continue
    out.push('', `IPv${fam} (${backend.mode}) — [packets:bytes] rule`)
    out.push(...dispatch.map((d) => `  ${d}`))
    for (const c of chains) {
      out.push(`  ${c}`)
      for (const r of rules.get(c)!) {
        out.push(`    ${r}`)
        for (const m of r.matchAll(/--match-set (\S+)/g)) sets.add(m[1])
      }
    }
  }
  if (out.length === 1) out.push('no chains programmed for this interface (yet): its traffic is dropped')
  const meaning = sets.size ? await setMeanings(o.runDir) : {}
  for (const s of [...sets].sort()) out.push('', ...(await describeSet(o.exec, s, meaning[s], o.maxMembers ?? 20)))
  return out.join('\n') + '\n'
}

/** The running agent's words for its sets; none when no agent answers (the kernel keeps no such text). */
async function setMeanings(runDir: string | undefined): Promise<Record<string, string>> {
  if (!runDir) return {}
  try {
    const r = await controlGet(runDir, '/sets', 5000)
    return r.code === 200 && typeof r.body === 'object' && r.body !== null ? (r.body as Record<string, string>) : {}
  } catch {
    return {}
  }
}

async function describeSet(exec: Exec, name: string, meaning: string | undefined, max: number): Promise<string[]> {
  const r = await exec('ipset', ['list', name])
  if (r.code !== 0) return [`set ${name}: MISSING (${r.stderr.trim()})`]
  const lines = r.stdout.split('\n')
  const start = lines.indexOf('Members:')
  const members = lines.slice(start + 1).filter(Boolean)
  const head = `set ${name}: ${members.length} members${meaning ? ` — ${meaning}` : ''}`
  return [head, ...members.slice(0, max).map((m) => `  ${m}`), ...(members.length > max ? [`  … ${members.length - max} more`] : [])]
}
