// A one-node test cluster for real-traffic scenarios: the wren agent watching a
// temp folder of manifests, pods as network namespaces wired by the wren CNI
// plugin (invoked like a container runtime would), banner servers inside the
// pods, an "outside" host on a plain veth, kube-proxy-style service NAT and a
// dnsmasq kube-dns.
//
// Model: everything made is pushed on one Cleanup stack right after it exists,
// so teardown undoes it in reverse even after a failure half way through, and
// SIGINT/SIGTERM run the same teardown. Manifests are written before the CNI
// ADD (the Pod object exists before its sandbox), and every change is followed
// by `wren-enforcer status --wait-synced` instead of sleeping.
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, closeSync, cpSync, existsSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { stringify } from 'yaml'
import { Cleanup, REPO, addNetns, blackhole, forgetFlows, sh, tempDir, trySh } from './host.ts'
import type { Labels, NamespaceSpec, PodSpec } from '../scenarios/types.ts'
import { cniEnv } from './cni-env.ts'

export const POD_CIDR = '10.92.0.0/16'
export const OUTSIDE_CIDR = '10.93.0.0/16'
export const SERVICE_CIDR = '10.94.0.0/24'
/** Dual-stack clusters only: the pods' IPv6 range, inside a blackholed /64. */
export const POD_CIDR6 = 'fd00:92::/112'
export const POD_BLACKHOLE6 = 'fd00:92::/64'
export const NODE_NAME = 'seed-node'
/** Every run's temp folder starts with this (in os.tmpdir()). */
export const RUN_DIR_PREFIX = 'wren-seeds-'

export interface Pod {
  spec: PodSpec
  netns: string
  ip: string
  /** Dual-stack clusters only: the pod's IPv6 address (from the plugin's result). */
  ip6?: string
  containerId: string
}

export interface ClusterOptions {
  /** Dual-stack: a second IPAM range set (POD_CIDR6), pods with both families, servers on both. */
  ipv6?: boolean
  /** More `wren-enforcer run` flags, e.g. ['--set-max-elem', '1024']. */
  agentArgs?: string[]
}

const live = new Set<Cluster>()
let signalsHooked = false

function hookSignals(): void {
  if (signalsHooked) return
  signalsHooked = true
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, async () => {
      process.stderr.write(`\n${sig}: tearing down ${live.size} test cluster(s)\n`)
      for (const c of [...live]) await c.teardown()
      process.exit(130)
    })
  }
}

export class Cluster {
  readonly cleanup = new Cleanup()
  manifests = ''
  stateDir = ''
  runDir = ''
  logDir = ''
  readonly namespaces = new Map<string, Labels>()
  readonly pods = new Map<string, Pod>()
  private agent?: ChildProcess
  private netnsSeq = 0
  /** This run's copies of bin/wren and bin/wren-enforcer (see snapshotBinaries). */
  wrenBin = ''
  enforcerBin = ''
  private root = ''
  readonly ipv6: boolean
  private readonly agentArgs: string[]

  constructor(opts: ClusterOptions = {}) {
    this.ipv6 = opts.ipv6 ?? false
    this.agentArgs = opts.agentArgs ?? []
  }

  private ranges(): string[] {
    return [POD_CIDR, OUTSIDE_CIDR, SERVICE_CIDR, ...(this.ipv6 ? [POD_BLACKHOLE6] : [])]
  }

  /** Forgets every tracked flow of the test ranges, so the next probes are new connections. */
  forgetFlows(): void {
    for (const cidr of this.ranges()) forgetFlows(cidr)
  }

  /** Notes a long-lived process or netns in the run folder, for the reaper. */
  private note(kind: 'pids' | 'netns', what: string | number | undefined): void {
    if (this.root && what !== undefined) appendFileSync(join(this.root, kind), `${what}\n`)
  }

  /** Starts the agent on fresh folders; blackholes every range the tests use first. */
  async start(): Promise<void> {
    live.add(this)
    hookSignals()
    for (const cidr of this.ranges()) blackhole(this.cleanup, cidr)
    // flows an earlier run left on these addresses must not decide this run's probes
    this.forgetFlows()
    this.cleanup.push('conntrack entries of the test ranges', () => this.forgetFlows())
    const root = tempDir(this.cleanup, RUN_DIR_PREFIX)
    // for a later run to reap this one if it gets SIGKILLed (see scenarios/reap.ts)
    writeFileSync(join(root, 'owner'), String(process.pid))
    this.root = root
    this.manifests = join(root, 'manifests')
    this.stateDir = join(root, 'state')
    this.runDir = join(root, 'run')
    this.logDir = root
    for (const d of [this.manifests, this.stateDir, this.runDir]) mkdirSync(d, { recursive: true })
    await this.snapshotBinaries(root)
    this.cleanup.push('wren-enforcer cleanup', () => {
      const r = trySh(this.enforcerBin, ['cleanup'])
      if (r.code !== 0) throw new Error(`wren-enforcer cleanup: ${r.stderr.trim()}`)
    })
    this.startAgent()
    await this.waitAgentUp()
  }

