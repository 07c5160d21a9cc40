// What surrounds the pods in a seed scenario: an "outside" host standing in
// for the internet and for machines beyond the node, kube-proxy-style Service
// NAT, and a dnsmasq kube-dns answering the Services' names.
//
// The outside host is a netns on a veth whose host end (wsout0) does not carry
// the wren prefix, so wren treats it like the node's uplink. Services are DNAT
// rules in our own nat chain (WSEED-SVC, hooked from PREROUTING): a pod's
// packet to a ClusterIP reaches the filter table already translated to a pod
// IP, so policy acts on the translated packet, as it does under kube-proxy.
// On several nodes (lib/nodes-world.ts) WorldOptions put the chain in every
// node and point the internet names at that cluster's outside stand-in.
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { addNetns, sh, trySh } from '../lib/host.ts'
import { type Pod, delay, startServers, stopProcess, waitListening } from '../lib/cluster.ts'
import { hostsFile, CLUSTER_DOMAIN } from '../lib/dns.ts'
import { probeFrom } from '../lib/probe.ts'
import type { PodSpec, ServiceSpec } from './types.ts'
import type { ScenarioCluster } from './target.ts'

export const OUTSIDE_NETNS = 'ws-out'
export const OUTSIDE_HOST_IF = 'wsout0'
/** The host's address facing the outside: NodePorts are reached here. */
export const NODE_IP = '10.93.0.1'
/** The outside host's main address; "google.com" resolves to it. */
export const OUTSIDE_IP = '10.93.0.2'
export const OUTSIDE_PORTS = [80, 8080]
export const OUTSIDE_BANNER = 'outside'
export const KUBE_DNS_IP = '10.94.0.10'
export const SVC_CHAIN = 'WSEED-SVC'
/** Internet names the seeds use; all answered with the outside host. */
export const OUTSIDE_NAMES = ['google.com', 'www.google.com']

