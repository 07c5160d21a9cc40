// Debian packages for the image: which ones (the tools' Depends, followed
// recursively, stopping at packages the image never runs), fetched with
// `apt-get download` into a cache that survives between builds, and unpacked
// one folder per package with `dpkg-deb -x`. Nothing here installs anything on
// the build machine. rootfs.ts then picks files out of the unpacked folders.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

export interface Deb {
  name: string
  version: string
  /** the pool file name, e.g. iptables_1.8.9-2_amd64.deb; the cache is keyed by it */
  file: string
  depends: string[]
}

/**
 * Packages whose Depends are not followed: maintainer-script machinery (the image
 * runs no maintainer scripts; awk is base-files' only for those), setcap tools, and the shell/readline stacks that
 * only interactive tools pull in. The ELF check in rootfs.ts catches a library
 * that a stop here would have hidden.
 */
const STOP = new Set(['debconf', 'cdebconf', 'debconf-2.0', 'dpkg', 'install-info', 'tar', 'libcap2-bin', 'perl-base', 'readline-common', 'lsb-base', 'sysvinit-utils', 'init-system-helpers', 'awk'])

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`)
  return r.stdout
}

/** `apt-cache show --no-all-versions` of many packages at once: the candidate of each. */
function show(names: string[]): Deb[] {
  const out = run('apt-cache', ['show', '--no-all-versions', ...names])
  return out
    .split(/\n\n+/)
    .filter((s) => s.trim())
    .map((stanza) => {
      const field = (f: string) => stanza.match(new RegExp(`^${f}: (.*(?:\\n .*)*)`, 'm'))?.[1].replace(/\n /g, ' ') ?? ''
      const deps = [field('Pre-Depends'), field('Depends')].filter(Boolean).join(', ')
      return {
        name: field('Package'),
        version: field('Version'),
        file: field('Filename').split('/').pop()!,
        // "a (>= 1) | b, c [amd64]": the first alternative of each group
        depends: deps ? deps.split(/,\s*/).map((g) => g.split('|')[0].trim().split(/[\s:(]/)[0]) : [],
      }
    })
}

/**
 * The packages `roots` need, by Depends, without following the STOP list. apt
 * here keeps no binary cache (Debian's container setups turn it off), so every
 * apt-cache call parses the lists again (~1 s): two calls, not one per level.
 * `apt-cache depends --recurse` names a superset (it follows STOP too); one
 * `show` of those, and the walk with STOP happens here.
 */
export function resolve(roots: string[]): Deb[] {
  const flags = ['--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances']
  const names = run('apt-cache', ['depends', '--recurse', ...flags, ...roots])
    .split('\n')
    .filter((l) => l && !l.startsWith(' ') && !l.startsWith('<')) // virtual names come as <name>
  const known = new Map(show([...new Set(names)]).map((d) => [d.name, d]))
  const found = new Map<string, Deb>()
  let wanted = [...new Set(roots)]
  while (wanted.length) {
    for (const w of wanted) {
      const d = known.get(w)
      if (!d) throw new Error(`no Debian package named ${w} (apt-get update?)`)
      found.set(w, d)
    }
    wanted = [...new Set(wanted.flatMap((w) => found.get(w)!.depends))].filter((n) => !found.has(n) && !STOP.has(n))
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name))
}

/** Downloads the .debs not yet in `cacheDir`; returns how many it fetched. */
export function fetch(debs: Deb[], cacheDir: string): number {
  mkdirSync(cacheDir, { recursive: true })
  const missing = debs.filter((d) => !existsSync(join(cacheDir, d.file)))
  if (!missing.length) return 0
  const tmp = join(cacheDir, 'partial')
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp)
  // as root apt would hand the download to user _apt, who cannot write here
  run('apt-get', ['download', '-qq', '-o', 'APT::Sandbox::User=root', ...missing.map((d) => `${d.name}=${d.version}`)], tmp)
  // apt names files with the version's epoch escaped (1%3a...), the pool without it: store under the pool name
  for (const d of missing) {
    const got = readdirSync(tmp).find((f) => f.startsWith(`${d.name}_`))
    if (!got) throw new Error(`apt-get download ${d.name}=${d.version} left no file`)
    renameSync(join(tmp, got), join(cacheDir, d.file))
  }
  rmSync(tmp, { recursive: true, force: true })
  return missing.length
}

/** Unpacks each package into pileDir/<name>/, a few dpkg-deb at a time. */
export async function unpack(debs: Deb[], cacheDir: string, pileDir: string): Promise<void> {
  mkdirSync(pileDir, { recursive: true })
  const todo = [...debs]
  const worker = async () => {
    for (let d = todo.shift(); d; d = todo.shift()) {
      const deb = d
      await new Promise<void>((res, rej) => {
        const p = spawn('dpkg-deb', ['-x', join(cacheDir, deb.file), join(pileDir, deb.name)], { stdio: ['ignore', 'ignore', 'pipe'] })
        let err = ''
        p.stderr.on('data', (b: Buffer) => (err += b))
        p.on('error', rej)
        p.on('close', (code) => (code === 0 ? res() : rej(new Error(`dpkg-deb -x ${deb.file} exited ${code}: ${err.trim()}`))))
      })
    }
  }
  await Promise.all(Array.from({ length: Math.max(2, availableParallelism()) }, worker))
}

/** Prunes cached .debs that no build names any more (old versions after a point release). */
export function pruneCache(debs: Deb[], cacheDir: string): void {
  const keep = new Set(debs.map((d) => d.file))
  for (const f of readdirSync(cacheDir)) if (f.endsWith('.deb') && !keep.has(f)) rmSync(join(cacheDir, f))
}
