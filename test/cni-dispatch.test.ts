import t from 'tap'
import { dispatch } from '../cni/main.ts'
import type { Exec } from '../shared/exec.ts'

/** Runs the dispatcher in-process, collecting stdout and log lines; any process it would spawn fails the test. */
async function run(env: NodeJS.ProcessEnv, stdin: string) {
  const out: string[] = []
  const logs: string[] = []
  const exec: Exec = async (cmd) => {
    throw new Error(`unexpected spawn of ${cmd}`)
  }
  const code = await dispatch({ env, stdin, stdout: (s) => out.push(s), exec, logSink: (l) => logs.push(l) })
  t.equal(out.length, 1, 'exactly one JSON document on stdout')
  return { code, json: JSON.parse(out[0]), logs }
}

const conf = JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'wren', ipam: { type: 'wren' }, stateDir: '/nonexistent-wc' })

t.test('VERSION needs no config', async (t) => {
  const r = await run({ CNI_COMMAND: 'VERSION' }, '')
  t.equal(r.code, 0)
  t.ok(r.json.supportedVersions.includes('0.3.1'))
})

t.test('command errors are invalid env (4)', async (t) => {
  t.equal((await run({}, conf)).json.code, 4)
  const bad = await run({ CNI_COMMAND: 'FROB' }, conf)
  t.equal(bad.code, 1)
  t.equal(bad.json.code, 4)
  t.match(bad.json.details, /ADD, DEL, CHECK/)
})

t.test('errors answer in the config version and are logged', async (t) => {
  const r = await run({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0', CNI_PATH: '/x' }, conf)
  t.equal(r.json.cniVersion, '0.4.0')
  t.equal(r.json.code, 4)
  t.match(r.json.msg, /CNI_NETNS/)
  t.match(r.logs.join('\n'), /"level":"error"/)
})

t.test('decode failures answer in the latest version', async (t) => {
  const r = await run({ CNI_COMMAND: 'ADD' }, 'not json')
  t.same([r.json.cniVersion, r.json.code], ['1.1.0', 6])
})

t.test('version-gated commands', async (t) => {
  const r = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf)
  t.equal(r.json.code, 1, 'GC is 1.1.0 only')
  const c = await run({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'c', CNI_NETNS: '/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' }, conf.replace('0.4.0', '0.3.1'))
  t.equal(c.json.code, 1, 'CHECK is 0.4.0 and later')
})
