// The contract between the plugin core and IPAM, whichever allocator serves it.
import type { Exec } from '../../shared/exec.ts'
import type { Logger } from '../../shared/log.ts'

export interface IpamContext {
  network: string
  containerId: string
  ifname: string
  ipam: Record<string, unknown>
  netconf: Record<string, unknown>
  stateDir: string
  env: NodeJS.ProcessEnv
  exec: Exec
  log: Logger
}

export interface IpamResult {
  /** address: CIDR with the range's prefix, e.g. 10.1.0.5/24 */
  ips: { address: string; gateway?: string }[]
  routes: { dst: string; gw?: string }[]
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
}

export type NetworkContext = Omit<IpamContext, 'containerId' | 'ifname'>

export interface Attachment {
  containerId: string
  ifname: string
}
