// Reservation files of the built-in allocator: one file per address under
// <dataDir>/<network>/, named by the address, holding "containerId\nifname\n".
//
// Model: the directory *is* the allocation table; there is no other index,
// so nothing can disagree with it. An attachment's addresses are found by
// reading the files (a node holds a few hundred at most: about a millisecond).
//
// Invariants, holding however a process dies (SIGKILL included):
// - a reservation file exists complete or not at all. Its content goes into a
//   private temp file created with O_EXCL, which is then published under the
//   address's name with link(2). link fails with EEXIST when the name exists,
//   exactly like open(O_CREAT|O_EXCL), so two processes never both win one
//   address; unlike open+write it never shows an empty, ownerless file.
//   A kill leaves at worst a temp file, which holds no address (GC sweeps it).
// - only the owner's DEL or a GC removes a reservation. Removal renames the
//   file aside first and checks the owner of what it moved, so a release that
//   lost a race to another release never deletes a newer claim of the address.
//   (Putting such a claim back is the one step that a kill, or a third claim
//   landing in the same microseconds, could spoil; it needs two releases of
//   one address at once, i.e. a GC racing the owner's DEL, to be reached.)
//
// Concurrency: lock-free; any number of processes may claim and release at once.
// The round-robin hint (last_reserved_ip.<set>) is advisory and written by rename.
import { closeSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { CniError, CNI_CODE } from '../errors.ts'
import { formatIp, parseIp, type Ip } from './ipmath.ts'

export interface Owner {
  containerId: string
  ifname: string
}

const TEMP_PREFIX = '.tmp-'
const HINT_PREFIX = 'last_reserved_ip.'
/** A temp file older than this belongs to a dead process: a live one keeps it for microseconds. */
const STALE_TEMP_MS = 60_000

const sameOwner = (a: Owner, b: Owner): boolean => a.containerId === b.containerId && a.ifname === b.ifname
const encode = (o: Owner): string => `${o.containerId}\n${o.ifname}\n`

function decode(text: string): Owner | undefined {
  const [containerId, ifname] = text.split('\n')
  return containerId && ifname ? { containerId, ifname } : undefined
}

const isMissing = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === 'ENOENT'

/** The network's folder; the name must be one path component. */
export function networkDir(dataDir: string, network: string): string {
  if (!network || network === '.' || network === '..' || network.includes('/') || network.includes('\0')) {
    throw new CniError(CNI_CODE.invalidConfig, `network name ${JSON.stringify(network)} cannot name an IPAM folder`)
  }
  return join(dataDir, network)
}

/**
 * A name no other live process uses: pid, a counter, and randomness against a
 * dead process's leftovers under a reused pid. Not node:crypto's randomBytes:
 * nothing here is secret, and loading node:crypto costs the plugin ~4 ms.
 */
let tempCount = 0
export function uniqueSuffix(): string {
  return `${process.pid}-${++tempCount}-${Math.random().toString(16).slice(2, 14)}`
}

function tempFile(dir: string, content: string): string {
  const path = join(dir, `${TEMP_PREFIX}${uniqueSuffix()}`)
  const fd = openSync(path, 'wx', 0o644)
  try {
    writeSync(fd, content)
  } finally {
    closeSync(fd)
  }
  return path
}

/** Every reservation in `dir`, address text to owner. A missing folder holds none. */
export function scan(dir: string): Map<string, Owner> {
  const out = new Map<string, Owner>()
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    if (isMissing(e)) return out
    throw e
  }
  for (const name of names) {
    if (name.startsWith('.') || name.startsWith(HINT_PREFIX) || !parseIp(name)) continue
    try {
      const owner = decode(readFileSync(join(dir, name), 'utf8'))
      if (owner) out.set(name, owner)
    } catch (e) {
      if (!isMissing(e)) throw e // released since readdir: not a reservation any more
    }
  }
  return out
}

/** Reserves `ip` for `owner`; false when someone holds it already. */
export function claim(dir: string, ip: Ip, owner: Owner): boolean {
  const temp = tempFile(dir, encode(owner))
  try {
    linkSync(temp, join(dir, formatIp(ip)))
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw e
  } finally {
    unlinkSync(temp)
  }
}

/**
 * Removes `name`'s reservation if `owner` holds it; true if it did.
 * The file is renamed aside before its owner is read back, so what gets deleted is exactly what was checked.
 */
export function release(dir: string, name: string, owner: Owner, onConflict: (msg: string) => void): boolean {
  const path = join(dir, name)
  const aside = join(dir, `${TEMP_PREFIX}rel-${uniqueSuffix()}`)
  try {
    renameSync(path, aside)
  } catch (e) {
    if (isMissing(e)) return false
    throw e
  }
  const holder = decode(readFileSync(aside, 'utf8'))
  if (holder && !sameOwner(holder, owner)) {
    // Another release freed the address and a new attachment claimed it in between: put its claim back.
    try {
      linkSync(aside, path)
    } catch (e) {
      onConflict(`address ${name} of ${holder.containerId}/${holder.ifname} could not be restored: ${(e as Error).message}`)
    }
    unlinkSync(aside)
    return false
  }
  unlinkSync(aside)
  return true
}

/** Releases every reservation whose owner `drop` accepts; returns the released addresses. */
export function releaseWhere(dir: string, drop: (o: Owner) => boolean, onConflict: (msg: string) => void): string[] {
  const released: string[] = []
  for (const [name, owner] of scan(dir)) if (drop(owner) && release(dir, name, owner, onConflict)) released.push(name)
  return released
}

export const owns = (owner: Owner) => (o: Owner) => sameOwner(o, owner)

/** The last address handed out from range set `set`: advisory, may be missing, stale or garbage. */
export function readHint(dir: string, set: number): Ip | undefined {
  try {
    return parseIp(readFileSync(join(dir, `${HINT_PREFIX}${set}`), 'utf8').trim())
  } catch {
    return undefined
  }
}

export function writeHint(dir: string, set: number, ip: Ip): void {
  const temp = tempFile(dir, formatIp(ip))
  renameSync(temp, join(dir, `${HINT_PREFIX}${set}`))
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 })
}

/** Removes temp files left by killed processes. ctime, not mtime: a rename (release) renews ctime only. */
export function sweepTemps(dir: string, now = Date.now()): void {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    if (isMissing(e)) return
    throw e
  }
  for (const name of names.filter((n) => n.startsWith(TEMP_PREFIX))) {
    try {
      if (now - statSync(join(dir, name)).ctimeMs > STALE_TEMP_MS) unlinkSync(join(dir, name))
    } catch (e) {
      if (!isMissing(e)) throw e
    }
  }
}
