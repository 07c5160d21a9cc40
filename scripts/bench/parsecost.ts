// A reference for the manifest path: what re-reading and parsing the whole
// folder costs with the same YAML library the agent's manifest source uses
// (every rescan does this for every file, changed or not).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'

/** Best of `runs` full read+parse+toJS passes over the folder, in ms. */
export function folderParseMs(dir: string, runs = 3): number {
  let best = Infinity
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now()
    for (const f of readdirSync(dir).filter((n) => /\.ya?ml$/.test(n) && !n.startsWith('.'))) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) doc.toJS()
    }
    best = Math.min(best, performance.now() - t0)
  }
  return best
}
