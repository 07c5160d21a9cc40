// The agent's configuration: defaults, and one validate() that reports every
// problem at once instead of stopping at the first.
import { hostname } from 'node:os'
import { DEFAULT_ENFORCER_CONFIG, type EnforcerConfig } from './model.ts'
import type { OverlayMode } from './network/plan.ts'
import { parseCidr } from '../cni/ipam/ipmath.ts'

export interface AgentConfig {
  manifestsDir?: string
  kubeconfig?: string
  inCluster: boolean
  stateDir: string
  runDir: string
  nodeName: string
  logLevel: 'debug' | 'info' | 'warn' | 'error'
  iptablesBackend: 'auto' | 'nft' | 'legacy'
  metricsPort?: number
  /** /healthz and /readyz for the kubelet on 127.0.0.1:healthPort. */
  healthPort: number
  /** How long a source may fail to reach the API before /readyz says not ready. */
  readyGraceMs: number
  /** Routes to other nodes' pods: host-gw where the node is one L2 hop away, else VXLAN; or always one of them. */
  overlay: OverlayMode
  enforcer: EnforcerConfig
}

export interface RunFlags {
  manifests?: string
  kubeconfig?: string
  inCluster?: boolean
  stateDir?: string
  runDir?: string
  nodeName?: string
  ifacePrefix?: string
  acceptMark?: string
  logLevel?: string
  setMaxElem?: string
  unionAbove?: string
  workloadToHost?: string
  iptablesBackend?: string
  metricsPort?: string
  healthPort?: string
  readyGrace?: string
  overlay?: string
  /** 'true'/'false' from --masquerade, false from --no-masquerade. */
  masquerade?: boolean | string
  clusterCidr?: string[]
}

export const DEFAULT_STATE_DIR = '/var/lib/wren'
export const DEFAULT_RUN_DIR = '/var/run/wren'
/**
 * Outside what nodes commonly run: Calico's health port is 9099, Prometheus
 * exporters own 9100-9999 (node-exporter 9100 is on most nodes, host
 * network), Kubernetes itself 10248-10259 (kubelet 10248/10250, kube-proxy
 * 10249/10256), Antrea 10349-10351; below NodePorts (30000-32767) and the
 * ephemeral range (32768+), so no outgoing connection can hold it.
 */
export const DEFAULT_HEALTH_PORT = 10264
export const DEFAULT_READY_GRACE_MS = 60_000

function parseMark(text: string, problems: string[]): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff || (n & (n - 1)) !== 0) {
    problems.push(`--accept-mark ${text}: must be a single bit, e.g. 0x10000 (kube-proxy uses 0x4000 and 0x8000)`)
    return DEFAULT_ENFORCER_CONFIG.acceptMark
  }
  if (n === 0x4000 || n === 0x8000) problems.push(`--accept-mark ${text}: collides with kube-proxy's mark bits`)
  return n
}

