// Separate processes allocating from one range at the same moment, and
// processes SIGKILLed part-way: no address is ever handed out twice, and a
// retry of a killed attachment gets back what it had reserved.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ipamAdd, ipamGc, type IpamContext } from '../cni/ipam/index.ts'
import { parseIp } from '../cni/ipam/ipmath.ts'
import { exec } from '../shared/exec.ts'
import { nullLogger } from '../shared/log.ts'

const IPAM_URL = pathToFileURL(resolve(import.meta.dirname, '../cni/ipam/index.ts')).href
const LOG_URL = pathToFileURL(resolve(import.meta.dirname, '../shared/log.ts')).href

// Loads the real module, reports "ready", waits for the go file so that all
// children start together, then adds each attachment named on its command line.
const DRIVER = `
import { existsSync } from 'node:fs'
const [ipamUrl, logUrl, dataDir, goFile, hang, ...ids] = process.argv.slice(2)
const { ipamAdd } = await import(ipamUrl)
const { nullLogger } = await import(logUrl)
const ipam = JSON.parse(process.env.WREN_TEST_IPAM)
process.stdout.write('ready\\n')
while (!existsSync(goFile)) await new Promise((r) => setTimeout(r, 1))
for (const id of ids) {
  const r = await ipamAdd({ network: 'net1', containerId: id, ifname: 'eth0', ipam, netconf: {}, stateDir: dataDir, env: {}, exec: null, log: nullLogger })
  process.stdout.write(JSON.stringify({ id, ips: r.ips.map((i) => i.address) }) + '\\n')
}
if (hang === 'hang') setInterval(() => {}, 1000)
`

interface Child {
  proc: ChildProcess
  lines: string[]
  waitLines(n: number): Promise<void>
  exited: Promise<number | null>
}

function setup(t: Test, ipam: Record<string, unknown>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'wren-ipam-conc-'))
  const children: Child[] = []
  t.teardown(() => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  })
  const driver = join(dataDir, 'driver.mjs')
  const goFile = join(dataDir, 'go')
  writeFileSync(driver, DRIVER)
  const full = { type: 'wren', dataDir, ...ipam }
  const start = (ids: string[], hang = false): Child => {
    const args = ['--experimental-transform-types', '--no-warnings', driver, IPAM_URL, LOG_URL, dataDir, goFile, hang ? 'hang' : 'run', ...ids]
    const proc = spawn(process.execPath, args, { env: { ...process.env, WREN_TEST_IPAM: JSON.stringify(full) }, stdio: ['ignore', 'pipe', 'inherit'] })
    const lines: string[] = []
    let waiters: (() => void)[] = []
    let buf = ''
    proc.stdout!.on('data', (b: Buffer) => {
      buf += b.toString()
      const parts = buf.split('\n')
      buf = parts.pop()!
      lines.push(...parts)
      waiters.forEach((w) => w())
    })
    const exited = new Promise<number | null>((res) => proc.on('close', (code) => res(code)))
    const waitLines = (n: number) =>
      new Promise<void>((res, rej) => {
        const check = () => (lines.length >= n ? res() : undefined)
        waiters.push(check)
        exited.then(() => (lines.length >= n ? res() : rej(new Error(`child exited after ${lines.length}/${n} lines`))))
        check()
      })
    const c = { proc, lines, waitLines, exited }
    children.push(c)
    return c
  }
  const go = () => writeFileSync(goFile, '')
  const dir = join(dataDir, 'net1')
  const reservations = () =>
    new Map(readdirSync(dir).filter((n) => parseIp(n)).map((n) => [n, readFileSync(join(dir, n), 'utf8').split('\n')[0]]))
  const ctx = (containerId: string): IpamContext => ({
    network: 'net1', containerId, ifname: 'eth0', ipam: full, netconf: {}, stateDir: dataDir, env: {}, exec, log: nullLogger,
  })
  return { start, go, reservations, ctx }
}

const results = (c: Child) => c.lines.filter((l) => l !== 'ready').map((l) => JSON.parse(l) as { id: string; ips: string[] })