  /**
   * Copies bin/ and dist/ into the run's folder: other people rebuild dist/ in
   * this checkout while a run is in progress, and a half-written build must
   * not break the plugin or the agent half way through (nor the teardown).
   */
  private async snapshotBinaries(root: string): Promise<void> {
    const bins = await snapshotBinaries(root)
    this.wrenBin = bins.wrenBin
    this.enforcerBin = bins.enforcerBin
  }

  private startAgent(): void {
    const log = openSync(join(this.logDir, 'agent.log'), 'a')
    const args = ['run', '--manifests', this.manifests, '--state-dir', this.stateDir, '--run-dir', this.runDir, '--node-name', NODE_NAME, '--log-level', 'debug', ...this.agentArgs]
    const agent = spawn(this.enforcerBin, args, { stdio: ['ignore', log, log] })
    closeSync(log)
    this.agent = agent
    this.note('pids', agent.pid)
    this.cleanup.push('stop agent', () => stopProcess(agent, 5000))
  }

  private async waitAgentUp(): Promise<void> {
    const deadline = Date.now() + 15000
    for (;;) {
      if (this.agent?.exitCode != null) throw new Error(`agent exited ${this.agent.exitCode}; log ${this.logDir}/agent.log`)
      if (trySh(this.enforcerBin, ['status', '--run-dir', this.runDir, '--wait-synced', '--timeout', '2s']).code === 0) return
      if (Date.now() > deadline) throw new Error(`agent not synced after 15s; log ${this.logDir}/agent.log`)
      await delay(100)
    }
  }

  get agentPid(): number | undefined {
    return this.agent?.pid
  }

