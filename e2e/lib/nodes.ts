// A multi-node test cluster: every node a network namespace with its own
// iptables, ipsets, routes, agent (own state and run dirs, node name) and pods
// wired by the real bin/wren run inside that node; the nodes joined by an
// underlay; one in-repo API server the agents and install-cni reach through a
// kubeconfig, holding the Node objects whose pod CIDRs the nodes use.
//
// Underlays:
// - 'l2': one bridge (in its own namespace) joining the nodes, the host (the
//   API server's address) and an "outside" stand-in: every node one L2 hop
//   from the others, so host-gw applies.
// - 'routed': a router namespace between one subnet per node, the host's and
//   the outside's: no node is on another's subnet, so VXLAN applies.
// The outside knows no route to the pod ranges, so a pod reaches it only
// masqueraded.
//
// Model: as e2e/lib/cluster.ts, everything made is pushed on one Cleanup
// stack right after it exists. Ranges (10.95.0.0/16 underlay, 10.98.0.0/16
// pods) are blackholed on the host first.
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { TestApiServer } from './apiserver.ts'
import { Cleanup, NODES_LOCK_DIR, addNetns, blackhole, exclusiveKernel, sh, tempDir, trySh } from './host.ts'
import { delay, run, snapshotBinaries, startServers, stopProcess, waitListening, type Pod } from './cluster.ts'
import { cniEnv } from './cni-env.ts'
import type { Labels, PortSpec } from '../scenarios/types.ts'

export const UNDERLAY_RANGE = '10.95.0.0/16'
export const POD_RANGE = '10.98.0.0/16'
/** Dual-stack tests: the nodes' IPv6 pod ranges lie in here. */
export const POD_RANGE6 = 'fd00:98::/32'
/** Every pod answers on this port with the source address it saw (masquerade or not). */
export const WHOAMI_PORT = 7000

export type Underlay = 'l2' | 'routed'

export interface NodeSpec {
  name: string
  /** spec.podCIDRs of its Node object. */
  podCidrs: string[]
}

export interface TestNode {
  name: string
  netns: string
  /** Its InternalIP on the underlay. */
  ip: string
  podCidrs: string[]
  root: string
  stateDir: string
  runDir: string
  binDir: string
  confDir: string
  agent?: ChildProcess
  agentArgs: string[]
}

export interface NodePod extends Pod {
  node: string
}

export interface NodesClusterOptions {
  underlay: Underlay
  nodes: NodeSpec[]
  /** More `wren-enforcer run` flags for every agent, e.g. ['--overlay', 'vxlan']. */
  agentArgs?: string[]
  /** Node objects to leave out of the API at start (tests add them later). */
  withoutNodeObjects?: string[]
}

const PREFIX = 'wn'

export class NodesCluster {
  readonly cleanup = new Cleanup()
  readonly api: TestApiServer
  readonly nodes = new Map<string, TestNode>()
  readonly pods = new Map<string, NodePod>()
  readonly outside = { netns: `${PREFIX}-out`, ip: '' }
  wrenBin = ''
  enforcerBin = ''
  root = ''
  kubeconfig = ''
  private seq = 0
  private readonly hostIp: string

  readonly opts: NodesClusterOptions

  constructor(opts: NodesClusterOptions) {
    this.opts = opts
    this.hostIp = opts.underlay === 'l2' ? '10.95.0.254' : '10.95.9.1'
    this.api = new TestApiServer({ host: this.hostIp })
  }

  async start(): Promise<void> {
    await exclusiveKernel(this.cleanup, 15 * 60_000, NODES_LOCK_DIR)
    for (const r of [UNDERLAY_RANGE, POD_RANGE, POD_RANGE6]) blackhole(this.cleanup, r)
    this.root = tempDir(this.cleanup, 'wren-nodes-')
    const bins = await snapshotBinaries(this.root)
    this.wrenBin = bins.wrenBin
    this.enforcerBin = bins.enforcerBin
    this.opts.nodes.forEach((spec, i) => this.addNodeNetns(spec, i))
    if (this.opts.underlay === 'l2') this.buildL2()
    else this.buildRouted()
    await this.api.start()
    this.cleanup.push('API server', () => this.api.close())
    this.kubeconfig = join(this.root, 'kubeconfig')
    writeFileSync(this.kubeconfig, this.api.kubeConfig().exportConfig())
    for (const n of this.nodes.values()) if (!this.opts.withoutNodeObjects?.includes(n.name)) this.api.create('Node', this.nodeObject(n))
    for (const n of this.nodes.values()) await this.installCni(n)
    for (const n of this.nodes.values()) this.startAgent(n)
    for (const n of this.nodes.values()) await this.waitAgentUp(n)
  }

