// Every name wren gives to a kernel object is derived here, so that ownership
// (the `wren` prefix) and length limits are decided in one place.
//
// Limits: interface names 15 chars (IFNAMSIZ-1), iptables chain names 28,
// ipset set names 31. Hashes are taken over a NUL-separated encoding of the
// identity so that ("ab","c") and ("a","bc") never collide.
import { createHash } from 'node:crypto'

export const IFNAME_MAX = 15
export const CHAIN_MAX = 28
export const SET_MAX = 31

/** Prefix of every chain and set wren owns. Cleanup removes exactly these. */
export const OWNER_PREFIX = 'wren'
export const DEFAULT_IFACE_PREFIX = 'wren'

export function hashParts(parts: readonly string[], hexLen: number): string {
  const h = createHash('sha256')
  for (const p of parts) {
    h.update(p)
    h.update('\0')
  }
  return h.digest('hex').slice(0, hexLen)
}

/**
 * Host-side veth name: prefix + hash of "namespace.pod" (or of the container
 * ID when the runtime gave no pod identity), filling the 15 characters.
 */
export function hostIfaceName(prefix: string, identity: { namespace?: string; pod?: string; containerId: string }): string {
  if (!/^[a-z0-9]{1,10}$/.test(prefix)) throw new Error(`interface prefix ${JSON.stringify(prefix)} must be 1-10 lowercase letters or digits`)
  const key = identity.namespace && identity.pod ? [identity.namespace, identity.pod] : [identity.containerId]
  return prefix + hashParts(key, IFNAME_MAX - prefix.length)
}

/** Fixed chains hooked from the built-in chains. */
export const CHAINS = {
  forward: 'wren-FORWARD',
  input: 'wren-INPUT',
  output: 'wren-OUTPUT',
  fromWlDispatch: 'wren-from-wl-dispatch',
  toWlDispatch: 'wren-to-wl-dispatch',
  wlToHost: 'wren-wl-to-host',
  rawPrerouting: 'wren-PREROUTING',
} as const

/** Per-workload chain kinds keyed on the host interface name. */
export type WorkloadChainKind = 'fw' | 'tw'
/** Per-policy chain kinds keyed on the policy identity. */
export type PolicyChainKind = 'pi' | 'po'

/** wren-fw-IFACE / wren-tw-IFACE. Interface names are at most 15 chars, so these fit in 28. */
export function workloadChain(kind: WorkloadChainKind, iface: string): string {
  const name = `${OWNER_PREFIX}-${kind}-${iface}`
  if (name.length > CHAIN_MAX) throw new Error(`chain name ${name} exceeds ${CHAIN_MAX} characters`)
  return name
}

/** wren-pi-HASH / wren-po-HASH for a policy (namespace, name) and direction. */
export function policyChain(kind: PolicyChainKind, namespace: string, name: string): string {
  const prefix = `${OWNER_PREFIX}-${kind}-`
  return prefix + hashParts([kind, namespace, name], CHAIN_MAX - prefix.length)
}

export type SetKind = 'ip' | 'net' | 'ipport'

/**
 * Set names are hashes of their content key (e.g. the canonical selector pair),
 * with the family in the name: `wren4i-…`, `wren6n-…`. A `-tmp` style swap name
 * is derived with `tempSetName`.
 */
export function setName(kind: SetKind, family: 4 | 6, key: string): string {
  const tag = kind === 'ip' ? 'i' : kind === 'net' ? 'n' : 'p'
  const prefix = `${OWNER_PREFIX}${family}${tag}-`
  // leave room for the temp-swap suffix "~" so tempSetName stays within SET_MAX
  return prefix + hashParts([kind, String(family), key], SET_MAX - 1 - prefix.length)
}

export function tempSetName(name: string): string {
  return name + '~'
}