  /** Returns once the kernel holds every change present in the sources now. */
  async sync(): Promise<void> {
    const r = await run(this.enforcerBin, ['status', '--run-dir', this.runDir, '--wait-synced', '--timeout', '10s'])
    if (r.code !== 0) throw new Error(`wren-enforcer status --wait-synced failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
  }

  /** One or more documents, written whole (temp file + rename: the agent never reads half a file). */
  private writeManifest(file: string, ...docs: unknown[]): void {
    const tmp = join(this.manifests, `.${file}.tmp`)
    writeFileSync(tmp, docs.map((d) => stringify(d)).join('---\n'))
    renameSync(tmp, join(this.manifests, file))
  }

  private removeManifest(file: string): void {
    rmSync(join(this.manifests, file), { force: true })
  }

  setNamespace(ns: NamespaceSpec): void {
    // Kubernetes labels every namespace with its own name (1.21+).
    const labels = { ...ns.labels, 'kubernetes.io/metadata.name': ns.name }
    this.namespaces.set(ns.name, labels)
    this.writeManifest(`ns-${ns.name}.yaml`, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels } })
  }

  labelNamespace(name: string, change: Record<string, string | null>): void {
    const labels = applyLabels(this.namespaces.get(name), change, `namespace ${name}`)
    this.setNamespace({ name, labels })
  }

  private writePod(spec: PodSpec): void {
    const containers = [{ name: 'main', image: 'wren-seed', ports: (spec.ports ?? []).map((p) => ({ ...p, protocol: p.protocol ?? 'TCP' })) }]
    const metadata = { name: spec.name, namespace: spec.namespace, labels: spec.labels, uid: uidOf(spec) }
    this.writeManifest(`pod-${spec.namespace}.${spec.name}.yaml`, { apiVersion: 'v1', kind: 'Pod', metadata, spec: { nodeName: NODE_NAME, containers } })
  }

  /**
   * Pods of other nodes: objects only (no netns), in one manifest file, with
   * the given addresses. Rewriting the file replaces the group.
   */
  setRemotePods(group: string, namespace: string, labels: Labels, ips: string[]): void {
    const docs = ips.map((ip, i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${group}-${i}`, namespace, labels, uid: `remote-${group}-${i}` },
      spec: { nodeName: 'elsewhere', containers: [{ name: 'main', image: 'wren-seed' }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
    }))
    const file = `remote-${namespace}.${group}.yaml`
    if (!existsSync(join(this.manifests, file))) this.cleanup.push(`remote pods ${group}`, () => this.removeManifest(file))
    this.writeManifest(file, ...docs)
  }

  labelPod(id: string, change: Record<string, string | null>): void {
    const pod = this.pod(id)
    pod.spec = { ...pod.spec, labels: applyLabels(pod.spec.labels, change, `pod ${id}`) }
    this.writePod(pod.spec)
  }

  /** Pod object first, then the sandbox: netns, CNI ADD, servers on its container ports. */
  async addPod(spec: PodSpec, serve: (pod: Pod) => Promise<void> = (pod) => this.serveBanners(pod)): Promise<Pod> {
    const id = `${spec.namespace}/${spec.name}`
    if (!this.namespaces.has(spec.namespace)) throw new Error(`pod ${id}: namespace ${spec.namespace} not created`)
    this.writePod(spec)
    this.cleanup.push(`manifest of pod ${id}`, () => this.removeManifest(`pod-${spec.namespace}.${spec.name}.yaml`))
    await this.sync()
    const netnsName = `ws-${++this.netnsSeq}`
    this.note('netns', netnsName)
    const netnsPath = addNetns(this.cleanup, netnsName)
    const containerId = `wseed${this.netnsSeq}${randomBytes(6).toString('hex')}`
    this.cleanup.push(`CNI DEL ${id}`, async () => {
      const r = await this.cni('DEL', spec, containerId, netnsPath)
      if (r.code !== 0) throw new Error(`CNI DEL ${id}: ${r.stdout} ${r.stderr}`)
    })
    const r = await this.cni('ADD', spec, containerId, netnsPath)
    if (r.code !== 0) throw new Error(`CNI ADD ${id} failed (${r.code}): ${r.stdout} ${r.stderr}`)
    const result = JSON.parse(r.stdout) as { ips?: { address: string }[] }
    const addrs = result.ips?.map((a) => a.address.split('/')[0]!) ?? []
    const ip = addrs.find((a) => !a.includes(':'))
    if (!ip) throw new Error(`CNI ADD ${id}: no IPv4 address in ${r.stdout}`)
    const pod: Pod = { spec, netns: netnsName, ip, containerId }
    if (this.ipv6) {
      pod.ip6 = addrs.find((a) => a.includes(':'))
      if (!pod.ip6) throw new Error(`CNI ADD ${id}: no IPv6 address in ${r.stdout}`)
    }
    this.pods.set(id, pod)
    await serve(pod)
    return pod
  }

  /** For World: records a process the reaper must kill if this run dies. */
  notePid(pid: number | undefined): void {
    this.note('pids', pid)
  }

  async serveBanners(pod: Pod): Promise<void> {
    const ports = (pod.spec.ports ?? []).map((p) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP' }))
    const families: Family[] = this.ipv6 ? [4, 6] : [4]
    for (const pid of startServers(this.cleanup, pod.netns, ports, `${pod.spec.namespace}/${pod.spec.name}`, families)) this.note('pids', -pid)
    await waitListening(pod.netns, ports, families)
  }

  /** One CNI call for a pod's sandbox, as the runtime makes it. */
  cni(command: 'ADD' | 'DEL', spec: PodSpec, containerId: string, netns: string) {
    const args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: spec.namespace, K8S_POD_NAME: spec.name, K8S_POD_UID: uidOf(spec) }
    const env = cniEnv(command, { containerId, netns, ifname: 'eth0', args }, [dirname(this.wrenBin), '/usr/lib/cni'])
    return run(this.wrenBin, [], JSON.stringify(this.netconf()), env)
  }

  netconf(): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: 'wren',
      type: 'wren',
      ifacePrefix: 'wren',
      stateDir: this.stateDir,
      runDir: this.runDir,
      agentWaitMs: 5000,
      logFile: join(this.stateDir, 'cni.log'),
      ipam: { type: 'wren', ranges: [[{ subnet: POD_CIDR }], ...(this.ipv6 ? [[{ subnet: POD_CIDR6 }]] : [])] },
    }
  }

  applyPolicy(doc: Record<string, unknown>): void {
    const md = doc.metadata as { name: string; namespace?: string }
    const ns = md.namespace ?? 'default'
    const full = { ...doc, metadata: { ...md, namespace: ns } }
    const file = `np-${ns}.${md.name}.yaml`
    this.writeManifest(file, full)
    this.cleanup.push(`manifest ${file}`, () => this.removeManifest(file))
  }

  deletePolicy(id: string): void {
    const [ns, name] = id.split('/')
    this.removeManifest(`np-${ns}.${name}.yaml`)
  }

  pod(id: string): Pod {
    const p = this.pods.get(id)
    if (!p) throw new Error(`no pod ${id}`)
    return p
  }

  /** Undoes everything in reverse; returns the errors (empty when clean). */
  async teardown(): Promise<string[]> {
    live.delete(this)
    return this.cleanup.run()
  }
}

