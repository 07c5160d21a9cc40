// Where the agent's CPU went: summarizes V8 .cpuprofile files (from
// `scripts/bench-enforcer --cpu-prof DIR`) by self time per source file and
// per function.
//   node scripts/bench/profile-summary.ts DIR_OR_FILE [top] [[fromMs-]untilMs]
// A window keeps only the samples between fromMs (default 0) and untilMs of
// the profile: say, the cold sync, or the label edits.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** Self time (ms) per node id, of the samples between fromMs and untilMs. */
function selfTimes(p: Profile, fromMs = 0, untilMs = Infinity): Map<number, number> {
  const out = new Map<number, number>()
  let at = 0
  p.samples.forEach((id, i) => {
    at += (p.timeDeltas[i] ?? 0) / 1000
    if (at >= fromMs && at <= untilMs) out.set(id, (out.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000)
  })
  return out
}

function shortUrl(url: string): string {
  if (!url) return '(native/vm)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return `node_modules/${m[1]}`
  return url.replace(/^file:\/\//, '').replace(/.*\/dist\//, 'dist/')
}

function top(m: Map<string, number>, n: number, total: number): string[] {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${v.toFixed(0).padStart(8)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
}

export function summarize(p: Profile, n = 25, window?: [number, number]): string[] {
  const self = selfTimes(p, ...(window ?? []))
  const byFile = new Map<string, number>()
  const byFn = new Map<string, number>()
  let total = 0
  for (const node of p.nodes) {
    const t = self.get(node.id) ?? 0
    if (!t) continue
    total += t
    const f = shortUrl(node.callFrame.url)
    byFile.set(f, (byFile.get(f) ?? 0) + t)
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${f}:${node.callFrame.lineNumber + 1}`
    byFn.set(fn, (byFn.get(fn) ?? 0) + t)
  }
  const idle = [...byFn.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0)
  return [`sampled ${total.toFixed(0)} ms (idle ${idle.toFixed(0)} ms)`, 'by file (self time):', ...top(byFile, 12, total), 'by function (self time):', ...top(byFn, n, total)]
}

function parseWindow(text: string): [number, number] {
  const [a, b] = text.includes('-') ? text.split('-') : ['0', text]
  return [Number(a), Number(b)]
}

function main(): void {
  const [target, n, until] = process.argv.slice(2)
  if (!target) throw new Error('usage: profile-summary.ts DIR_OR_FILE [top]')
  const files = statSync(target).isDirectory() ? readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(target, f)) : [target]
  for (const f of files) {
    process.stdout.write(`== ${basename(f)}\n${summarize(JSON.parse(readFileSync(f, 'utf8')), Number(n ?? 25), until ? parseWindow(until) : undefined).join('\n')}\n`)
  }
}

main()
