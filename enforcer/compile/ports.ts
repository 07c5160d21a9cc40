// NetworkPolicyPort: validation into port specs, and per-family matches.
import { protoOf } from './cluster.ts'
import { inSet, protoPorts, type Proto } from './match.ts'
import type { SetUser } from './sets.ts'
import { selectorKey, describeSelector, type Selector } from './selector.ts'

export type PortSpec =
  | { kind: 'proto'; proto: Proto }
  | { kind: 'range'; proto: Proto; from: number; to: number }
  | { kind: 'named'; proto: Proto; name: string }

/** null means "all ports". */
export type PortsResult = { ok: true; ports: PortSpec[] | null } | { ok: false; error: string }

/** IANA_SVC_NAME, the syntax of a container port name: ≤15 chars, a-z0-9 and '-', a letter, no '--', no '-' at either end. */
const SVC_NAME = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/

function validSvcName(s: string): boolean {
  return SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--')
}

const isPort = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535

function parsePort(p: unknown, at: string): PortSpec | string {
  if (typeof p !== 'object' || p === null) return `${at} must be an object`
  const { protocol, port, endPort } = p as { protocol?: unknown; port?: unknown; endPort?: unknown }
  const proto = protoOf(protocol)
  if (!proto) return `${at}.protocol ${JSON.stringify(protocol)} is not TCP, UDP or SCTP`
  // "port: ... If this field is not provided, this matches all port names and numbers."
  if (port === undefined || port === null) {
    if (endPort !== undefined && endPort !== null) return `${at}.endPort needs a numeric port`
    return { kind: 'proto', proto }
  }
  if (typeof port === 'string') {
    // "endPort ... cannot be defined if the port field is not defined or if the port field is defined as a named (string) port."
    if (endPort !== undefined && endPort !== null) return `${at}.endPort cannot be used with the named port ${JSON.stringify(port)}`
    if (!validSvcName(port)) return `${at}.port ${JSON.stringify(port)} is neither a port number nor a valid port name`
    return { kind: 'named', proto, name: port }
  }
  if (!isPort(port)) return `${at}.port ${JSON.stringify(port)} is not a port number (1-65535)`
  if (endPort === undefined || endPort === null) return { kind: 'range', proto, from: port, to: port }
  // "endPort indicates that the range of ports from port to endPort if set, inclusive, should be allowed.
  //  The endPort must be equal or greater than port."
  if (!isPort(endPort)) return `${at}.endPort ${JSON.stringify(endPort)} is not a port number (1-65535)`
  if (endPort < port) return `${at}.endPort ${endPort} is below port ${port}`
  return { kind: 'range', proto, from: port, to: endPort }
}

/**
 * "ports: List of ports which should be made accessible ... If this field is
 * empty or missing, this rule matches all ports."
 */
export function parsePorts(raw: unknown, at: string): PortsResult {
  if (raw === undefined || raw === null) return { ok: true, ports: null }
  if (!Array.isArray(raw)) return { ok: false, error: `${at} must be a list` }
  if (raw.length === 0) return { ok: true, ports: null }
  const ports: PortSpec[] = []
  for (let i = 0; i < raw.length; i++) {
    const r = parsePort(raw[i], `${at}[${i}]`)
    if (typeof r === 'string') return { ok: false, error: r }
    ports.push(r)
  }
  return { ok: true, ports }
}

export function describePort(p: PortSpec): string {
  if (p.kind === 'proto') return `${p.proto}:all`
  if (p.kind === 'named') return `${p.proto}:${p.name}`
  return p.from === p.to ? `${p.proto}:${p.from}` : `${p.proto}:${p.from}-${p.to}`
}

export interface PortMatch {
  tokens: string[]
  label: string
}

/**
 * Where a named port is looked up. Ingress: "a named port ... on the selected
 * pods" — the subject pods (namespace + podSelector) are the destination.
 * Egress: the destination is the peer, so every pod that may be a peer counts;
 * the rule also carries the peer match, which narrows it to the right pods.
 */
export type NamedPortScope = { direction: 'ingress'; namespace: string; subject: Selector } | { direction: 'egress' }

function namedPortSet(p: Extract<PortSpec, { kind: 'named' }>, scope: NamedPortScope, sets: SetUser): string {
  if (scope.direction === 'egress') {
    const key = JSON.stringify(['egress-named', p.proto, p.name])
    return sets.use('ipport', key, 'hash:ip,port', `named port ${p.proto}:${p.name} on any pod`, { kind: 'named', proto: p.proto, name: p.name, on: null })
  }
  const key = JSON.stringify(['ingress-named', scope.namespace, selectorKey(scope.subject), p.proto, p.name])
  const text = `named port ${p.proto}:${p.name} on pods ${describeSelector(scope.subject)} in ${scope.namespace}`
  return sets.use('ipport', key, 'hash:ip,port', text, { kind: 'named', proto: p.proto, name: p.name, on: { namespace: scope.namespace, subject: scope.subject } })
}

/** The matches for one rule's ports in one family; one entry when all ports are allowed. */
export function portMatches(ports: PortSpec[] | null, scope: NamedPortScope, sets: SetUser): PortMatch[] {
  if (ports === null) return [{ tokens: [], label: 'all' }]
  return ports.map((p) => {
    if (p.kind === 'proto') return { tokens: protoPorts(p.proto), label: describePort(p) }
    if (p.kind === 'range') return { tokens: protoPorts(p.proto, p), label: describePort(p) }
    // The ip,port set holds protocol and number, so the set match alone checks both.
    return { tokens: inSet(namedPortSet(p, scope, sets), 'dst,dst'), label: describePort(p) }
  })
}
