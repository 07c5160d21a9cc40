// The README's scripts (e2e/readme.test.ts): the demo, the benchmarks at a
// reduced size, the image build, what can be checked here of the commands
// that need a cluster, and the test suite, which CI runs.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { parseAllDocuments } from 'yaml'
import { scenarios } from '../scenarios/index.ts'
import { leftovers } from './behaviour.ts'
import { Cleanup, REPO, exclusiveKernel, sh } from './host.ts'
import { claimDir, exitOk, typed, userEnv, type Flow, type FlowCtx, type StepFn } from './readme-commands.ts'

/** Scripts that take the kernel lock themselves: none held here while they run. */
export const scriptsFlow: Flow<FlowCtx> = {
  name: 'the demo and the benchmarks',
  async prepare(_t, cleanup) {
    return { cleanup, env: userEnv() }
  },
}

/** Once a script is done: under the kernel lock (no one else's chains), nothing of ours on the host. */
async function nothingLeft(t: Test): Promise<void> {
  const lock = new Cleanup()
  await exclusiveKernel(lock)
  try {
    t.same(leftovers(), [], 'nothing left on the host')
  } finally {
    await lock.run()
  }
}

/** Every seed scenario's matrices measured as expected, and the summary saying so for each seed. */
export const demo: StepFn<FlowCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, ctx.env, 40 * 60_000)
  exitOk(t, r)
  const lines = r.stdout.trimEnd().split('\n')
  const steps = lines.filter((l) => /^--- \d+ step \d+\/\d+: /.test(l))
  t.equal(steps.length, scenarios.reduce((n, sc) => n + sc.steps.length, 0), 'a matrix for every step of every seed scenario')
  t.same(steps.filter((l) => !/\[as expected, \d+ ms\]$/.test(l)), [], 'every matrix as expected')
  t.same(lines.filter((l) => /^ +! /.test(l)), [], 'no scenario error, teardown error or leftover reported')
  const summary = lines.slice(-scenarios.length)
  scenarios.forEach((sc, i) => t.match(summary[i] ?? '', new RegExp(`^seed ${sc.seed}: PASS  (\\d+)/\\1 steps, (\\d+)/\\2 cells as expected`), `ends with seed ${sc.seed} passed`))
  t.comment(`demo output ends:\n${summary.join('\n')}`)
  await nothingLeft(t)
}

/** `BENCH_N` pods instead of 100: the same script, a fifth of the ADD/DEL pairs. */
export const BENCH_CNI_ENV = { BENCH_N: '20' }
export const benchCni: StepFn<FlowCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, { ...ctx.env, ...BENCH_CNI_ENV }, 15 * 60_000)
  exitOk(t, r)
  t.match(r.stdout, /^pods wired and unwired one after another: 20$/m, 'the reduced size')
  for (const label of ['sh-node', 'shim-node', 'shim-agent', 'sh-node-agent', 'shim-agent-nowait', 'ptp'])
    t.match(r.stdout, new RegExp(`^${label} +ADD p50 +[\\d.]+ ms +p99 +[\\d.]+ ms +DEL p50`, 'm'), `ADD/DEL latency of ${label}`)
  t.equal(r.stdout.match(/^target: .*: (met|MISSED)/gm)?.length, 3, 'three targets judged')
  t.comment(r.stdout.trimEnd())
  await nothingLeft(t)
}

/** Sizes of `--quick`, through the environment the script reads: 500 pods, 100 policies instead of 5,000 / 1,000. */
export const BENCH_ENFORCER_ENV = { WREN_BENCH_PODS: '500', WREN_BENCH_POLICIES: '100', WREN_BENCH_NAMESPACES: '10', WREN_BENCH_LOCAL: '20', WREN_BENCH_CHANGES: '20', WREN_BENCH_CONN_SECONDS: '1' }
export const benchEnforcer: StepFn<FlowCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, { ...ctx.env, ...BENCH_ENFORCER_ENV }, 15 * 60_000)
  exitOk(t, r)
  t.match(r.stdout, /^wren-enforcer benchmark: \d+ pods, 100 policies/m, 'the reduced size')
  for (const figure of ['cold sync: spawn → programmed', 'pod label change', 'policy change', 'agent peak RSS', 'new conns/s'])
    t.ok(r.stdout.split('\n').some((l) => l.startsWith(`| ${figure}`)), `measures ${figure}`)
  t.comment(r.stdout.trimEnd())
  await nothingLeft(t)
}

