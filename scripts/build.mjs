#!/usr/bin/env node
// Bundles the two executables with esbuild:
//   cni/main.ts      -> dist/wren.mjs           self-contained: kubelet runs it per pod, so
//                                               startup time is the budget (no node_modules at runtime)
//   enforcer/main.ts -> dist/wren-enforcer.mjs  packages stay external (node_modules ship with it)
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')

const common = { bundle: true, platform: 'node', target: 'node20', format: 'esm', logLevel: 'warning', absWorkingDir: repo }

const all = [
  // no createRequire banner: importing node:module costs every ADD ~0.7 ms, and the plugin bundles
  // no CommonJS; should one ever call require(), esbuild's __require shim shows it and the build fails
  { name: 'wren', entry: 'cni/main.ts', out: 'dist/wren.mjs', noRequire: true },
  // split so that `status` never loads the agent's chunk (and @kubernetes/client-node with it)
  { name: 'wren-enforcer', entry: 'enforcer/main.ts', out: 'dist/wren-enforcer.mjs', split: true, extra: { packages: 'external' } },
]
// `node scripts/build.mjs wren` builds only the plugin; no argument builds both
const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !all.some((t) => t.name === w))
if (unknown.length) {
  console.error(`unknown target(s) ${unknown.join(', ')}; targets: ${all.map((t) => t.name).join(', ')}`)
  process.exit(2)
}
const targets = wanted.length ? all.filter((t) => wanted.includes(t.name)) : all

// chunk names carry content hashes: drop the previous build's so none go stale (only the
// enforcer has chunks: building the plugin alone must not break the enforcer's bundle)
if (targets.some((t) => t.split)) rmSync(join(repo, 'dist', 'chunks'), { recursive: true, force: true })

let failed = false
for (const t of targets) {
  if (!existsSync(join(repo, t.entry))) {
    console.log(`skip ${t.entry}: not there yet`)
    continue
  }
  try {
    const output = t.split
      ? { splitting: true, outdir: 'dist', entryNames: '[name]', chunkNames: 'chunks/[name]-[hash]', outExtension: { '.js': '.mjs' }, entryPoints: [{ in: t.entry, out: t.name }] }
      : { outfile: t.out, entryPoints: [t.entry] }
    const r = await build({ ...common, ...t.extra, ...output, metafile: true })
    if (t.noRequire && /\b__require\b/.test(readFileSync(join(repo, t.out), 'utf8'))) {
      throw new Error(`${t.out} calls require(), which an ESM bundle without a createRequire banner cannot serve`)
    }
    const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
    console.log(`built ${t.out} (${(bytes / 1024).toFixed(1)} KiB)`)
  } catch (e) {
    console.error(`building ${t.entry} failed: ${e.message}`)
    failed = true
  }
}
process.exit(failed ? 1 : 0)
