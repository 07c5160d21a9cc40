// Reads the agent's JSON-lines log (run with --log-level debug) from a byte
// offset: what each apply cost inside the agent, as the agent measured it.
import { openSync, readSync, closeSync, statSync } from 'node:fs'

export interface LogEntry {
  time: string
  level: string
  msg: string
  [k: string]: unknown
}

export class AgentLog {
  private offset = 0

  constructor(private readonly file: string) {}

  /** Skips what is there now: the next read() returns only later lines. */
  mark(): void {
    this.offset = statSync(this.file).size
  }

  /** Entries written since the last mark() or read(). */
  read(): LogEntry[] {
    const size = statSync(this.file).size
    if (size <= this.offset) return []
    const buf = Buffer.alloc(size - this.offset)
    const fd = openSync(this.file, 'r')
    try {
      readSync(fd, buf, 0, buf.length, this.offset)
    } finally {
      closeSync(fd)
    }
    // only whole lines; a partial last line is read next time
    const text = buf.toString('utf8')
    const end = text.lastIndexOf('\n') + 1
    this.offset += Buffer.byteLength(text.slice(0, end))
    const out: LogEntry[] = []
    for (const line of text.slice(0, end).split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        out.push(JSON.parse(line))
      } catch {
        /* not one of the agent's lines */
      }
    }
    return out
  }
}

export interface ApplyCost {
  /** Agent: compile + writer, per sync ('applied' debug line). */
  syncMs: number[]
  /** Writer: kernel read and writes ('dataplane applied' / 'dataplane unchanged'). */
  readMs: number[]
  writeMs: number[]
  writerMs: number[]
  restores: number[]
  /** Set members added + removed, and chains written, per apply. */
  members: number[]
  chains: number[]
  /** Agent sync minus the writer's total: compile (+ the agent's own bookkeeping). */
  compileMs: number[]
}

export function applyCosts(entries: LogEntry[]): ApplyCost {
  const c: ApplyCost = { syncMs: [], readMs: [], writeMs: [], writerMs: [], restores: [], members: [], chains: [], compileMs: [] }
  let writer: number | undefined
  for (const e of entries) {
    if (e.msg === 'applied' && typeof e.ms === 'number') {
      c.syncMs.push(e.ms)
      if (writer !== undefined) c.compileMs.push(e.ms - writer)
      writer = undefined
    }
    if (e.msg === 'dataplane applied' || e.msg === 'dataplane unchanged') writer = Number(e.totalMs)
    if (e.msg === 'dataplane applied') {
      c.readMs.push(Number(e.readMs))
      c.writeMs.push(Number(e.writeMs))
      c.writerMs.push(Number(e.totalMs))
      c.restores.push(Number(e.restores))
      c.members.push(Number(e.membersAdded) + Number(e.membersRemoved))
      c.chains.push(Number(e.chainsWritten))
    }
    if (e.msg === 'dataplane unchanged') c.writerMs.push(Number(e.totalMs))
  }
  return c
}

/** Milliseconds from `startWall` to the first entry with each message (cold-sync milestones). */
export function milestones(entries: LogEntry[], startWall: number, msgs: string[]): { msg: string; atMs: number }[] {
  const out: { msg: string; atMs: number }[] = []
  for (const m of msgs) {
    const e = entries.find((x) => x.msg === m || x.msg.startsWith(m))
    if (e) out.push({ msg: m, atMs: Date.parse(e.time) - startWall })
  }
  return out
}
