// scripts/build-image: the node image (agent, plugin, pinned Node runtime,
// iptables nft + legacy, ipset, ip, conntrack, nsenter) as an OCI archive,
// without a container engine; renders the DaemonSet manifest with the image's
// name; prints its compressed size beside the runtime's own. Needs root (the
// ld.so cache is made with ldconfig -r) and umoci, skopeo (scripts/setup).
//
// Layers, bottom to top: the Debian part (rootfs.ts), the runtime alone, wren
// (app.ts). Reproducible: the same sources and Debian versions give the same
// manifest digest (sorted tars, root ownership, wren's files dated by
// SOURCE_DATE_EPOCH or the last commit, the others 0; the config's times the
// same). Fetched .debs stay in the cache dir between builds.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { PREFIX, RUNTIME, stageApp, stageRuntime } from './app.ts'
import { fetch, pruneCache, resolve, unpack } from './debs.ts'
import { buildLayout, layoutSizes, tarLayer, writeArchive } from './oci.ts'
import { assembleBase, LIBRARY_ROOTS, PICKS, walkFiles, writeStatus } from './rootfs.ts'

const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '')
const MANIFEST = 'conf/kubernetes/wren.yaml'
const TARGET_RATIO = 1.5

const USAGE = `usage: scripts/build-image [--tag NAME] [--out-dir DIR] [--cache-dir DIR]
  --tag NAME       image name (default localhost/wren:<package.json version>)
  --out-dir DIR    where the archive and the rendered manifest go (default dist/image)
  --cache-dir DIR  downloaded .debs, kept between builds (default $WREN_IMAGE_CACHE or /var/cache/wren-image)`

function git(args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd: REPO, encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** Bytes of `gzip -6` of a file, counted as they stream (runs beside the build). */
function gzipSize(file: string): Promise<number> {
  return new Promise((res, rej) => {
    const p = spawn('gzip', ['-6', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] })
    let n = 0
    p.stdout.on('data', (b: Buffer) => (n += b.length))
    p.on('error', rej)
    p.on('close', (code) => (code === 0 ? res(n) : rej(new Error(`gzip exited ${code}`))))
  })
}