export const kubeDnsPod: PodSpec = {
  namespace: 'kube-system',
  name: 'coredns',
  labels: { 'k8s-app': 'kube-dns' },
  ports: [
    { name: 'dns', containerPort: 53, protocol: 'UDP' },
    { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
  ],
  server: 'dns',
}

export const kubeDnsService: ServiceSpec = {
  namespace: 'kube-system',
  name: 'kube-dns',
  selector: { 'k8s-app': 'kube-dns' },
  clusterIP: KUBE_DNS_IP,
  ports: [
    { port: 53, protocol: 'UDP' },
    { port: 53, protocol: 'TCP' },
  ],
}

/** Where a cluster other than the one-node host's puts what World makes (all default to the host). */
export interface WorldOptions {
  /** Writes the service chain (iptables-restore input for the nat table) wherever pods' packets are translated. */
  applyNat?: (restore: string) => void
  /** The address the internet names resolve to. */
  outsideIp?: string
  /** A netns that reaches the DNS pod unpoliced, to check its records from. */
  dnsCheckNetns?: (dnsPod: Pod) => string
}

export class World {
  readonly services = new Map<string, ServiceSpec & { ip?: string }>()
  private nextIP = 100
  private dnsmasq?: ChildProcess
  private hostsPath = ''

  private readonly cluster: ScenarioCluster
  private readonly opts: WorldOptions

  constructor(cluster: ScenarioCluster, opts: WorldOptions = {}) {
    this.cluster = cluster
    this.opts = opts
  }

  /** The outside netns on a plain veth, with `extra` addresses (ipBlock stand-ins) routed to it. */
  addOutside(extra: string[]): void {
    const c = this.cluster.cleanup
    addNetns(c, OUTSIDE_NETNS)
    trySh('ip', ['link', 'del', OUTSIDE_HOST_IF])
    sh('ip', ['link', 'add', OUTSIDE_HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUTSIDE_NETNS])
    c.push(`link ${OUTSIDE_HOST_IF}`, () => void trySh('ip', ['link', 'del', OUTSIDE_HOST_IF]))
    sh('ip', ['addr', 'add', `${NODE_IP}/24`, 'dev', OUTSIDE_HOST_IF])
    sh('ip', ['link', 'set', OUTSIDE_HOST_IF, 'up'])
    const n = (...a: string[]) => sh('ip', ['-n', OUTSIDE_NETNS, ...a])
    n('addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0')
    for (const a of extra) n('addr', 'add', `${a}/32`, 'dev', 'eth0')
    n('link', 'set', 'eth0', 'up')
    n('route', 'add', 'default', 'via', NODE_IP)
    for (const a of extra) sh('ip', ['route', 'add', `${a}/32`, 'via', OUTSIDE_IP, 'dev', OUTSIDE_HOST_IF])
    for (const pid of startServers(c, OUTSIDE_NETNS, OUTSIDE_PORTS.map((port) => ({ port, protocol: 'TCP' as const })), OUTSIDE_BANNER)) this.cluster.notePid(-pid)
  }

  async outsideReady(): Promise<void> {
    await waitListening(OUTSIDE_NETNS, OUTSIDE_PORTS.map((port) => ({ port, protocol: 'TCP' as const })))
  }

  /** Our nat chain, hooked first in PREROUTING; both removed on teardown. */
  installNat(): void {
    trySh('iptables', ['-w', '-t', 'nat', '-D', 'PREROUTING', '-j', SVC_CHAIN])
    sh('iptables-restore', ['--noflush', '-w'], `*nat\n:${SVC_CHAIN} - [0:0]\nCOMMIT\n`)
    this.cluster.cleanup.push(`nat chain ${SVC_CHAIN}`, () => {
      trySh('iptables', ['-w', '-t', 'nat', '-D', 'PREROUTING', '-j', SVC_CHAIN])
      trySh('iptables', ['-w', '-t', 'nat', '-F', SVC_CHAIN])
      sh('iptables', ['-w', '-t', 'nat', '-X', SVC_CHAIN])
    })
    sh('iptables', ['-w', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', SVC_CHAIN])
  }

  addService(spec: ServiceSpec): void {
    const ip = spec.headless ? undefined : (spec.clusterIP ?? `10.94.0.${this.nextIP++}`)
    this.services.set(`${spec.namespace}/${spec.name}`, { ...spec, ip })
  }

  service(id: string): ServiceSpec & { ip?: string } {
    const s = this.services.get(id)
    if (!s) throw new Error(`no service ${id}`)
    return s
  }

  /** Pods the service's selector picks in its namespace (like its Endpoints). */
  backends(id: string): Pod[] {
    const s = this.service(id)
    return [...this.cluster.pods.values()].filter(
      (p) => p.spec.namespace === s.namespace && Object.entries(s.selector).every(([k, v]) => p.spec.labels[k] === v),
    )
  }

  private natRules(): string[] {
    const rules: string[] = []
    for (const [id, s] of this.services) {
      const pods = this.backends(id)
      for (const port of s.ports) {
        const proto = (port.protocol ?? 'TCP').toLowerCase()
        const dests: [string, number][] = []
        if (s.ip) dests.push([s.ip, port.port])
        if (s.nodePort && s.ip) dests.push([NODE_IP, s.nodePort])
        for (const [ip, p] of dests) {
          pods.forEach((pod, i) => {
            // kube-proxy's even spread: 1/n, then 1/(n-1), ..., the last unconditional
            const left = pods.length - i
            const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(5)} ` : ''
            rules.push(`-A ${SVC_CHAIN} -d ${ip}/32 -p ${proto} -m ${proto} --dport ${p} ${pick}-m comment --comment "${id}" -j DNAT --to-destination ${pod.ip}:${port.targetPort ?? port.port}`)
          })
        }
      }
    }
    return rules
  }

  /** DNS records as kube-dns would serve them: ClusterIP, or the pod IPs for headless services. */
  records(): Map<string, string[]> {
    const recs = new Map<string, string[]>()
    for (const [id, s] of this.services) {
      const ips = s.ip ? [s.ip] : this.backends(id).map((p) => p.ip)
      if (ips.length) recs.set(`${s.name}.${s.namespace}.svc.${CLUSTER_DOMAIN}`, ips)
    }
    for (const n of OUTSIDE_NAMES) recs.set(n, [this.opts.outsideIp ?? OUTSIDE_IP])
    return recs
  }

  /** Brings NAT and DNS in line with services and pods; returns once dnsmasq answers the new records. */
  async refresh(): Promise<void> {
    const nat = `*nat\n:${SVC_CHAIN} - [0:0]\n${this.natRules().join('\n')}\nCOMMIT\n`
    if (this.opts.applyNat) this.opts.applyNat(nat)
    else sh('iptables-restore', ['--noflush', '-w'], nat)
    if (!this.dnsmasq) return
    writeFileSync(this.hostsPath, hostsFile(this.records()))
    this.dnsmasq.kill('SIGHUP')
    await this.dnsAnswers()
  }

  /** The serve function for the kube-dns pod: dnsmasq on the pod's address, UDP and TCP 53. */
  serveDns = async (pod: Pod): Promise<void> => {
    this.hostsPath = join(this.cluster.logDir, 'kube-dns.hosts')
    writeFileSync(this.hostsPath, hostsFile(this.records()))
    const args = ['--no-daemon', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${this.hostsPath}`, `--local=/${CLUSTER_DOMAIN}/`]
    args.push('--user=root', '--pid-file=', `--listen-address=${pod.ip}`, '--bind-interfaces', '--log-facility=-', '--log-queries')
    const log = join(this.cluster.logDir, 'dnsmasq.log')
    const child = spawn('sh', ['-c', `exec ip netns exec ${pod.netns} dnsmasq "$@" 2>>${log}`, 'dnsmasq', ...args], { stdio: 'ignore' })
    this.dnsmasq = child
    this.cluster.notePid(child.pid)
    this.cluster.cleanup.push('dnsmasq', () => stopProcess(child, 2000))
    await waitListening(pod.netns, [
      { port: 53, protocol: 'UDP' },
      { port: 53, protocol: 'TCP' },
    ])
  }

  /** Asks the DNS pod (from the host or its node, which policy never blocks) until every record is served. */
  private async dnsAnswers(): Promise<void> {
    const dnsPod = this.cluster.pod('kube-system/coredns')
    const server = dnsPod.ip
    const from = this.opts.dnsCheckNetns?.(dnsPod) ?? ''
    const want = [...this.records()]
    const deadline = Date.now() + 5000
    for (;;) {
      const got = await probeFrom(from, want.map(([name]) => ({ kind: 'dns' as const, server, name: `${name}.`, namespace: 'default', proto: 'udp' as const })))
      const bad = want.filter(([, ips], i) => got[i]!.outcome !== 'ok' || [...got[i]!.reply!.split(',')].sort().join() !== [...ips].sort().join())
      if (!bad.length) return
      if (Date.now() > deadline) throw new Error(`kube-dns does not serve ${bad.map(([n]) => n).join(', ')}`)
      await delay(100)
    }
  }
}
