// The reference for the cold sync: how long the kernel tools alone take to load
// exactly what the agent programmed. The text is wren's own objects cut out of
// `iptables-save` / `ip6tables-save` / `ipset save` after the agent's sync; it
// is loaded into a clean kernel with the same tools the agent uses.
import { exec, execOk } from '../../shared/exec.ts'
import { OWNER_PREFIX } from '../../shared/names.ts'

export interface Captured {
  ipset: string
  tables: { family: 4 | 6; text: string }[]
  /** Lines, for the report. */
  ruleLines: number
  setLines: number
}

const isOurs = (name: string | undefined) => !!name && name.startsWith(OWNER_PREFIX)

/** Keeps the tables that hold wren chains or hooks, and only those lines. */
export function cutSave(save: string): { text: string; rules: number } {
  const out: string[] = []
  let table: string[] = []
  let ours = false
  let rules = 0
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      table = [line]
      ours = false
    } else if (line.startsWith(':')) {
      if (isOurs(line.slice(1).split(' ')[0])) table.push(line)
    } else if (line.startsWith('-A ')) {
      const words = line.split(' ')
      const target = words[words.indexOf('-j') + 1] ?? words[words.indexOf('-g') + 1]
      if (isOurs(words[1]) || (words.includes('-j') && isOurs(target)) || (words.includes('-g') && isOurs(words[words.indexOf('-g') + 1]))) {
        table.push(line)
        ours = true
        rules++
      }
    } else if (line === 'COMMIT') {
      if (ours) out.push(...table, 'COMMIT')
    }
  }
  return { text: out.length ? out.join('\n') + '\n' : '', rules }
}

export function cutIpset(save: string): { text: string; lines: number } {
  const lines = save.split('\n').filter((l) => (l.startsWith('create ') || l.startsWith('add ')) && isOurs(l.split(' ')[1]))
  return { text: lines.join('\n') + '\n', lines: lines.length }
}

export async function capture(mode: string): Promise<Captured> {
  const tables: Captured['tables'] = []
  let ruleLines = 0
  for (const family of [4, 6] as const) {
    const cut = cutSave(await execOk(exec, `${family === 4 ? 'iptables' : 'ip6tables'}-${mode}-save`, []))
    if (cut.text) tables.push({ family, text: cut.text })
    ruleLines += cut.rules
  }
  const sets = cutIpset(await execOk(exec, 'ipset', ['save']))
  return { ipset: sets.text, tables, ruleLines, setLines: sets.lines }
}

export interface RawTimes {
  ipsetMs: number
  iptablesMs: number
  totalMs: number
}

/** Loads the captured text into a kernel that holds none of it (the caller cleans up before and after). */
export async function loadRaw(mode: string, c: Captured): Promise<RawTimes> {
  const t0 = performance.now()
  await execOk(exec, 'ipset', ['restore'], { input: c.ipset })
  const t1 = performance.now()
  for (const t of c.tables) await execOk(exec, `${t.family === 4 ? 'iptables' : 'ip6tables'}-${mode}-restore`, ['--noflush', '-w'], { input: t.text })
  const t2 = performance.now()
  return { ipsetMs: t1 - t0, iptablesMs: t2 - t1, totalMs: t2 - t0 }
}