  nodeObject(n: TestNode): any {
    return { apiVersion: 'v1', kind: 'Node', metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } }, spec: { podCIDRs: n.podCidrs, podCIDR: n.podCidrs[0] }, status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] } }
  }

  node(name: string): TestNode {
    const n = this.nodes.get(name)
    if (!n) throw new Error(`no node ${name}`)
    return n
  }

  /** Runs a command inside a node's namespace. */
  inNode(node: string, cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv) {
    return run('ip', ['netns', 'exec', this.node(node).netns, cmd, ...args], input, env)
  }

  private addNodeNetns(spec: NodeSpec, i: number): void {
    const netns = `${PREFIX}-${spec.name}`
    addNetns(this.cleanup, netns)
    const root = join(this.root, spec.name)
    const n: TestNode = {
      name: spec.name,
      netns,
      ip: this.opts.underlay === 'l2' ? `10.95.0.${i + 1}` : `10.95.${i + 1}.1`,
      podCidrs: spec.podCidrs,
      root,
      stateDir: join(root, 'state'),
      runDir: join(root, 'run'),
      binDir: join(root, 'cni-bin'),
      confDir: join(root, 'net.d'),
      agentArgs: this.opts.agentArgs ?? [],
    }
    for (const d of [n.stateDir, n.runDir, n.binDir, n.confDir]) mkdirSync(d, { recursive: true })
    // the plugin delegates IPAM and chains portmap through CNI_PATH: Debian's plugins beside wren's
    this.nodes.set(n.name, n)
  }

  /** A veth from `a` (name `ifA`) to `b` (name `ifB`); `a`/`b` '' is the host. */
  private link(a: string, ifA: string, b: string, ifB: string): void {
    const ns = (x: string) => (x ? ['-n', x] : [])
    trySh('ip', [...ns(a), 'link', 'del', ifA])
    sh('ip', [...ns(a), 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, ...(b ? ['netns', b] : [])])
    if (!a) this.cleanup.push(`link ${ifA}`, () => void trySh('ip', ['link', 'del', ifA]))
    sh('ip', [...ns(a), 'link', 'set', ifA, 'up'])
    sh('ip', [...ns(b), 'link', 'set', ifB, 'up'])
  }

  private addr(netns: string, dev: string, cidr: string): void {
    sh('ip', [...(netns ? ['-n', netns] : []), 'addr', 'add', cidr, 'dev', dev])
  }

  private buildL2(): void {
    const lan = `${PREFIX}-lan`
    addNetns(this.cleanup, lan)
    sh('ip', ['-n', lan, 'link', 'add', 'br0', 'type', 'bridge'])
    sh('ip', ['-n', lan, 'link', 'set', 'br0', 'up'])
    const attach = (port: string) => sh('ip', ['-n', lan, 'link', 'set', port, 'master', 'br0'])
    let i = 0
    for (const n of this.nodes.values()) {
      this.link(n.netns, 'eth0', lan, `p${++i}`)
      attach(`p${i}`)
      this.addr(n.netns, 'eth0', `${n.ip}/24`)
    }
    this.link('', `${PREFIX}-host`, lan, 'phost')
    attach('phost')
    this.addr('', `${PREFIX}-host`, `${this.hostIp}/24`)
    addNetns(this.cleanup, this.outside.netns)
    this.link(this.outside.netns, 'eth0', lan, 'pout')
    attach('pout')
    this.outside.ip = '10.95.0.200'
    this.addr(this.outside.netns, 'eth0', `${this.outside.ip}/24`)
    // Every node has a default route, as real nodes do (proxy ARP answers a pod
    // for its gateway only when the node can route it); here it points at the
    // outside stand-in, which forwards nothing.
    for (const n of this.nodes.values()) sh('ip', ['-n', n.netns, 'route', 'add', 'default', 'via', this.outside.ip])
  }

  private buildRouted(): void {
    const rtr = `${PREFIX}-rtr`
    addNetns(this.cleanup, rtr)
    sh('ip', ['netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    let i = 0
    for (const n of this.nodes.values()) {
      i++
      this.link(n.netns, 'eth0', rtr, `n${i}`)
      this.addr(n.netns, 'eth0', `${n.ip}/24`)
      this.addr(rtr, `n${i}`, `10.95.${i}.254/24`)
      sh('ip', ['-n', n.netns, 'route', 'add', 'default', 'via', `10.95.${i}.254`])
    }
    this.link('', `${PREFIX}-host`, rtr, 'host')
    this.addr('', `${PREFIX}-host`, `${this.hostIp}/24`)
    this.addr(rtr, 'host', '10.95.9.254/24')
    // the host reaches the node subnets through the router (more specific than the blackhole)
    for (let k = 1; k <= this.nodes.size; k++) sh('ip', ['route', 'add', `10.95.${k}.0/24`, 'via', '10.95.9.254'])
    addNetns(this.cleanup, this.outside.netns)
    this.link(this.outside.netns, 'eth0', rtr, 'out')
    this.outside.ip = '10.95.3.100'
    this.addr(this.outside.netns, 'eth0', `${this.outside.ip}/24`)
    this.addr(rtr, 'out', '10.95.3.254/24')
    sh('ip', ['-n', this.outside.netns, 'route', 'add', 'default', 'via', '10.95.3.254'])
    if (this.nodes.size >= 3) throw new Error('routed underlay: the outside subnet 10.95.3.0/24 is taken by a third node')
  }

  /** install-cni in Kubernetes mode, run inside the node as the init container would. */
  private async installCni(n: TestNode): Promise<void> {
    const args = ['install-cni', '--kubeconfig', this.kubeconfig, '--node-name', n.name, '--bin-dir', n.binDir, '--conf-dir', n.confDir, '--state-dir', n.stateDir, '--run-dir', n.runDir, '--wait-timeout', '60s']
    const r = await this.inNode(n.name, this.enforcerBin, args)
    if (r.code !== 0) throw new Error(`install-cni on ${n.name} failed (${r.code}): ${r.stderr.trim()}`)
  }

  startAgent(n: TestNode): void {
    const log = openSync(join(n.root, 'agent.log'), 'a')
    const args = ['netns', 'exec', n.netns, this.enforcerBin, 'run', '--kubeconfig', this.kubeconfig, '--node-name', n.name, '--state-dir', n.stateDir, '--run-dir', n.runDir, '--log-level', 'debug', ...n.agentArgs]
    const agent = spawn('ip', args, { stdio: ['ignore', log, log] })
    closeSync(log)
    n.agent = agent
    this.cleanup.push(`agent of ${n.name}`, () => stopProcess(agent, 5000))
  }

  async stopAgent(node: string): Promise<void> {
    const n = this.node(node)
    if (n.agent) await stopProcess(n.agent, 5000)
  }

  async waitAgentUp(n: TestNode): Promise<void> {
    const deadline = Date.now() + 20_000
    for (;;) {
      if (n.agent?.exitCode != null) throw new Error(`agent of ${n.name} exited ${n.agent.exitCode}; log ${n.root}/agent.log`)
      if ((await this.status(n.name, ['--wait-synced', '--timeout', '2s'])).code === 0) return
      if (Date.now() > deadline) throw new Error(`agent of ${n.name} not synced after 20s; log ${n.root}/agent.log`)
      await delay(100)
    }
  }

  status(node: string, extra: string[] = []) {
    return this.inNode(node, this.enforcerBin, ['status', '--run-dir', this.node(node).runDir, ...extra])
  }

  async statusJson(node: string): Promise<any> {
    const r = await this.status(node, ['--json'])
    if (r.code !== 0) throw new Error(`status on ${node}: ${r.stderr}`)
    return JSON.parse(r.stdout)
  }

  /** Every node's kernel holds every change the API server holds now. */
  async sync(): Promise<void> {
    for (const n of this.nodes.values()) {
      const r = await this.status(n.name, ['--wait-synced', '--timeout', '15s'])
      if (r.code !== 0) throw new Error(`status --wait-synced on ${n.name} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
    }
  }

  /** Routes in a node's main table, as `ip route` prints them (trimmed). */
  routes(node: string, family: 4 | 6 = 4): string[] {
    return sh('ip', ['-n', this.node(node).netns, `-${family}`, 'route', 'show']).split('\n').map((l) => l.trim()).filter(Boolean)
  }

  setNamespace(name: string, labels: Labels = {}): void {
    const obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } } }
    try {
      this.api.update('Namespace', obj)
    } catch {
      this.api.create('Namespace', obj)
    }
  }

  /**
   * The Pod object, then the sandbox on its node (CNI ADD by bin/wren inside the node), then its IP in the object's status, as kubelet does.
   * Ports are TCP port numbers or container port specs (name, protocol); `serve` replaces the banner and whoami servers.
   */
  async addPod(node: string, namespace: string, name: string, labels: Labels, ports: (number | PortSpec)[] = [80], serve?: (pod: NodePod) => Promise<void>): Promise<NodePod> {
    const n = this.node(node)
    const id = `${namespace}/${name}`
    const portSpecs = ports.map((p) => (typeof p === 'number' ? { containerPort: p, protocol: 'TCP' as const } : { ...p, protocol: p.protocol ?? 'TCP' }))
    const containers = [{ name: 'main', image: 'test', ports: portSpecs }]
    this.api.create('Pod', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels, uid: `uid-${namespace}-${name}` }, spec: { nodeName: node, containers }, status: { phase: 'Pending' } })
    const netnsName = `${PREFIX}p-${++this.seq}`
    const netnsPath = addNetns(this.cleanup, netnsName)
    const containerId = `wn${this.seq}${randomBytes(6).toString('hex')}`
    const spec = { name, namespace, labels, ports: portSpecs }
    const cni = (command: 'ADD' | 'DEL') => {
      const args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name, K8S_POD_UID: `uid-${namespace}-${name}` }
      const env = cniEnv(command, { containerId, netns: netnsPath, ifname: 'eth0', args }, [n.binDir, '/usr/lib/cni'])
      return this.inNode(node, join(n.binDir, 'wren'), [], this.pluginConfig(n), env)
    }
    this.cleanup.push(`CNI DEL ${id}`, async () => {
      const r = await cni('DEL')
      if (r.code !== 0) throw new Error(`CNI DEL ${id}: ${r.stdout} ${r.stderr}`)
    })
    const r = await cni('ADD')
    if (r.code !== 0) throw new Error(`CNI ADD ${id} on ${node} failed (${r.code}): ${r.stdout} ${r.stderr}`)
    const addrs = (JSON.parse(r.stdout).ips as { address: string }[]).map((a) => a.address.split('/')[0]!)
    const ip = addrs.find((a) => !a.includes(':'))
    const ip6 = addrs.find((a) => a.includes(':'))
    if (!ip) throw new Error(`CNI ADD ${id}: no IPv4 address in ${r.stdout}`)
    const current = structuredClone(this.api.read('Pod', name, namespace))
    current.status = { phase: 'Running', podIP: ip, podIPs: addrs.map((a) => ({ ip: a })) }
    this.api.update('Pod', current)
    const pod: NodePod = { spec, netns: netnsName, ip, containerId, node, ...(ip6 && { ip6 }) }
    this.pods.set(id, pod)
    if (serve) {
      await serve(pod)
      return pod
    }
    const servers = portSpecs.map((p) => ({ port: p.containerPort, protocol: p.protocol }))
    const families: (4 | 6)[] = ip6 ? [4, 6] : [4]
    startServers(this.cleanup, netnsName, servers, id, families)
    startServers(this.cleanup, netnsName, [{ port: WHOAMI_PORT, protocol: 'TCP' }], '$SOCAT_PEERADDR', families)
    await waitListening(netnsName, [...servers, { port: WHOAMI_PORT, protocol: 'TCP' }], families)
    return pod
  }

  /** The plugin's network configuration from the conflist install-cni wrote on that node (what a runtime hands the plugin). */
  pluginConfig(n: TestNode): string {
    const file = sh('ls', [n.confDir]).split('\n').filter((f) => f.endsWith('.conflist')).sort()[0]
    const list = JSON.parse(readFileSync(join(n.confDir, file!), 'utf8'))
    const wren = list.plugins.find((p: any) => p.type === 'wren')
    return JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...wren, agentWaitMs: 10_000 })
  }

  relabelPod(id: string, labels: Labels): void {
    const pod = this.pods.get(id)
    if (!pod) throw new Error(`no pod ${id}`)
    const [namespace, name] = id.split('/') as [string, string]
    const obj = structuredClone(this.api.read('Pod', name, namespace))
    obj.metadata.labels = labels
    this.api.update('Pod', obj)
    pod.spec = { ...pod.spec, labels }
  }

  applyPolicy(doc: any): void {
    const obj = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', ...doc }
    try {
      this.api.update('NetworkPolicy', obj)
    } catch {
      this.api.create('NetworkPolicy', obj)
    }
  }

  deletePolicy(namespace: string, name: string): void {
    this.api.delete('NetworkPolicy', { metadata: { name, namespace } })
  }

  /** Serves the source address it sees on `port` in the outside stand-in. */
  async serveOutside(port: number): Promise<void> {
    startServers(this.cleanup, this.outside.netns, [{ port, protocol: 'TCP' }], '$SOCAT_PEERADDR')
    await waitListening(this.outside.netns, [{ port, protocol: 'TCP' }])
  }

  async teardown(): Promise<string[]> {
    return this.cleanup.run()
  }
}