t.test('32 processes allocating at once get 32 distinct addresses of each family', async (t) => {
  const s = setup(t, { ranges: [[{ subnet: '10.77.0.0/24' }], [{ subnet: 'fd00:77::/120' }]] })
  const kids = Array.from({ length: 32 }, (_, i) => s.start([`c${i}`]))
  await Promise.all(kids.map((k) => k.waitLines(1)))
  s.go()
  const codes = await Promise.all(kids.map((k) => k.exited))
  t.same(codes, Array(32).fill(0), 'every child succeeded')
  const got = kids.flatMap(results)
  t.equal(got.length, 32)
  const v4 = new Set(got.map((r) => r.ips[0]))
  const v6 = new Set(got.map((r) => r.ips[1]))
  t.equal(v4.size, 32, 'distinct IPv4 addresses')
  t.equal(v6.size, 32, 'distinct IPv6 addresses')
  const files = s.reservations()
  t.equal(files.size, 64, '64 reservation files')
  for (const r of got) {
    t.equal(files.get(r.ips[0].split('/')[0]), r.id, `${r.ips[0]} belongs to ${r.id}`)
    t.equal(files.get(r.ips[1].split('/')[0]), r.id, `${r.ips[1]} belongs to ${r.id}`)
  }
})

t.test('a process SIGKILLed after reserving: the retry gets the same address', async (t) => {
  const s = setup(t, { ranges: [[{ subnet: '10.78.0.0/24' }]] })
  const k = s.start(['victim'], true)
  await k.waitLines(1)
  s.go()
  await k.waitLines(2)
  k.proc.kill('SIGKILL')
  t.equal(await k.exited, null, 'killed, not exited')
  const before = results(k)[0].ips
  const retry = await ipamAdd(s.ctx('victim'))
  t.same(retry.ips.map((i) => i.address), before)
  t.equal(s.reservations().size, 1, 'no second reservation')
  t.same((await ipamAdd(s.ctx('other'))).ips.map((i) => i.address), ['10.78.0.2/24'], 'a newcomer does not get the victim address')
})

t.test('processes SIGKILLed at random points: retries keep their reservations, none is shared', async (t) => {
  const s = setup(t, { ranges: [[{ subnet: '10.79.0.0/22' }]] })
  const ids = (p: number) => Array.from({ length: 12 }, (_, j) => `p${p}-${j}`)
  const kids = Array.from({ length: 16 }, (_, p) => s.start(ids(p)))
  await Promise.all(kids.map((k) => k.waitLines(1)))
  s.go()
  // Child p dies while adding its (p % 12 + 1)th attachment: kills land at every stage of the burst.
  kids.forEach((k, p) => k.waitLines(2 + (p % 12)).then(() => k.proc.kill('SIGKILL'), () => {}))
  await Promise.all(kids.map((k) => k.exited))
  const before = s.reservations()
  const owners = [...before.values()]
  t.equal(new Set(owners).size, owners.length, 'no attachment holds two addresses after the kills')
  for (const r of kids.flatMap(results)) t.equal(before.get(r.ips[0].split('/')[0]), r.id, `reported ${r.ips[0]} is reserved for ${r.id}`)
  const all = kids.flatMap((_, p) => ids(p))
  const again = new Map<string, string>()
  for (const id of all) again.set(id, (await ipamAdd(s.ctx(id))).ips[0].address.split('/')[0])
  for (const [ip, id] of before) t.equal(again.get(id), ip, `${id} got back ${ip}`)
  t.equal(new Set(again.values()).size, all.length, 'every attachment has its own address')
  t.equal(s.reservations().size, all.length, 'one reservation per attachment, nothing leaked')
  t.comment(`${before.size} of ${all.length} attachments had reserved before the kills`)
  const { containerId: _c, ifname: _i, ...net } = s.ctx('x')
  await ipamGc(net, [])
  t.equal(s.reservations().size, 0, 'GC with no valid attachment frees everything')
})
