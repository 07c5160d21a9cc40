// ADD waits for the node agent to report the workload programmed, bounded,
// and never fails the pod because of the agent (absent, refusing, slow, 504).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { addNetns } from './lib/host.ts'
import { leftovers, NOTHING, runWren, wrenConf, testbed } from './lib/cni-runner.ts'

type Behaviour = { status: number; delayMs: number } | 'absent' | 'stale-socket'

const cases: { name: string; agent: Behaviour; minMs?: number; maxMs?: number; logs?: RegExp }[] = [
  { name: 'programmed after 400 ms: ADD waits for it', agent: { status: 200, delayMs: 400 }, minMs: 400 },
  { name: 'agent gives up (504): ADD succeeds with a warning', agent: { status: 504, delayMs: 0 }, logs: /did not report the workload programmed/ },
  { name: 'agent never answers: ADD succeeds after agentWaitMs + slack', agent: { status: 0, delayMs: 0 }, minMs: 1500, logs: /did not report/ },
  { name: 'no agent socket: ADD does not wait', agent: 'absent', maxMs: 1000 },
  { name: 'socket without a listener: ADD does not wait', agent: 'stale-socket', maxMs: 1000 },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const { cleanup, state } = testbed(t, 'wc-agent-')
    const runDir = join(state, 'run')
    mkdirSync(runDir)
    const conf = wrenConf({ stateDir: state, subnets: [['10.91.9.0/24']], extra: { agentWaitMs: 500 } })
    const att = { containerId: 'agent-1', ifname: 'eth0', netns: addNetns(cleanup, 'wc-agent'), args: { K8S_POD_NAMESPACE: 'a', K8S_POD_NAME: 'p' } }
    cleanup.push('DEL', async () => void (await runWren('DEL', conf, att)))
    const asked: string[] = []
    if (typeof c.agent === 'object') {
      const { status, delayMs } = c.agent
      const server = createServer((req, res) => {
        // an agent without the shim's endpoint: the shim then runs the Node plugin, whose wait is tested here
        if (req.url === '/cni') return void res.writeHead(404).end()
        asked.push(req.url ?? '')
        if (status) setTimeout(() => res.writeHead(status).end(), delayMs)
      })
      await new Promise<void>((r) => server.listen(join(runDir, 'agent.sock'), r))
      cleanup.push('agent', () => {
        server.closeAllConnections()
        server.close()
      })
    } else if (c.agent === 'stale-socket') {
      const server = createServer()
      await new Promise<void>((r) => server.listen(join(runDir, 'agent.sock'), r))
      // closing a unix server unlinks its socket; put a plain file back in its place to stand for a stale one
      await new Promise<void>((r) => server.close(() => r()))
      writeFileSync(join(runDir, 'agent.sock'), '')
    }
    const r = await runWren('ADD', conf, att)
    t.equal(r.code, 0, `ADD succeeds (${r.ms.toFixed(0)} ms)`)
    if (c.minMs) t.ok(r.ms >= c.minMs, `took at least ${c.minMs} ms`)
    if (c.maxMs) t.ok(r.ms < c.maxMs, `took under ${c.maxMs} ms`)
    if (typeof c.agent === 'object') t.match(asked, [`/programmed?iface=${r.json.interfaces[0].name}&timeoutMs=500`], 'asked about the host veth')
    if (c.logs) t.match(readFileSync(join(state, 'cni.log'), 'utf8'), c.logs)
    t.equal((await runWren('DEL', conf, att)).code, 0)
    t.same(leftovers(state), NOTHING)
  })
}