/** Copies bin/ and dist/ into `root`/build (see Cluster.snapshotBinaries) and returns the copies' paths. */
export async function snapshotBinaries(root: string): Promise<{ wrenBin: string; enforcerBin: string }> {
  const base = join(root, 'build')
  for (let attempt = 1; ; attempt++) {
    rmSync(base, { recursive: true, force: true })
    mkdirSync(base)
    cpSync(join(REPO, 'bin'), join(base, 'bin'), { recursive: true })
    cpSync(join(REPO, 'dist'), join(base, 'dist'), { recursive: true })
    symlinkSync(join(REPO, 'node_modules'), join(base, 'node_modules'))
    const wrenBin = join(base, 'bin', 'wren')
    const enforcerBin = join(base, 'bin', 'wren-enforcer')
    const ok = trySh(enforcerBin, ['--help']).code === 0 && trySh('sh', ['-c', `CNI_COMMAND=VERSION ${wrenBin} </dev/null`]).code === 0
    if (ok) return { wrenBin, enforcerBin }
    // a partial build (e.g. `build.mjs wren` drops the enforcer's chunks): build everything
    if (attempt === 2) trySh(process.execPath, [join(REPO, 'scripts', 'build.mjs')])
    if (attempt === 10) throw new Error(`bin/wren or bin/wren-enforcer does not run (is dist/ built? node scripts/build.mjs)`)
    await delay(1000)
  }
}

/** `old` with `change` applied (null removes a label); throws naming `what` when there is nothing to change. */
export function applyLabels(old: Labels | undefined, change: Record<string, string | null>, what: string): Labels {
  if (!old) throw new Error(`${what} does not exist`)
  const out = { ...old }
  for (const [k, v] of Object.entries(change)) {
    if (v === null) delete out[k]
    else out[k] = v
  }
  return out
}

function uidOf(spec: PodSpec): string {
  return `uid-${spec.namespace}-${spec.name}`
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function ss(netns: string, flags: string): string {
  return trySh('ip', ['netns', 'exec', netns, 'ss', `-${flags.replace(/^-/, '')}`]).stdout
}

/** Async exec with stdin and env; never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
    child.stdin.on('error', () => {})
    child.stdin.end(input ?? '')
  })
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stopProcess(child: ChildProcess, graceMs: number, group = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (group && child.pid) process.kill(-child.pid, sig)
        else child.kill(sig)
      } catch {
        /* already gone */
      }
    }
    const t = setTimeout(() => kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(t)
      resolve()
    })
    kill('SIGTERM')
  })
}

type Family = 4 | 6

/**
 * Banner servers: every connection or datagram is answered with `banner`, so a probe proves which pod it reached.
 * One server per port and family; the IPv6 one is `ipv6only` so it never answers IPv4 (as v4-mapped) for the other.
 */
export function startServers(cleanup: Cleanup, netns: string, ports: { port: number; protocol: 'TCP' | 'UDP' }[], banner: string, families: Family[] = [4]): number[] {
  const pids: number[] = []
  for (const { port, protocol } of ports) {
    for (const fam of families) {
      const v6only = fam === 6 ? ',ipv6only=1' : ''
      const listen = protocol === 'TCP' ? `TCP${fam}-LISTEN:${port},fork,reuseaddr,backlog=128${v6only}` : `UDP${fam}-RECVFROM:${port},fork${v6only}`
      // detached: its own process group, so the forked children die with it
      const child = spawn('ip', ['netns', 'exec', netns, 'socat', listen, `SYSTEM:echo ${banner}`], { stdio: 'ignore', detached: true })
      cleanup.push(`server ${netns} ${protocol}${fam === 6 ? '6' : ''}/${port}`, () => stopProcess(child, 2000, true))
      if (child.pid) pids.push(child.pid)
    }
  }
  return pids
}

/** Polls `ss` in the netns until every port listens (TCP) or is bound (UDP), in every family asked for. */
export async function waitListening(netns: string, ports: { port: number; protocol: 'TCP' | 'UDP' }[], families: Family[] = [4]): Promise<void> {
  const deadline = Date.now() + 5000
  for (;;) {
    // one family: any socket on the port will do (as before); several: each family's own
    const f = (fam: Family) => (families.length > 1 ? `-${fam}` : '')
    const list = (fam: Family) => ({ TCP: ss(netns, `${f(fam)}Hlnt`), UDP: ss(netns, `${f(fam)}Hlnu`) })
    const out = Object.fromEntries(families.map((fam) => [fam, list(fam)])) as Record<Family, { TCP: string; UDP: string }>
    const bound = (text: string, port: number) => text.split('\n').some((l) => l.split(/\s+/)[3]?.endsWith(`:${port}`))
    const missing = families.flatMap((fam) => ports.filter((p) => !bound(out[fam][p.protocol], p.port)).map((p) => `${p.protocol}${fam === 6 ? '6' : ''}/${p.port}`))
    if (!missing.length) return
    if (Date.now() > deadline) throw new Error(`${netns}: not listening on ${missing.join(', ')}`)
    await delay(50)
  }
}
