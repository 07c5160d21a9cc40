// Estimate: how many set entries would exact per-workload unions (one set per
// workload × direction × port group, shared by content) take on the synthetic cluster?
import { compile } from '../../enforcer/compile/index.ts'
import { DEFAULT_ENFORCER_CONFIG, type LocalWorkload, type Snapshot } from '../../enforcer/model.ts'
import { connPolicies, podObj, synthesize, type Obj } from './synth.ts'

const c = synthesize({ pods: 5000, policies: 1000, namespaces: 50, local: 110 })
const allPods = [...c.pods, c.conn.server, c.conn.client]
const workloads: LocalWorkload[] = allPods.filter((p) => p.local).map((p, i) => ({ hostIface: `wren${String(i).padStart(11, '0')}`, namespace: p.namespace, pod: p.name, ips: [`10.42.${(i + 1) >> 8}.${(i + 1) & 255}`] }))
const snap = { namespaces: [...c.namespaces, c.conn.namespace] as Obj[], pods: allPods.map((p) => podObj(p, 'bench-node')), policies: [...c.policies, ...connPolicies(100)], workloads } as unknown as Snapshot
const out = compile(snap, DEFAULT_ENFORCER_CONFIG)
const chains = new Map(out.v4.chains.map((ch) => [ch.name, ch]))
const sets = new Map(out.v4.sets.map((s) => [s.name, s]))
const expand = (n: string): string[] => {
  const s = sets.get(n)!
  return s.type === 'list:set' ? s.members.flatMap(expand) : [n]
}
const unions = new Map<string, Set<string>>()
let groupsTotal = 0
for (const ch of out.v4.chains) {
  if (!/^wren-(tw|fw)-/.test(ch.name)) continue
  const groups = new Map<string, Set<string>>()
  for (const r of ch.rules) {
    const target = r.action[1]
    if (!target?.startsWith('wren-p')) continue
    for (const pr of chains.get(target)!.rules) {
      const i = pr.match.indexOf('--match-set')
      const port = pr.match.filter((_, k) => k < i - 2 || k > i + 1 || i < 0).join(' ')
      const g = groups.get(port) ?? new Set()
      if (i >= 0) for (const s of expand(pr.match[i + 1])) g.add(s)
      else g.add('*any*')
      groups.set(port, g)
    }
  }
  for (const [port, g] of groups) {
    groupsTotal++
    const key = port + '|' + [...g].sort().join(',')
    if (!unions.has(key)) unions.set(key, new Set([...g].flatMap((s) => (s === '*any*' ? [] : sets.get(s)!.members))))
  }
}
let entries = 0
for (const u of unions.values()) entries += u.size
const shared = out.v4.sets.reduce((n, s) => n + s.members.length, 0)
console.log(`workload port groups ${groupsTotal}, distinct unions ${unions.size}, union entries ${entries}; today's sets ${out.v4.sets.length} with ${shared} entries`)