/** conf/kubernetes/wren.yaml with every `localhost/wren:<version>` replaced by the image built. */
function renderManifest(outDir: string, defaultImage: string, tag: string): { path: string; count: number } {
  const text = readFileSync(join(REPO, MANIFEST), 'utf8')
  const count = text.split(defaultImage).length - 1
  const path = join(outDir, 'wren.yaml')
  writeFileSync(path, text.split(defaultImage).join(tag))
  return { path, count }
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`

async function main(): Promise<void> {
  const options = { tag: { type: 'string' }, 'out-dir': { type: 'string' }, 'cache-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const
  let a: ReturnType<typeof parseArgs<{ options: typeof options }>>['values']
  try {
    a = parseArgs({ options }).values
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`)
  }
  if (a.help) return void console.log(USAGE)
  if (process.getuid?.() !== 0) throw new Error('run as root (ldconfig -r makes the image its ld.so cache)')
  const t0 = performance.now()
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; description: string; license: string }
  const defaultImage = `localhost/wren:${pkg.version}`
  const tag = a.tag ?? defaultImage
  const outDir = a['out-dir'] ?? join(REPO, 'dist', 'image')
  const cacheDir = join(a['cache-dir'] ?? process.env.WREN_IMAGE_CACHE ?? '/var/cache/wren-image', 'debs')
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? git(['log', '-1', '--format=%ct']) ?? 0)
  const created = new Date(epoch * 1000).toISOString()

  const b = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs')], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] })
  if (b.status !== 0) throw new Error('scripts/build.mjs failed')
  const gzipped = gzipSize(join(REPO, RUNTIME, 'bin/node'))
  gzipped.catch(() => {}) // awaited below; not an unhandled rejection meanwhile

  const work = mkdtempSync(join(tmpdir(), 'wren-image-'))
  // the work dir holds ~700 MB (unpacked packages, layer tars): gone on Ctrl-C too
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      rmSync(work, { recursive: true, force: true })
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15))
    })
  try {
    const debs = resolve([...Object.keys(PICKS), ...LIBRARY_ROOTS])
    const fetched = fetch(debs, cacheDir)
    pruneCache(debs, cacheDir)
    await unpack(debs, cacheDir, join(work, 'pile'))
    const tBuild = performance.now()

    const [base, runtime, app] = ['base', 'runtime', 'app'].map((l) => join(work, l))
    stageRuntime(REPO, runtime)
    stageApp(REPO, app)
    const used = assembleBase(join(work, 'pile'), debs, base, [...walkFiles(runtime), ...walkFiles(app)])
    writeStatus(base, debs, used, cacheDir)

    // The Debian and runtime layers' files get mtime 0, so their digests follow their contents
    // only: a node that ran another wren version with the same runtime has that layer already.
    const layers = [
      { dir: base, mtime: 0, what: 'Debian: iptables (nft, legacy), ipset, iproute2, conntrack, nsenter, dash and their libraries' },
      { dir: runtime, mtime: 0, what: `the pinned Node runtime (${RUNTIME})` },
      { dir: app, mtime: epoch, what: 'wren: bin/, dist/, production node_modules' },
    ].map((l, i) => {
      const tar = join(work, `layer${i}.tar`)
      tarLayer(l.dir, tar, l.mtime)
      return { tar, createdBy: `scripts/build-image: ${l.what}` }
    })
    const layout = join(work, 'oci')
    const revision = git(['rev-parse', 'HEAD'])
    buildLayout(layout, 'wren', layers, {
      entrypoint: [`/${PREFIX}/bin/wren-enforcer`],
      cmd: ['run', '--in-cluster'],
      env: [`PATH=/${PREFIX}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`],
      workingDir: `/${PREFIX}`,
      created,
      labels: {
        'org.opencontainers.image.title': 'wren',
        'org.opencontainers.image.description': pkg.description,
        'org.opencontainers.image.version': pkg.version,
        'org.opencontainers.image.licenses': pkg.license,
        'org.opencontainers.image.created': created,
        ...(revision ? { 'org.opencontainers.image.revision': revision } : {}),
      },
    })
    const sizes = layoutSizes(layout, 'wren')
    mkdirSync(outDir, { recursive: true })
    const archive = join(outDir, `wren-${pkg.version}.oci.tar`)
    rmSync(archive, { force: true })
    writeArchive(layout, 'wren', archive, tag)
    const manifest = existsSync(join(REPO, MANIFEST)) ? renderManifest(outDir, defaultImage, tag) : undefined
    const nodeGz = await gzipped
    const secs = (performance.now() - t0) / 1000
    const rel = (p: string) => (p.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), p) : p)

    const runtimeLayer = sizes.layers[1]
    const lines = [
      `image     ${tag}  (manifest ${sizes.manifestDigest})`,
      `archive   ${rel(archive)}`,
      manifest
        ? `manifest  ${rel(manifest.path)}: ${manifest.count} reference(s) to ${defaultImage} now name ${tag}`
        : `manifest  ${MANIFEST} is missing: nothing rendered`,
      `layers    Debian tools ${mb(sizes.layers[0])} · Node runtime ${mb(runtimeLayer)} · wren ${mb(sizes.layers[2])} (compressed)`,
      `size      image ${mb(sizes.total)} compressed; the runtime alone ${mb(runtimeLayer)} (its layer), ${mb(nodeGz)} (gzip -6 of bin/node)`,
      `ratio     ${(sizes.total / runtimeLayer).toFixed(2)}x the runtime's layer, ${(sizes.total / nodeGz).toFixed(2)}x its gzip -6 (target at most ${TARGET_RATIO}x)`,
      `time      ${secs.toFixed(1)} s (debs: ${fetched} fetched, ${debs.length - fetched} from ${cacheDir}; layers and archive ${((performance.now() - tBuild) / 1000).toFixed(1)} s)`,
      `load      skopeo copy oci-archive:${rel(archive)} docker-daemon:${tag}`,
      `          ctr -n k8s.io images import ${rel(archive)}`,
      `          kind load image-archive ${rel(archive)}`,
    ]
    console.log(['', '── wren image ──', ...lines, ''].join('\n'))
    if (manifest && manifest.count === 0) console.error(`warning: ${MANIFEST} names no ${defaultImage}; ${rel(manifest.path)} was copied unchanged`)
    if (sizes.total > TARGET_RATIO * runtimeLayer) console.error(`warning: the image is over ${TARGET_RATIO}x the runtime alone`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e: Error) => {
  console.error(`build-image: ${e.message}`)
  process.exit(1)
})
