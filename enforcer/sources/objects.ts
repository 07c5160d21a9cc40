// What a source may hand the store: shape checks and normalisation of
// Namespaces, Pods and NetworkPolicies to the plain JSON shape of
// enforcer/model.ts. Objects arrive as parsed YAML, as raw watch JSON, or as
// @kubernetes/client-node class instances (with Date fields and extra
// properties); all come out as plain data holding only what policy reads, with
// `null` treated as absent. The checks are structural (types, required
// fields); whether a value makes sense (a CIDR, an operator) is the compiler's
// call, which fails closed on what it cannot honour.
import type { LabelSelector, Namespace, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, Node, ObjectMeta, Pod } from '../model.ts'
import { stableJson } from '../../shared/stable-json.ts'
import { podCidrsOf } from '../../shared/pod-cidrs.ts'

export type Kind = 'Namespace' | 'Pod' | 'NetworkPolicy' | 'Node'
export const KINDS: readonly Kind[] = ['Namespace', 'Pod', 'NetworkPolicy', 'Node']
export type KubeObject = Namespace | Pod | NetworkPolicy | Node

export type Normalized<T> = { ok: true; obj: T } | { ok: false; errors: string[] }

export function isNamespaced(kind: Kind): boolean {
  return kind !== 'Namespace' && kind !== 'Node'
}

/** The store key: `namespace/name` for namespaced kinds, `name` otherwise. */
export function objectKey(kind: Kind, namespace: string | undefined, name: string): string {
  return isNamespaced(kind) ? `${namespace ?? ''}/${name}` : name
}

/** "Pod default/web" from whatever the object carries, for error messages. */
export function describe(kind: string, obj: unknown): string {
  const meta = (obj as any)?.metadata
  const name = typeof meta?.name === 'string' && meta.name ? meta.name : '<no name>'
  const ns = typeof meta?.namespace === 'string' && meta.namespace ? `${meta.namespace}/` : ''
  return `${kind} ${ns}${name}`
}

/** Checks and copies an object of `kind`; errors name the offending field. */
export function normalize(kind: Kind, obj: unknown): Normalized<KubeObject> {
  const c = new Checker()
  if (!isObject(obj)) return { ok: false, errors: ['not an object'] }
  const metadata = meta(c, kind, obj.metadata)
  let out: KubeObject | undefined
  if (kind === 'Namespace') out = { metadata }
  else if (kind === 'Pod') out = { metadata, ...podBody(c, obj) }
  else if (kind === 'NetworkPolicy') out = { metadata, spec: policySpec(c, obj.spec) }
  else if (kind === 'Node') out = { metadata, ...nodeBody(c, obj) }
  else c.fail('kind', `unknown kind ${kind}`)
  return c.errors.length || !out ? { ok: false, errors: c.errors } : { ok: true, obj: out }
}

/**
 * A key-sorted JSON of what policy reads. Equal strings mean the object did not
 * change for policy purposes; uid and resourceVersion are left out.
 */
export function canonical(obj: KubeObject): string {
  const { uid: _uid, resourceVersion: _rv, ...meta } = obj.metadata
  return stableJson({ ...obj, metadata: meta })
}

