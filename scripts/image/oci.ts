// From staged folders to an OCI image, without a daemon: GNU tar writes each
// layer (sorted names, one mtime, root ownership: the same tree gives the same
// bytes), umoci appends them to an OCI layout and sets the config, skopeo
// writes the layout as one oci-archive file.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 << 20 })
  if (r.error) throw new Error(`${cmd}: ${r.error.message}${r.error.message.includes('ENOENT') ? ' (scripts/setup installs it)' : ''}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`)
  return r.stdout
}

/** Writes `root`'s contents as an uncompressed layer tar. */
export function tarLayer(root: string, out: string, epoch: number): void {
  run('tar', [
    '--create', '--file', out, '--directory', root,
    '--sort=name', '--format=posix', `--mtime=@${epoch}`, '--owner=0', '--group=0', '--numeric-owner',
    // no atime/ctime records: they would differ on every build
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    ...readdirSync(root).sort(),
  ])
}

export interface ImageConfig {
  entrypoint: string[]
  cmd: string[]
  env: string[]
  labels: Record<string, string>
  workingDir: string
  /** RFC 3339, for the config and every history entry */
  created: string
}

/** A new OCI layout at `layout` with one image `ref` of these layers (uncompressed tars; umoci gzips them). */
export function buildLayout(layout: string, ref: string, layers: { tar: string; createdBy: string }[], c: ImageConfig): void {
  run('umoci', ['init', '--layout', layout])
  const image = `${layout}:${ref}`
  run('umoci', ['new', '--image', image])
  for (const l of layers) run('umoci', ['raw', 'add-layer', '--image', image, '--history.created', c.created, '--history.created_by', l.createdBy, l.tar])
  run('umoci', [
    'config', '--image', image, '--no-history', '--created', c.created, '--os', 'linux', '--architecture', 'amd64',
    ...c.entrypoint.flatMap((e) => ['--config.entrypoint', e]),
    ...c.cmd.flatMap((e) => ['--config.cmd', e]),
    ...c.env.flatMap((e) => ['--config.env', e]),
    ...Object.entries(c.labels).flatMap(([k, v]) => ['--config.label', `${k}=${v}`]),
    '--config.workingdir', c.workingDir,
  ])
  run('umoci', ['gc', '--layout', layout])
}

/** The layout's image as an oci-archive file named `name` (e.g. localhost/wren:0.1.0) inside. */
export function writeArchive(layout: string, ref: string, out: string, name: string): void {
  run('skopeo', ['copy', '--quiet', `oci:${layout}:${ref}`, `oci-archive:${out}:${name}`])
}

export interface Sizes {
  /** compressed bytes of each layer blob, in order */
  layers: number[]
  /** manifest + config + layers: what a registry stores and a node pulls */
  total: number
  manifestDigest: string
}

/** Blob sizes of `ref` in an OCI layout, from its index and manifest. */
export function layoutSizes(layout: string, ref: string): Sizes {
  const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'))
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] }
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === ref)
  if (!m) throw new Error(`no ${ref} in ${layout}`)
  const manifest = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { config: { size: number }; layers: { digest: string; size: number }[] }
  const layers = manifest.layers.map((l) => statSync(blob(l.digest)).size)
  return { layers, total: m.size + manifest.config.size + layers.reduce((a, b) => a + b, 0), manifestDigest: m.digest }
}
