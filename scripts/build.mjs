#!/usr/bin/env node
// Bundles the two executables with esbuild:
//   cni/run.ts       -> dist/wren.cjs           self-contained: kubelet runs it per pod, so
//                                               startup time is the budget (no node_modules at runtime)
//   enforcer/main.ts -> dist/wren-enforcer.mjs  packages stay external (node_modules ship with it)
// and, with the plugin, compiles the native shim that kubelet actually runs (bin/wren links to it):
//   shim/wren-cni.c  -> dist/wren-shim          hands the invocation to the agent, else runs wren.cjs
// and, with the agent, its spawn helper (shared/spawner.ts runs the agent's commands through it):
//   shim/wren-spawn.c -> dist/wren-spawn
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')

const common = { bundle: true, platform: 'node', target: 'node20', format: 'esm', logLevel: 'warning', absWorkingDir: repo }

const all = [
  // CommonJS, not ESM: Node runs a CommonJS main script without the ESM loader's module jobs, and
  // require('node:fs') hands over the module where an ESM import builds a facade reading every
  // export (fs's lazy stream getters then load the streams machinery). ~3-4 ms of every ADD.
  { name: 'wren', entry: 'cni/run.ts', out: 'dist/wren.cjs', extra: { format: 'cjs' }, esmShim: 'dist/wren.mjs' },
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
    // the plugin bundle's former name still runs it, for scripts that know only that name
    if (t.esmShim) writeFileSync(join(repo, t.esmShim), `// old name of ${t.out}: runs it\nimport './${t.out.split('/').pop()}'\n`)
    const bytes = Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
    console.log(`built ${t.out} (${(bytes / 1024).toFixed(1)} KiB)`)
  } catch (e) {
    console.error(`building ${t.entry} failed: ${e.message}`)
    failed = true
  }
}
if (targets.some((t) => t.name === 'wren') && !buildC('shim/wren-cni.c', 'dist/wren-shim', ['-O2', '-Wall', '-Wextra'])) failed = true
const spawnHelperFlags = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror'] // test/spawner.test.ts compiles with these too
if (targets.some((t) => t.name === 'wren-enforcer') && !buildC('shim/wren-spawn.c', 'dist/wren-spawn', spawnHelperFlags)) failed = true
process.exit(failed ? 1 : 0)

/** cc FLAGS -o out src (paths relative to the repo); skipped when the binary is newer than its source. */
function buildC(src, out, flags) {
  const srcPath = join(repo, src)
  const outPath = join(repo, out)
  if (existsSync(outPath) && statSync(outPath).mtimeMs >= statSync(srcPath).mtimeMs) return true
  mkdirSync(dirname(outPath), { recursive: true })
  const cc = process.env.CC || 'cc'
  const r = spawnSync(cc, [...flags, '-o', outPath, srcPath], { stdio: 'inherit' })
  if (r.error?.code === 'ENOENT') {
    console.error(`building ${src} failed: no C compiler (${cc}); scripts/setup installs gcc`)
    return false
  }
  if (r.status !== 0) {
    console.error(`building ${src} failed (${cc} exited ${r.status})`)
    return false
  }
  console.log(`built ${out}`)
  return true
}
