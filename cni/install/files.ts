// File primitives of install-cni. Every file is written to a temp name in its
// final folder and renamed over the old one, never written in place: a runtime
// scanning the folder never sees half a file, and a plugin process running the
// old file keeps its inode. Temp names start with a dot and end in .tmp, which
// neither a CNI runtime's conflist scan nor a plugin lookup by type name takes.
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, isAbsolute, join, normalize } from 'node:path'

function tempName(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${process.pid}.tmp`)
}

/** Removes temp files an interrupted install of `dest` left (any pid). */
export function removeStaleTemps(dest: string): void {
  const prefix = `.${basename(dest)}.`
  let names: string[]
  try {
    names = readdirSync(dirname(dest))
  } catch {
    return
  }
  for (const n of names) if (n.startsWith(prefix) && /^\d+\.tmp$/.test(n.slice(prefix.length))) rmSync(join(dirname(dest), n), { force: true })
}

/** Writes `write(tmp)` then renames tmp over dest; the temp never outlives a failure. */
function replaceAtomically(dest: string, write: (tmp: string) => void): void {
  const tmp = tempName(dest)
  try {
    write(tmp)
    renameSync(tmp, dest)
  } catch (e) {
    rmSync(tmp, { force: true })
    throw e
  }
}

/** Copies src over dest with `mode` unless dest already holds the same bytes and mode; true when it wrote. */
export function installFile(src: string, dest: string, mode: number): boolean {
  mkdirSync(dirname(dest), { recursive: true })
  if (sameBytes(src, dest) && (statSync(dest).mode & 0o7777) === mode) return false
  replaceAtomically(dest, (tmp) => {
    copyFileSync(src, tmp)
    chmodSync(tmp, mode)
  })
  return true
}

/** Writes text to dest (mode 0644) unless it already holds exactly that; true when it wrote. */
export function installText(dest: string, text: string): boolean {
  mkdirSync(dirname(dest), { recursive: true })
  try {
    if (readFileSync(dest, 'utf8') === text && (statSync(dest).mode & 0o7777) === 0o644) return false
  } catch {
    /* not there yet */
  }
  replaceAtomically(dest, (tmp) => {
    writeFileSync(tmp, text, { mode: 0o644 })
    chmodSync(tmp, 0o644)
  })
  return true
}

/** Whether two paths are regular files with the same bytes (false when either is missing). */
export function sameBytes(a: string, b: string): boolean {
  let fa: number | undefined
  let fb: number | undefined
  try {
    const [sa, sb] = [statSync(a), statSync(b)]
    if (!sa.isFile() || !sb.isFile() || sa.size !== sb.size) return false
    fa = openSync(a, 'r')
    fb = openSync(b, 'r')
    const [ba, bb] = [Buffer.alloc(1 << 20), Buffer.alloc(1 << 20)]
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null)
      const nb = readSync(fb, bb, 0, bb.length, null)
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false
      if (na === 0) return true
    }
  } catch {
    return false
  } finally {
    if (fa !== undefined) closeSync(fa)
    if (fb !== undefined) closeSync(fb)
  }
}

/** Files install-cni wrote, relative to the bin dir and to the conf dir. */
export interface Manifest {
  bin: string[]
  conf: string[]
}

/** A relative path that stays inside its folder: a manifest entry must never reach outside it. */
function inside(rel: unknown): rel is string {
  return typeof rel === 'string' && rel !== '' && !isAbsolute(rel) && !normalize(rel).startsWith('..') && normalize(rel) === rel
}

/** The manifest at `path`, undefined when there is none; throws when it is not one of wren's. */
export function readManifest(path: string): Manifest | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  let m: any
  try {
    m = JSON.parse(text)
  } catch {
    throw new Error(`${path} is not JSON: not touching anything it might list`)
  }
  if (!Array.isArray(m?.bin) || !Array.isArray(m?.conf) || ![...m.bin, ...m.conf].every(inside)) {
    throw new Error(`${path} is not a wren install manifest (bin/conf lists of relative paths): not touching anything it might list`)
  }
  return { bin: m.bin, conf: m.conf }
}

export function manifestText(m: Manifest): string {
  return JSON.stringify({ writtenBy: 'wren-enforcer install-cni', bin: m.bin, conf: m.conf }, null, 2) + '\n'
}

/** Removes a file if it is there; true when it was. */
export function removeFile(path: string): boolean {
  try {
    rmSync(path)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
}
