// SIGKILL mid-ADD, then ADD again and DEL: the re-ADD reuses the
// attachment's reservation and replaces the stale host veth; nothing leaks
// and no address is handed out twice. Kill points with the built-in IPAM:
// before the veth, before the pod side, during the agent wait; and inside a
// slow delegated IPAM right after host-local reserved.
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { addNetns, Cleanup, tempDir } from './lib/host.ts'
import { CNI_PATH, cniEnv, leftovers, NOTHING, resultIps, runWren, WREN_BIN_PATH, wrenConf, type Attachment, testbed } from './lib/cni-runner.ts'

/** Starts the plugin in its own process group so the kill also takes its children. */
function startAdd(conf: unknown, att: Attachment, cniPath: string[], PATH = process.env.PATH) {
  const env = cniEnv('ADD', { ...att, args: { IgnoreUnknown: '1' } }, cniPath, { PATH })
  const child = spawn(WREN_BIN_PATH, [], { env, detached: true, stdio: ['pipe', 'ignore', 'ignore'] })
  child.stdin.end(JSON.stringify(conf))
  const exited = new Promise<string | null>((res) => child.on('exit', (_c, sig) => res(sig)))
  return { kill: () => process.kill(-child.pid!, 'SIGKILL'), exited }
}

async function until(what: string, cond: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A stand-in agent: parks every /programmed request until the test lets it go. */
function parkingAgent(cleanup: Cleanup, runDir: string): { server: Server; parked: () => number } {
  mkdirSync(runDir, { recursive: true })
  let parked = 0
  const server = createServer((req, res) => {
    // no /cni endpoint: the shim runs the Node plugin, the process this test kills
    if (req.url === '/cni') return void res.writeHead(404).end()
    parked++
  })
  server.listen(join(runDir, 'agent.sock'))
  cleanup.push('agent', () => new Promise<void>((r) => server.close(() => r())))
  server.on('connection', (s) => cleanup.push('agent conn', () => void s.destroy()))
  return { server, parked: () => parked }
}

/**
 * Wrappers for `ip` and `nsenter` that park (while the file "slow-TOOL" exists) before running the
 * real program: they hold the plugin right before it creates the veth, or right before it
 * configures the pod side, so the kill lands at a known step.
 */
function parkingTools(cleanup: Cleanup): { dir: string; slow: (tool: string) => string; at: (tool: string) => string } {
  const dir = tempDir(cleanup, 'wc-crash-tools-')
  const slow = (tool: string) => join(dir, `slow-${tool}`)
  const at = (tool: string) => join(dir, `at-${tool}`)
  for (const tool of ['ip', 'nsenter']) {
    const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim()
    writeFileSync(join(dir, tool), `#!/bin/sh\nif [ -e ${slow(tool)} ]; then touch ${at(tool)}; sleep 30; fi\nexec ${real} "$@"\n`)
    chmodSync(join(dir, tool), 0o755)
  }
  return { dir, slow, at }
}

const POINTS = [
  { name: 'before the veth exists (IP reserved)', tool: 'ip', links: 0, records: 0 },
  { name: 'before the pod side is configured (veth created)', tool: 'nsenter', links: 1, records: 0 },
  { name: 'while waiting for the agent (record written)', tool: 'agent', links: 1, records: 1 },
]

for (const [n, point] of POINTS.entries()) {
  t.test(`killed ${point.name}; re-ADD and DEL leave no leak and no duplicate`, async (t) => {
    const { cleanup, state } = testbed(t, 'wc-crash-')
    const conf = wrenConf({ stateDir: state, subnets: [['10.91.5.0/24']], extra: { agentWaitMs: 20000 } })
    const att = { containerId: `crash-${n}a`, ifname: 'eth0', netns: addNetns(cleanup, 'wc-cr1') }
    const other = { containerId: `crash-${n}b`, ifname: 'eth0', netns: addNetns(cleanup, 'wc-cr2') }
    cleanup.push('DEL', async () => {
      for (const a of [att, other]) await runWren('DEL', conf, a)
    })
    const tools = parkingTools(cleanup)
    let stopAgent = async () => {}
    let run: ReturnType<typeof startAdd>
    if (point.tool === 'agent') {
      const agent = parkingAgent(cleanup, join(state, 'run'))
      stopAgent = async () => {
        await new Promise<void>((r) => agent.server.close(() => r()))
        rmSync(join(state, 'run', 'agent.sock'), { force: true })
      }
      run = startAdd(conf, att, CNI_PATH)
      await until('the agent wait', () => agent.parked() === 1)
    } else {
      writeFileSync(tools.slow(point.tool), '')
      run = startAdd(conf, att, CNI_PATH, `${tools.dir}:${process.env.PATH}`)
      await until(`the plugin to reach ${point.tool}`, () => existsSync(tools.at(point.tool)))
    }
    run.kill()
    t.equal(await run.exited, 'SIGKILL')
    rmSync(tools.slow(point.tool), { force: true })
    await stopAgent()
    const crashed = leftovers(state)
    t.equal(crashed.reservations.length, 1, 'the killed ADD holds a reservation')
    t.equal(crashed.links.length, point.links, `host veths left: ${point.links}`)
    t.equal(crashed.records.length, point.records, `records left: ${point.records}`)

    const again = await runWren('ADD', conf, att)
    t.equal(again.code, 0, `re-ADD succeeds: ${again.stdout}`)
    t.same(resultIps(again.json), crashed.reservations.map((f) => f.split('/').pop()), 'the reservation is reused')
    const second = await runWren('ADD', conf, other)
    t.equal(second.code, 0)
    t.notSame(resultIps(second.json), resultIps(again.json), 'no duplicate address')
    const now = leftovers(state)
    t.equal(now.links.length, 2, 'one veth per pod')
    t.equal(now.reservations.length, 2, 'one reservation per pod')
    for (const a of [att, other]) t.equal((await runWren('DEL', conf, a)).code, 0)
    t.same(leftovers(state), NOTHING, 'nothing leaks')
  })
}

t.test('killed inside a slow delegated IPAM right after it reserved', async (t) => {
  const { cleanup, state } = testbed(t, 'wc-crash-')
  const dataDir = join(state, 'host-local')
  const bin = tempDir(cleanup, 'wc-crash-bin-')
  const slow = join(bin, 'slow')
  const reserved = join(bin, 'reserved')
  // host-local, then park (while the file "slow" exists) before handing the result back
  writeFileSync(
    join(bin, 'wtc-slow-ipam'),
    `#!/bin/sh\nout=$(/usr/lib/cni/host-local)\nrc=$?\nif [ "$CNI_COMMAND" = ADD ] && [ -e ${slow} ]; then touch ${reserved}; sleep 30; fi\nprintf '%s' "$out"\nexit $rc\n`,
  )
  chmodSync(join(bin, 'wtc-slow-ipam'), 0o755)
  writeFileSync(slow, '')
  const conf = wrenConf({ stateDir: state, cniVersion: '1.0.0', ipam: { type: 'wtc-slow-ipam', dataDir, ranges: [[{ subnet: '10.91.5.0/24' }]] } })
  const att = { containerId: 'crash-3', ifname: 'eth0', netns: addNetns(cleanup, 'wc-cr3') }
  const other = { containerId: 'crash-4', ifname: 'eth0', netns: addNetns(cleanup, 'wc-cr4') }
  const path = [bin, ...CNI_PATH]
  cleanup.push('DEL', async () => {
    for (const a of [att, other]) await runWren('DEL', conf, a, path)
  })
  const run = startAdd(conf, att, path)
  await until('the reservation', () => existsSync(reserved))
  run.kill()
  await run.exited
  const crashed = leftovers(state, dataDir)
  t.equal(crashed.reservations.length, 1, 'host-local holds the killed ADD reservation')
  t.equal(crashed.links.length, 0, 'no veth yet')
  rmSync(slow)

  // host-local alone refuses a second ADD of an attachment it serves ("duplicate allocation");
  // cni/ipam's journal of delegated ADDs makes the retry succeed without leaking the first claim
  const again = await runWren('ADD', conf, { ...att, args: { IgnoreUnknown: '1' } }, path)
  t.equal(again.code, 0, `re-ADD succeeds: ${again.stdout}`)
  const second = await runWren('ADD', conf, { ...other, args: { IgnoreUnknown: '1' } }, path)
  t.equal(second.code, 0)
  const ips = [...resultIps(again.json), ...resultIps(second.json)]
  t.equal(new Set(ips).size, 2, 'two pods, two addresses')
  t.equal(leftovers(state, dataDir).reservations.length, 2, 'the killed ADD reservation did not leak')
  for (const a of [att, other]) t.equal((await runWren('DEL', conf, a, path)).code, 0)
  t.same(leftovers(state, dataDir), NOTHING, 'nothing leaks')
  t.same(readdirSync(bin).sort(), ['reserved', 'wtc-slow-ipam'])
})
