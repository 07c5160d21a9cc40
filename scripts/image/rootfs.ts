// The image's Debian part: the commands the agent and the plugin run, picked
// file by file out of the unpacked packages (no docs, man pages, locales or
// package tooling ever enter), plus exactly the shared libraries they and the
// app's ELF files load (followed through DT_NEEDED), a minimal /etc and the
// directories a container runtime mounts over. Laid out merged-/usr, as
// Debian installs itself: /bin, /sbin, /lib and /lib64 are links into /usr.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, posix } from 'node:path'
import type { Deb } from './debs.ts'
import { needed } from './elf.ts'

/**
 * What the image takes from each package (paths as the package ships them).
 * iptables: both backends' multi-binaries with their links, and every xtables
 * match/target module (they are loaded by name at run time, so no ELF walk
 * finds them). dash: bin/wren-enforcer is a sh script and the one place that
 * holds the runtime's flags, so the entrypoint, the init container and
 * `kubectl exec ... wren-enforcer status` all run it; readlink and dirname are
 * the two commands it calls. nsenter: the plugin enters pod netns with it.
 */
export const PICKS: Record<string, string[]> = {
  iptables: ['usr/sbin/', 'usr/lib/x86_64-linux-gnu/xtables/'],
  ipset: ['usr/sbin/ipset'],
  iproute2: ['bin/ip', 'sbin/ip', 'etc/iproute2/'],
  conntrack: ['usr/sbin/conntrack'],
  'util-linux': ['usr/bin/nsenter'],
  dash: ['bin/dash', 'bin/sh'],
  coreutils: ['bin/readlink', 'usr/bin/dirname'],
  netbase: ['etc/protocols', 'etc/services', 'etc/ethertypes', 'etc/rpc'],
  libc6: ['lib64/', 'etc/ld.so.conf.d/'],
  'base-files': ['usr/lib/os-release', 'etc/os-release', 'etc/debian_version'],
}
/** Bash scripts (iptables-apply) and the nft monitor nobody runs in a pod. */
const SKIP = /(^|\/)(ip6?tables-apply|xtables-monitor)$/
/** Packages only the app's ELF files need (the pinned Node runtime: libstdc++, libgcc_s). */
export const LIBRARY_ROOTS = ['libstdc++6', 'libgcc-s1']

const LIB_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'usr/lib64']
const MERGED = ['bin', 'sbin', 'lib', 'lib64']

/** bin/ip -> usr/bin/ip: the merged-/usr place of a packaged path. */
function merged(rel: string): string {
  return MERGED.includes(rel.split('/')[0]) ? `usr/${rel}` : rel
}

/** Copies a file, link or tree, keeping links as links and modes as shipped. */
function copy(src: string, dst: string, skip?: RegExp): void {
  if (skip?.test(src)) return
  const st = lstatSync(src)
  mkdirSync(dirname(dst), { recursive: true })
  if (st.isSymbolicLink()) {
    rmSync(dst, { force: true })
    symlinkSync(readlinkSync(src), dst)
  } else if (st.isDirectory()) {
    mkdirSync(dst, { recursive: true })
    chmodSync(dst, st.mode & 0o7777)
    for (const e of readdirSync(src)) copy(join(src, e), join(dst, e), skip)
  } else {
    copyFileSync(src, dst)
    chmodSync(dst, st.mode & 0o7777)
  }
}

/** Every regular file under a folder (links not followed). */
export function walkFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...walkFiles(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/** soname -> where it is in the pile (package folder, path inside it). */
function libraryIndex(pile: string, debs: Deb[]): Map<string, { pkg: string; rel: string }> {
  const index = new Map<string, { pkg: string; rel: string }>()
  for (const d of debs)
    for (const dir of LIB_DIRS) {
      const abs = join(pile, d.name, dir)
      if (!existsSync(abs)) continue
      for (const f of readdirSync(abs)) if (/\.so(\.|$)/.test(f) && !index.has(f)) index.set(f, { pkg: d.name, rel: `${dir}/${f}` })
    }
  return index
}

/** Copies a library and, when it is a link (libfoo.so.1 -> libfoo.so.1.2.3), what it points at. */
function copyLibrary(pile: string, pkg: string, rel: string, root: string): string {
  const src = join(pile, pkg, rel)
  copy(src, join(root, merged(rel)))
  if (!lstatSync(src).isSymbolicLink()) return src
  const target = readlinkSync(src)
  const targetRel = target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(rel), target)
  return copyLibrary(pile, pkg, targetRel, root)
}