class Checker {
  errors: string[] = []
  fail(path: string, msg: string): undefined {
    this.errors.push(`${path}: ${msg}`)
    return undefined
  }
  str(v: unknown, path: string, required = false): string | undefined {
    if (v === undefined || v === null) return required ? this.fail(path, 'required') : undefined
    return typeof v === 'string' ? v : this.fail(path, `must be a string, got ${typeof v}`)
  }
  num(v: unknown, path: string, required = false): number | undefined {
    if (v === undefined || v === null) return required ? this.fail(path, 'required') : undefined
    return typeof v === 'number' && Number.isInteger(v) ? v : this.fail(path, 'must be an integer')
  }
  bool(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined
    return typeof v === 'boolean' ? v : this.fail(path, 'must be a boolean')
  }
  obj(v: unknown, path: string, required = false): Record<string, any> | undefined {
    if (v === undefined || v === null) return required ? this.fail(path, 'required') : undefined
    return isObject(v) && !Array.isArray(v) ? v : this.fail(path, 'must be an object')
  }
  /** Maps each element with `f`; undefined when absent. */
  arr<T>(v: unknown, path: string, f: (x: unknown, p: string) => T | undefined): T[] | undefined {
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v)) return this.fail(path, 'must be a list')
    return v.map((x, i) => f(x, `${path}[${i}]`)).filter((x): x is T => x !== undefined)
  }
  strMap(v: unknown, path: string): Record<string, string> | undefined {
    const o = this.obj(v, path)
    if (!o) return undefined
    const out: Record<string, string> = {}
    for (const [k, val] of Object.entries(o)) {
      if (typeof val === 'string') out[k] = val
      else this.fail(`${path}.${k}`, 'must be a string')
    }
    return out
  }
}

function meta(c: Checker, kind: Kind, v: unknown): ObjectMeta {
  const m = c.obj(v, 'metadata', true) ?? {}
  const name = c.str(m.name, 'metadata.name', true) ?? ''
  if (m.name === '') c.fail('metadata.name', 'required')
  const out: ObjectMeta = { name }
  if (isNamespaced(kind)) {
    const ns = c.str(m.namespace, 'metadata.namespace', true)
    if (m.namespace === '') c.fail('metadata.namespace', 'required')
    out.namespace = ns
  }
  return setIf(out, { uid: c.str(m.uid, 'metadata.uid'), labels: c.strMap(m.labels, 'metadata.labels'), resourceVersion: c.str(m.resourceVersion, 'metadata.resourceVersion') })
}

function podBody(c: Checker, o: Record<string, any>): Omit<Pod, 'metadata'> {
  const spec = c.obj(o.spec, 'spec') ?? {}
  const status = c.obj(o.status, 'status') ?? {}
  const containers = c.arr(spec.containers, 'spec.containers', (x, p) => {
    const ct = c.obj(x, p)
    if (!ct) return undefined
    const ports = c.arr(ct.ports, `${p}.ports`, (y, q) => {
      const po = c.obj(y, q)
      if (!po) return undefined
      const containerPort = c.num(po.containerPort, `${q}.containerPort`, true)
      if (containerPort === undefined) return undefined
      return setIf({ containerPort }, { name: c.str(po.name, `${q}.name`), protocol: c.str(po.protocol, `${q}.protocol`) })
    })
    return setIf({}, { name: c.str(ct.name, `${p}.name`), ports })
  })
  const podIPs = c.arr(status.podIPs, 'status.podIPs', (x, p) => {
    const ip = c.str(c.obj(x, p)?.ip, `${p}.ip`, true)
    return ip === undefined ? undefined : { ip }
  })
  return {
    spec: setIf({}, { nodeName: c.str(spec.nodeName, 'spec.nodeName'), hostNetwork: c.bool(spec.hostNetwork, 'spec.hostNetwork'), containers }),
    status: setIf({}, { podIP: c.str(status.podIP, 'status.podIP'), podIPs, phase: c.str(status.phase, 'status.phase') }),
  }
}

/** Pod ranges and InternalIP addresses only: heartbeats and other address types are no change. */
function nodeBody(c: Checker, o: Record<string, any>): Omit<Node, 'metadata'> {
  const spec = c.obj(o.spec, 'spec') ?? {}
  const status = c.obj(o.status, 'status') ?? {}
  const podCIDRs = c.arr(spec.podCIDRs, 'spec.podCIDRs', (x, p) => c.str(x, p, true))
  const addresses = c.arr(status.addresses, 'status.addresses', (x, p) => {
    const a = c.obj(x, p)
    const type = c.str(a?.type, `${p}.type`, true)
    const address = c.str(a?.address, `${p}.address`, true)
    return type === 'InternalIP' && address !== undefined ? { type, address } : undefined
  })
  return {
    // the older single spec.podCIDR folded in here, so nothing downstream decides it again
    spec: setIf({}, { podCIDRs: nodeRanges(podCIDRs, c.str(spec.podCIDR, 'spec.podCIDR')) }),
    status: setIf({}, { addresses }),
  }
}

