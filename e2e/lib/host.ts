// Host helpers for real-kernel tests: network namespaces, blackhole routes for
// a test's address ranges, and a cleanup stack that runs even when a test
// fails. Every e2e test builds on these so that nothing it made outlives it.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Undo actions run in reverse order; failures are collected, never thrown past the others. */
export class Cleanup {
  private undos: { what: string; fn: () => void | Promise<void> }[] = []
  push(what: string, fn: () => void | Promise<void>): void {
    this.undos.push({ what, fn })
  }
  async run(): Promise<string[]> {
    const errors: string[] = []
    while (this.undos.length) {
      const { what, fn } = this.undos.pop()!
      try {
        await fn()
      } catch (e) {
        errors.push(`${what}: ${(e as Error).message}`)
      }
    }
    return errors
  }
}

/** Runs a command, throwing with its stderr on failure. */
export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
}

/** Runs a command and reports its exit code instead of throwing. */
export function trySh(cmd: string, args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' })
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** Creates a named network namespace with loopback up; deleted on cleanup. Returns its path. */
export function addNetns(cleanup: Cleanup, name: string): string {
  trySh('ip', ['netns', 'del', name]) // left over from a killed run
  sh('ip', ['netns', 'add', name])
  cleanup.push(`netns ${name}`, () => {
    trySh('ip', ['netns', 'del', name])
  })
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up'])
  return `/var/run/netns/${name}`
}

/**
 * Routes a whole test range to a blackhole on the host before anything uses it,
 * so that no test packet can leave the machine; more specific pod routes win.
 */
export function blackhole(cleanup: Cleanup, cidr: string): void {
  const fam = cidr.includes(':') ? '-6' : '-4'
  trySh('ip', [fam, 'route', 'del', 'blackhole', cidr])
  sh('ip', [fam, 'route', 'add', 'blackhole', cidr])
  cleanup.push(`blackhole ${cidr}`, () => {
    trySh('ip', [fam, 'route', 'del', 'blackhole', cidr])
  })
}

/**
 * Deletes the conntrack entries from or to a test range. A UDP "connection" is
 * its 5-tuple: a probe that happens to reuse the source port of an earlier
 * probe (another step, another test using the same addresses) would otherwise
 * ride that flow's entry as established, or its NAT binding. Only ranges the
 * tests blackholed, so only their own flows.
 */
export function forgetFlows(cidr: string): void {
  const fam = cidr.includes(':') ? 'ipv6' : 'ipv4'
  // exit status 1 when there was nothing to delete
  for (const dir of ['-s', '-d']) trySh('conntrack', ['-D', '-f', fam, dir, cidr])
}

/** A temporary directory removed on cleanup. */
export function tempDir(cleanup: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  cleanup.push(`dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Runs a command inside a named netns. */
export function inNetns(name: string, cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  return trySh('ip', ['netns', 'exec', name, cmd, ...args])
}

/** Host links whose names start with a prefix (to assert nothing leaked). */
export function hostLinks(prefix: string): string[] {
  const out = sh('ip', ['-o', 'link', 'show'])
  return out
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0])
    .filter((n): n is string => !!n && n.startsWith(prefix))
}

/** Host routes mentioning a device (to assert nothing leaked). */
export function routesVia(dev: string): string[] {
  return [...sh('ip', ['-4', 'route', 'show', 'dev', dev]).split('\n'), ...sh('ip', ['-6', 'route', 'show', 'dev', dev]).split('\n')].filter(Boolean)
}

/** Repository root (e2e/lib/ is two levels down). */
export const REPO = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')
export const WREN_BIN = join(REPO, 'bin', 'wren')
export const ENFORCER_BIN = join(REPO, 'bin', 'wren-enforcer')

const LOCK_DIR = '/run/wren-e2e.lock'
/**
 * Multi-node clusters (e2e/lib/nodes.ts) touch no host chain but share fixed
 * names and ranges (namespaces `wn-*`, 10.95.0.0/16, the host link): one at a time.
 */
export const NODES_LOCK_DIR = '/run/wren-e2e-nodes.lock'

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Tests that own wren's chains (an agent, the writer, cleanup) need the kernel
 * to themselves: two agents would each rewrite the other's dispatch chains.
 * Takes a machine-wide lock (an atomic mkdir holding the owner's pid; a dead
 * owner's lock is broken) and releases it on cleanup. Waits up to `waitMs`.
 * `lockDir` names another such lock (NODES_LOCK_DIR).
 */
export async function exclusiveKernel(cleanup: Cleanup, waitMs = 15 * 60_000, lockDir = LOCK_DIR): Promise<void> {
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      mkdirSync(lockDir)
      writeFileSync(join(lockDir, 'pid'), String(process.pid))
      cleanup.push(`lock ${lockDir}`, () => rmSync(lockDir, { recursive: true, force: true }))
      return
    } catch (e: any) {
      if (e?.code !== 'EEXIST') throw e
    }
    let owner = NaN
    try {
      owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8'))
    } catch {
      /* being written or removed right now */
    }
    if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) rmSync(lockDir, { recursive: true, force: true })
    if (Date.now() > deadline) throw new Error(`lock ${lockDir} still held by pid ${owner} after ${waitMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