/**
 * Assembles the Debian part into `root`. `appElves` are the app's own ELF files
 * (node, native addons, the shims), staged elsewhere, whose libraries go here.
 * Returns the packages it took anything from.
 */
export function assembleBase(pile: string, debs: Deb[], root: string, appElves: string[]): Set<string> {
  const used = new Set<string>()
  for (const top of MERGED) mkdirSync(join(root, 'usr', top), { recursive: true })
  for (const top of MERGED) symlinkSync(`usr/${top}`, join(root, top))
  for (const [pkg, paths] of Object.entries(PICKS))
    for (const p of paths) {
      const src = join(pile, pkg, p.replace(/\/$/, ''))
      if (!existsSync(src)) throw new Error(`${pkg} ships no ${p} (the Debian package changed?)`)
      copy(src, join(root, merged(p.replace(/\/$/, ''))), SKIP)
      used.add(pkg)
    }

  // the libraries: what every ELF file loads, and what those load
  const index = libraryIndex(pile, debs)
  const have = new Set<string>()
  let todo = [...walkFiles(root), ...appElves]
  while (todo.length) {
    const next: string[] = []
    for (const f of todo)
      for (const so of needed(f) ?? []) {
        if (have.has(so)) continue
        const at = index.get(so)
        if (!at) throw new Error(`${f} needs ${so}, which no downloaded package ships: add its package to LIBRARY_ROOTS`)
        have.add(so)
        used.add(at.pkg)
        next.push(copyLibrary(pile, at.pkg, at.rel, root))
      }
    todo = next
  }

  writeEtc(root)
  for (const d of ['tmp', 'run', 'proc', 'sys', 'dev', 'root', 'var/lib', 'var/cache']) mkdirSync(join(root, d), { recursive: true })
  chmodSync(join(root, 'tmp'), 0o1777)
  chmodSync(join(root, 'root'), 0o700)
  symlinkSync('/run', join(root, 'var/run'))
  iptablesDefaults(root)
  ldCache(root)
  return used
}

function writeEtc(root: string): void {
  const etc = join(root, 'etc')
  mkdirSync(etc, { recursive: true })
  writeFileSync(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  writeFileSync(join(etc, 'group'), 'root:x:0:\n')
  writeFileSync(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n')
  writeFileSync(join(etc, 'ld.so.conf'), 'include /etc/ld.so.conf.d/*.conf\n')
}

/**
 * `iptables` is iptables-nft, as on Debian since buster (update-alternatives makes
 * these links on a real install; the image runs no maintainer scripts). The
 * legacy commands keep their -legacy names; the agent picks its backend itself.
 */
function iptablesDefaults(root: string): void {
  const sbin = join(root, 'usr/sbin')
  for (const fam of ['iptables', 'ip6tables'])
    for (const suffix of ['', '-save', '-restore']) {
      const nft = `${fam}-nft${suffix}`
      if (!existsSync(join(sbin, nft))) throw new Error(`iptables ships no ${nft}`)
      symlinkSync(nft, join(sbin, `${fam}${suffix}`))
    }
}

/** /etc/ld.so.cache for the image's own libraries (ldconfig run on the image's root). */
function ldCache(root: string): void {
  const r = spawnSync('ldconfig', ['-X', '-r', root], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ldconfig -r ${root}: ${r.stderr || r.error?.message}`)
  rmSync(join(root, 'var/cache/ldconfig'), { recursive: true, force: true })
}

/**
 * dpkg's status records of the packages the image took files from, one file per
 * package as distroless images keep them (var/lib/dpkg/status.d/), so image
 * scanners can match the Debian versions against advisories.
 */
export function writeStatus(root: string, debs: Deb[], used: Set<string>, cacheDir: string): void {
  const dir = join(root, 'var/lib/dpkg/status.d')
  mkdirSync(dir, { recursive: true })
  for (const d of debs.filter((x) => used.has(x.name))) {
    const r = spawnSync('dpkg-deb', ['-f', join(cacheDir, d.file)], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`dpkg-deb -f ${d.file}: ${r.stderr}`)
    writeFileSync(join(dir, d.name), `Package: ${d.name}\nStatus: install ok installed\n${r.stdout.replace(/^Package: .*\n/m, '')}`)
  }
}