function nodeRanges(podCIDRs: string[] | undefined, podCIDR: string | undefined): string[] | undefined {
  const list = podCidrsOf({ spec: { podCIDRs, podCIDR } })
  return list.length ? list : undefined
}

function policySpec(c: Checker, v: unknown): NetworkPolicy['spec'] {
  const s = c.obj(v, 'spec', true) ?? {}
  const podSelector = selector(c, s.podSelector, 'spec.podSelector', true) ?? {}
  const policyTypes = c.arr(s.policyTypes, 'spec.policyTypes', (x, p) => c.str(x, p, true))
  const ingress = c.arr(s.ingress, 'spec.ingress', (x, p) => {
    const r = c.obj(x, p)
    if (!r) return undefined
    return setIf({}, { from: c.arr(r.from, `${p}.from`, (y, q) => peer(c, y, q)), ports: c.arr(r.ports, `${p}.ports`, (y, q) => port(c, y, q)) })
  })
  const egress = c.arr(s.egress, 'spec.egress', (x, p) => {
    const r = c.obj(x, p)
    if (!r) return undefined
    return setIf({}, { to: c.arr(r.to, `${p}.to`, (y, q) => peer(c, y, q)), ports: c.arr(r.ports, `${p}.ports`, (y, q) => port(c, y, q)) })
  })
  return setIf({ podSelector }, { policyTypes, ingress, egress })
}

function selector(c: Checker, v: unknown, path: string, required = false): LabelSelector | undefined {
  const s = c.obj(v, path, required)
  if (!s) return undefined
  const matchExpressions = c.arr(s.matchExpressions, `${path}.matchExpressions`, (x, p) => {
    const e = c.obj(x, p)
    if (!e) return undefined
    const key = c.str(e.key, `${p}.key`, true)
    const operator = c.str(e.operator, `${p}.operator`, true)
    const values = c.arr(e.values, `${p}.values`, (y, q) => c.str(y, q, true))
    return key === undefined || operator === undefined ? undefined : setIf({ key, operator }, { values })
  })
  return setIf({}, { matchLabels: c.strMap(s.matchLabels, `${path}.matchLabels`), matchExpressions })
}

function peer(c: Checker, v: unknown, path: string): NetworkPolicyPeer | undefined {
  const p = c.obj(v, path)
  if (!p) return undefined
  const b = c.obj(p.ipBlock, `${path}.ipBlock`)
  const cidr = b ? c.str(b.cidr, `${path}.ipBlock.cidr`, true) : undefined
  const ipBlock = b && cidr !== undefined ? setIf({ cidr }, { except: c.arr(b.except, `${path}.ipBlock.except`, (x, q) => c.str(x, q, true)) }) : undefined
  return setIf({}, {
    podSelector: selector(c, p.podSelector, `${path}.podSelector`),
    namespaceSelector: selector(c, p.namespaceSelector, `${path}.namespaceSelector`),
    ipBlock,
  })
}

function port(c: Checker, v: unknown, path: string): NetworkPolicyPort | undefined {
  const p = c.obj(v, path)
  if (!p) return undefined
  let value: number | string | undefined
  if (typeof p.port === 'number' || typeof p.port === 'string') value = p.port
  else if (p.port !== undefined && p.port !== null) c.fail(`${path}.port`, 'must be a number or a port name')
  return setIf({}, { protocol: c.str(p.protocol, `${path}.protocol`), port: value, endPort: c.num(p.endPort, `${path}.endPort`) })
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null
}

/** Copies the defined entries of `extra` onto `base`, so absent fields stay absent. */
function setIf<T extends object>(base: T, extra: Record<string, unknown>): T {
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (base as any)[k] = v
  return base
}
