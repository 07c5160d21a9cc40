// Every name wren gives to a kernel object is derived here, so that ownership
// (the `wren` prefix) and length limits are decided in one place.
//
// Limits: interface names 15 chars (IFNAMSIZ-1), iptables chain names 28,
// ipset set names 31. Hashes are taken over a NUL-separated encoding of the
// identity so that ("ab","c") and ("a","bc") never collide.
//
// SHA-256 is computed here in plain JavaScript rather than with node:crypto:
// the CNI plugin is a process per pod and loading node:crypto costs it about
// 4 ms of its ~25 ms budget, while hashing a few short names costs microseconds.

export const IFNAME_MAX = 15
export const CHAIN_MAX = 28
export const SET_MAX = 31

/** Prefix of every chain and set wren owns. Cleanup removes exactly these. */
export const OWNER_PREFIX = 'wren'
export const DEFAULT_IFACE_PREFIX = 'wren'

export function hashParts(parts: readonly string[], hexLen: number): string {
  return sha256Hex(new TextEncoder().encode(parts.map((p) => p + '\0').join(''))).slice(0, hexLen)
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
  natPostrouting: 'wren-POSTROUTING',
} as const

/** Per-workload chain kinds keyed on the host interface name. */
export type WorkloadChainKind = 'fw' | 'tw'

/** wren-fw-IFACE / wren-tw-IFACE. Interface names are at most 15 chars, so these fit in 28. */
export function workloadChain(kind: WorkloadChainKind, iface: string): string {
  const name = `${OWNER_PREFIX}-${kind}-${iface}`
  if (name.length > CHAIN_MAX) throw new Error(`chain name ${name} exceeds ${CHAIN_MAX} characters`)
  return name
}

/** `union`: the peers of one workload's port group, merged into one hash:net. */
export type SetKind = 'ip' | 'net' | 'ipport' | 'union'

/**
 * Set names are hashes of their content key (e.g. the canonical selector pair),
 * with the family in the name: `wren4i-…`, `wren6n-…`, `wren4u-…`. A `-tmp` style swap name
 * is derived with `tempSetName`.
 */
export function setName(kind: SetKind, family: 4 | 6, key: string): string {
  const tag = kind === 'ip' ? 'i' : kind === 'net' ? 'n' : kind === 'union' ? 'u' : 'p'
  const prefix = `${OWNER_PREFIX}${family}${tag}-`
  // leave room for the temp-swap suffix "~" so tempSetName stays within SET_MAX
  return prefix + hashParts([kind, String(family), key], SET_MAX - 1 - prefix.length)
}

/** Every pod range of the cluster, one hash:net per family (masquerade and anti-spoofing match it). */
export function podCidrSetName(family: 4 | 6): string {
  return `${OWNER_PREFIX}${family}-podcidrs`
}

// ---- routes between nodes ----

/**
 * The VXLAN device routes to other nodes' pods go through. Not prefixed with
 * the workload prefix: `wren+` in iptables would take it for a pod interface.
 */
export const VXLAN_DEVICE = 'vxlan.wren'
/** VNI and UDP port (IANA's 4789) of that device. */
export const VXLAN_VNI = 1
export const VXLAN_PORT = 4789
/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers: what a pod's MTU leaves for the overlay. */
export const VXLAN_OVERHEAD = 50
/**
 * The routing protocol number stamped on every route wren makes (`ip route`
 * shows `proto 87`). Ownership of routes comes from it: wren never changes or
 * deletes a route with another protocol. Unregistered in iproute2's rt_protos.
 */
export const ROUTE_PROTOCOL = 87

/**
 * A node's VXLAN endpoint MAC, derived from its name, so every node knows
 * every other node's without publishing it: locally administered, unicast.
 */
export function vtepMac(nodeName: string): string {
  const h = hashParts(['vtep', nodeName], 12)
  const first = ((parseInt(h.slice(0, 2), 16) & 0xfc) | 0x02).toString(16).padStart(2, '0')
  return [first, ...h.slice(2).match(/../g)!].join(':')
}

export function tempSetName(name: string): string {
  return name + '~'
}

// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])

function sha256Hex(msg: Uint8Array): string {
  // padding: 0x80, zeros, then the bit length as a 64-bit big-endian number
  const blocks = Math.ceil((msg.length + 9) / 64)
  const buf = new Uint8Array(blocks * 64)
  buf.set(msg)
  buf[msg.length] = 0x80
  const view = new DataView(buf.buffer)
  view.setUint32(buf.length - 8, Math.floor(msg.length / 0x20000000))
  view.setUint32(buf.length - 4, msg.length * 8)
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
  const w = new Uint32Array(64)
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n))
  for (let off = 0; off < buf.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4)
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3)
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10)
      w[i] = w[i - 16] + s0 + w[i - 7] + s1
    }
    let [a, b, c, d, e, f, g, hh] = h
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0
      hh = g
      g = f
      f = e
      e = (d + t1) | 0
      d = c
      c = b
      b = a
      a = (t1 + t2) | 0
    }
    h[0] += a
    h[1] += b
    h[2] += c
    h[3] += d
    h[4] += e
    h[5] += f
    h[6] += g
    h[7] += hh
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, '0')).join('')
}
