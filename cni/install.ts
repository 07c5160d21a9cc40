// Installs the plugin on a node, and removes it again.
//
// Into the CNI bin dir: `wren` (the native shim: it hands each invocation to the
// agent, else runs the Node plugin) and, under `wren.d/`, the pinned Node
// runtime and the plugin bundle it falls back to, so the node needs no Node of
// its own and no other name lands in the folder (cni/install/layout.ts). Into
// the conf dir: the conflist. And `wren.d/manifest.json`, naming every file
// written, so uninstall removes exactly those.
//
// Order: the manifest first (listing what is about to be written, so even an
// interrupted install can be uninstalled), then the binaries (the shim last),
// then the conflist, so a conflist naming wren is only published once wren can
// run; uninstall goes the other way. Every write is a rename over the old file
// (cni/install/files.ts), so a rerun with a new build upgrades in place without
// breaking a plugin process that is running, and a rerun with the same build
// writes nothing.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { agentDirProblems, CONF_NAME, defaultPodMtu, mtuProblems, podCidrProblems, wrenConfList, type AgentDirs } from './install/conflist.ts'
import { installFile, installText, manifestText, readManifest, removeFile, removeStaleTemps, sameBytes, type Manifest } from './install/files.ts'
import { AUX_DIR, binEntries, LEGACY_NAMES, legacySource, locateSources, MANIFEST, type Sources } from './install/layout.ts'

export { CONF_NAME, CONFLIST_VERSION, DEFAULT_POD_CIDRS, defaultPodMtu, wrenConfList } from './install/conflist.ts'
export { AUX_DIR, MANIFEST, PLUGIN_NAME } from './install/layout.ts'

export interface InstallOptions {
  binDir: string
  confDir: string
  /** Pod ranges for the built-in IPAM, at most one per family. */
  podCidrs: string[]
  /** Pod MTU; default: the uplink's MTU minus room for VXLAN (defaultPodMtu). */
  mtu?: number
  /** The agent's state and run folders, written into the conflist when given (the plugin's defaults are the agent's). */
  agentDirs?: AgentDirs
  /** Where the bundle, shim and runtime come from; default: found from this module (locateSources). */
  sources?: Partial<Sources> & { root?: string }
  confName?: string
}

export interface InstallResult {
  /** Files written by this run (absolute paths); files already up to date are in `unchanged`. */
  written: string[]
  unchanged: string[]
  /** Files an earlier install left that this one no longer ships. */
  removed: string[]
  /** Files wren did not remove, and why. */
  left: { path: string; why: string }[]
  conflist: string
  podCidrs: string[]
  mtu: number
}

export async function installCni(o: InstallOptions): Promise<InstallResult> {
  const mtu = o.mtu ?? defaultPodMtu().mtu
  const problems = [...podCidrProblems(o.podCidrs), ...mtuProblems(mtu, o.podCidrs), ...agentDirProblems(o.agentDirs ?? {})]
  if (problems.length) throw new Error(problems.join('; '))
  const src = locateSources(o.sources)
  const conflist = JSON.stringify(wrenConfList(o.podCidrs, mtu, o.agentDirs), null, 2) + '\n'
  makeDir(o.binDir, '--bin-dir')
  makeDir(o.confDir, '--conf-dir')

  const entries = binEntries(src)
  const confName = o.confName ?? CONF_NAME
  const planned: Manifest = { bin: [...entries.map((e) => e.name), MANIFEST], conf: [confName] }
  const manifestPath = join(o.binDir, MANIFEST)
  const previous = readPreviousManifest(manifestPath)
  const result: InstallResult = { written: [], unchanged: [], removed: [], left: [], conflist: join(o.confDir, confName), podCidrs: o.podCidrs, mtu }
  const record = (path: string, wrote: boolean) => (wrote ? result.written : result.unchanged).push(path)

  const stale: Manifest = { bin: previous.bin.filter((f) => !planned.bin.includes(f)), conf: previous.conf.filter((f) => !planned.conf.includes(f)) }
  const wroteManifest = installText(manifestPath, manifestText({ bin: [...planned.bin, ...stale.bin], conf: [...planned.conf, ...stale.conf] }))
  for (const e of entries) {
    const dest = join(o.binDir, e.name)
    removeStaleTemps(dest)
    record(dest, installFile(e.from, dest, e.mode))
  }
  for (const f of stale.conf) if (removeFile(join(o.confDir, f))) result.removed.push(join(o.confDir, f))
  for (const f of stale.bin) if (removeFile(join(o.binDir, f))) result.removed.push(join(o.binDir, f))
  removeLegacy(o.binDir, src, previous, result)
  removeStaleTemps(result.conflist)
  record(result.conflist, installText(result.conflist, conflist))
  record(manifestPath, installText(manifestPath, manifestText(planned)) || wroteManifest)
  return result
}

export interface UninstallOptions {
  binDir: string
  confDir: string
  sources?: Partial<Sources> & { root?: string }
}

export interface UninstallResult {
  removed: string[]
  left: { path: string; why: string }[]
}

/** Removes what install-cni recorded in its manifest and nothing else; running it again is a no-op. */
export async function uninstallCni(o: UninstallOptions): Promise<UninstallResult> {
  const manifestPath = join(o.binDir, MANIFEST)
  const m = readManifest(manifestPath)
  const result: UninstallResult = { removed: [], left: [] }
  const remove = (path: string) => removeFile(path) && result.removed.push(path)
  if (m) {
    // conflists first: none may name a plugin that is already gone
    for (const f of m.conf) remove(join(o.confDir, f))
    for (const f of [...m.bin].reverse()) if (f !== MANIFEST) remove(join(o.binDir, f))
  }
  let src: Sources | undefined
  try {
    src = locateSources(o.sources)
  } catch (e) {
    result.left.push(...LEGACY_NAMES.map((n) => ({ path: join(o.binDir, n), why: `if present, not checked: ${(e as Error).message}` })))
  }
  if (src) removeLegacy(o.binDir, src, m ?? { bin: [], conf: [] }, result)
  if (m) remove(manifestPath)
  try {
    if (readdirSync(join(o.binDir, AUX_DIR)).length === 0) rmdirSync(join(o.binDir, AUX_DIR))
  } catch {
    /* not there, or something else lives in it */
  }
  return result
}

/**
 * `node` and `wren.cjs` beside `wren`: where earlier versions put the runtime and
 * bundle. Removed only when recorded in wren's manifest or byte-identical to
 * what this wren ships; another `node` in the bin dir is not wren's to take.
 */
function removeLegacy(binDir: string, src: Sources, previous: Manifest, out: { removed: string[]; left: { path: string; why: string }[] }): void {
  for (const name of LEGACY_NAMES) {
    const path = join(binDir, name)
    if (previous.bin.includes(name) || sameBytes(path, legacySource(name, src))) {
      if (removeFile(path)) out.removed.push(path)
    } else if (existsSync(path)) {
      out.left.push({ path, why: `not a copy of what this wren ships (${legacySource(name, src)}): an older wren may have put it there; if so, remove it by hand` })
    }
  }
}

function readPreviousManifest(path: string): Manifest {
  try {
    return readManifest(path) ?? { bin: [], conf: [] }
  } catch {
    return { bin: [], conf: [] } // unreadable: this install's own manifest replaces it
  }
}

function makeDir(dir: string, flag: string): void {
  try {
    mkdirSync(dir, { recursive: true })
  } catch (e) {
    throw new Error(`cannot create ${flag} ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
}