export function agentConfig(f: RunFlags): { config: AgentConfig; problems: string[] } {
  const problems: string[] = []
  const sources = [f.manifests, f.kubeconfig, f.inCluster].filter(Boolean).length
  if (sources !== 1) problems.push('give exactly one source: --manifests DIR, --kubeconfig FILE or --in-cluster')
  const prefix = f.ifacePrefix ?? DEFAULT_ENFORCER_CONFIG.ifacePrefix
  if (!/^[a-z0-9]{1,10}$/.test(prefix)) problems.push(`--iface-prefix ${JSON.stringify(prefix)}: 1-10 lowercase letters or digits`)
  const level = (f.logLevel ?? 'info') as AgentConfig['logLevel']
  if (!['debug', 'info', 'warn', 'error'].includes(level)) problems.push(`--log-level ${level}: one of debug, info, warn, error`)
  const maxElem = Number(f.setMaxElem ?? DEFAULT_ENFORCER_CONFIG.setMaxElem)
  if (!Number.isInteger(maxElem) || maxElem < 1024) problems.push(`--set-max-elem ${f.setMaxElem}: an integer of at least 1024`)
  const unionAbove = Number(f.unionAbove ?? DEFAULT_ENFORCER_CONFIG.unionAbove)
  if (!Number.isInteger(unionAbove) || unionAbove < 0) problems.push(`--union-above ${f.unionAbove}: an integer of at least 0`)
  const toHost = f.workloadToHost ?? 'accept'
  if (toHost !== 'accept' && toHost !== 'policy') problems.push(`--workload-to-host ${toHost}: accept or policy`)
  const backend = (f.iptablesBackend ?? 'auto') as AgentConfig['iptablesBackend']
  if (!['auto', 'nft', 'legacy'].includes(backend)) problems.push(`--iptables-backend ${backend}: auto, nft or legacy`)
  const metricsPort = f.metricsPort === undefined ? undefined : Number(f.metricsPort)
  if (metricsPort !== undefined && !(Number.isInteger(metricsPort) && metricsPort > 0 && metricsPort < 65536)) problems.push(`--metrics-port ${f.metricsPort}: a TCP port`)
  const healthPort = f.healthPort === undefined ? DEFAULT_HEALTH_PORT : Number(f.healthPort)
  if (!(Number.isInteger(healthPort) && healthPort > 0 && healthPort < 65536)) problems.push(`--health-port ${f.healthPort}: a TCP port`)
  else if (metricsPort === healthPort) problems.push(`--metrics-port and --health-port are both ${healthPort}`)
  const readyGraceMs = f.readyGrace === undefined ? DEFAULT_READY_GRACE_MS : durationOr(f.readyGrace, '--ready-grace', problems)
  const overlay = (f.overlay ?? 'auto') as OverlayMode
  if (!['auto', 'vxlan', 'host-gw'].includes(overlay)) problems.push(`--overlay ${overlay}: auto, vxlan or host-gw`)
  // comma-separated too: a ConfigMap value passed as one $(VAR) argument (dual-stack: "10.244.0.0/16,fd00:10:244::/56")
  const clusterCidrs = (f.clusterCidr ?? []).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean)
  const masquerade = f.masquerade === undefined || f.masquerade === true || f.masquerade === 'true'
  if (typeof f.masquerade === 'string' && !['true', 'false'].includes(f.masquerade)) problems.push(`--masquerade ${f.masquerade}: true or false`)
  for (const c of clusterCidrs) if (!parseCidr(c)) problems.push(`--cluster-cidr ${c}: not a CIDR`)
  const config: AgentConfig = {
    manifestsDir: f.manifests,
    kubeconfig: f.kubeconfig,
    inCluster: !!f.inCluster,
    stateDir: f.stateDir ?? DEFAULT_STATE_DIR,
    runDir: f.runDir ?? DEFAULT_RUN_DIR,
    nodeName: resolveNodeName(f.nodeName),
    logLevel: level,
    iptablesBackend: backend,
    metricsPort,
    healthPort,
    readyGraceMs,
    overlay,
    enforcer: {
      ifacePrefix: prefix,
      acceptMark: f.acceptMark ? parseMark(f.acceptMark, problems) : DEFAULT_ENFORCER_CONFIG.acceptMark,
      allowWorkloadToHost: toHost === 'accept',
      setMaxElem: maxElem,
      unionAbove,
      masquerade,
      clusterCidrs,
    },
  }
  return { config, problems }
}

/**
 * This node's name, the same way for every command that takes one: the
 * `--node-name` flag, else env NODE_NAME (a DaemonSet sets it from the
 * downward API, spec.nodeName), else the hostname lowercased, which is what
 * kubelet registers the Node as when it has no --hostname-override.
 */
export function resolveNodeName(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, host: () => string = hostname): string {
  const given = flag?.trim() || env.NODE_NAME?.trim()
  return given || host().trim().toLowerCase()
}

function durationOr(text: string, flag: string, problems: string[]): number {
  try {
    return parseDuration(text)
  } catch (e) {
    problems.push(`${flag} ${text}: ${(e as Error).message}`)
    return 0
  }
}

/** "10s", "500ms", "2m" or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (!m) throw new Error(`bad duration ${JSON.stringify(text)}: use e.g. 500ms, 10s, 2m`)
  const n = Number(m[1])
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000)
}