/** No size setting in its environment: run with its own --quick (the only command not run as written). */
export const benchCluster: StepFn<FlowCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, `${cmd} --quick`, ctx.env, 15 * 60_000)
  exitOk(t, r)
  t.match(r.stdout, /^\| figure /m, 'prints its figures')
  t.comment(r.stdout.trimEnd())
  await nothingLeft(t)
}

export interface ImageCtx extends FlowCtx {
  /** The name inside the archive build-image wrote. */
  image?: string
  manifests?: any[]
}

export const imageFlow: Flow<ImageCtx> = {
  name: 'build the image; what the cluster commands name',
  async prepare(_t, cleanup) {
    claimDir(cleanup, join(REPO, 'dist', 'image'))
    return { cleanup, env: userEnv() }
  },
}

const VERSION = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string
const ARCHIVE = join(REPO, 'dist', 'image', `wren-${VERSION}.oci.tar`)
const RENDERED = join(REPO, 'dist', 'image', 'wren.yaml')

const containers = (ds: any): any[] => [...(ds?.spec?.template?.spec?.initContainers ?? []), ...(ds?.spec?.template?.spec?.containers ?? [])]

/** The OCI archive and the DaemonSet naming the image inside it. */
export const buildImage: StepFn<ImageCtx> = async (t, cmd, ctx) => {
  const r = await typed(ctx.cleanup, cmd, ctx.env, 10 * 60_000)
  exitOk(t, r)
  t.ok(existsSync(ARCHIVE), `wrote ${ARCHIVE}`)
  t.ok(existsSync(RENDERED), `wrote ${RENDERED}`)
  if (!existsSync(ARCHIVE) || !existsSync(RENDERED)) return
  const index = JSON.parse(sh('tar', ['-xOf', ARCHIVE, 'index.json']))
  ctx.image = index.manifests?.[0]?.annotations?.['org.opencontainers.image.ref.name']
  t.equal(ctx.image, `localhost/wren:${VERSION}`, 'the archive holds one image, named by default')
  ctx.manifests = parseAllDocuments(readFileSync(RENDERED, 'utf8')).map((d) => d.toJS())
  const ds = ctx.manifests.find((m) => m?.kind === 'DaemonSet')
  const images = [...new Set(containers(ds).map((c) => c.image))]
  t.same(images, [ctx.image], 'dist/image/wren.yaml: every container of the DaemonSet runs the image built')
}

/** Needs a cluster: not run. What it names must exist after build-image, and match the rendered DaemonSet. */
export const clusterOnly: StepFn<ImageCtx> = async (t, cmd, ctx) => {
  for (const w of cmd.split(/\s+/).filter((w) => /\.(tar|yaml)$/.test(w))) {
    const bare = !w.includes('/')
    const path = bare ? join(REPO, 'dist', 'image', w) : join(REPO, w)
    t.ok(existsSync(path), `${w} exists after ./scripts/build-image${bare ? ` (as dist/image/${w}: run where the archive was copied)` : ''}`)
  }
  const ds = ctx.manifests?.find((m) => m?.kind === 'DaemonSet')
  if (!ds) return void t.fail('no DaemonSet in dist/image/wren.yaml (did build-image run?)')
  if (/\.tar$/.test(cmd)) t.equal(ctx.image, containers(ds)[0]?.image, 'the archive loaded holds the image wren.yaml names')
  if (cmd.includes('wren.yaml')) t.same([...new Set(containers(ds).map((c) => c.image))], [ctx.image], 'wren.yaml names the image in the archive')
  if (/ -n kube-system /.test(cmd)) t.equal(ds.metadata?.namespace, 'kube-system', 'the DaemonSet is in kube-system')
  if (cmd.includes('daemonset/wren')) t.equal(ds.metadata?.name, 'wren', 'the DaemonSet is named wren')
  const label = / -l ([^=\s]+)=(\S+)/.exec(cmd)
  if (label) t.equal(ds.spec?.template?.metadata?.labels?.[label[1]!], label[2], `its pods are labelled ${label[1]}=${label[2]}`)
  const container = / -c (\S+)/.exec(cmd)
  if (container) t.ok(containers(ds).some((c) => c.name === container[1]), `its pods have a container ${container[1]}`)
}

/** The test suite runs this file: CI runs it (.ci/run), not this test. */
export const coveredByCi: StepFn<FlowCtx> = async (t, cmd) => {
  const ci = readFileSync(join(REPO, '.ci', 'run'), 'utf8')
  t.match(ci, new RegExp(`^exec ${cmd.replace(/[.]/g, '\\.')}$`, 'm'), `.ci/run runs ${cmd}`)
}
