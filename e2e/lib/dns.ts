// A tiny DNS client for the seed scenarios: builds an A query, parses the
// answer, and renders a resolver search list like a pod's resolv.conf. The
// bytes travel through socat inside the client pod's netns (see probe.ts), so
// the lookup is a real packet from the pod that policy can allow or drop.
//
// Wire format (RFC 1035): 12-byte header, then the question as length-prefixed
// labels + QTYPE + QCLASS; answers use the same name encoding, possibly
// compressed with 0b11 pointers.

export const TYPE_A = 1
const CLASS_IN = 1

/** Response codes the scenarios care about. */
export const RCODE = { ok: 0, servfail: 2, nxdomain: 3, refused: 5 } as const

export function encodeQuery(id: number, name: string): Buffer {
  const header = Buffer.alloc(12)
  header.writeUInt16BE(id & 0xffff, 0)
  header.writeUInt16BE(0x0100, 2) // standard query, recursion desired
  header.writeUInt16BE(1, 4) // one question
  const labels = name.replace(/\.$/, '').split('.')
  const parts: Buffer[] = [header]
  for (const l of labels) {
    if (!l || l.length > 63) throw new Error(`bad DNS label in ${JSON.stringify(name)}`)
    parts.push(Buffer.from([l.length]), Buffer.from(l, 'ascii'))
  }
  const tail = Buffer.alloc(5)
  tail.writeUInt16BE(TYPE_A, 1)
  tail.writeUInt16BE(CLASS_IN, 3)
  parts.push(tail) // tail[0] = 0 ends the name
  return Buffer.concat(parts)
}

/** DNS over TCP prefixes each message with its 2-byte length. */
export function frameTcp(msg: Buffer): Buffer {
  const len = Buffer.alloc(2)
  len.writeUInt16BE(msg.length)
  return Buffer.concat([len, msg])
}

export function unframeTcp(data: Buffer): Buffer {
  if (data.length < 2) throw new Error('short DNS/TCP answer')
  const len = data.readUInt16BE(0)
  if (data.length < 2 + len) throw new Error('truncated DNS/TCP answer')
  return data.subarray(2, 2 + len)
}

/** Skips an encoded (possibly compressed) name; returns the offset after it. */
function skipName(buf: Buffer, off: number): number {
  for (;;) {
    if (off >= buf.length) throw new Error('DNS name runs past the message')
    const len = buf[off]!
    if (len === 0) return off + 1
    if ((len & 0xc0) === 0xc0) return off + 2
    off += 1 + len
  }
}

export interface DnsAnswer {
  id: number
  rcode: number
  /** IPv4 addresses of the A records, in answer order. */
  addresses: string[]
}

export function decodeAnswer(buf: Buffer): DnsAnswer {
  if (buf.length < 12) throw new Error(`short DNS answer (${buf.length} bytes)`)
  const id = buf.readUInt16BE(0)
  const flags = buf.readUInt16BE(2)
  if (!(flags & 0x8000)) throw new Error('DNS message is not a response')
  const qd = buf.readUInt16BE(4)
  const an = buf.readUInt16BE(6)
  let off = 12
  for (let i = 0; i < qd; i++) off = skipName(buf, off) + 4
  const addresses: string[] = []
  for (let i = 0; i < an; i++) {
    off = skipName(buf, off)
    const type = buf.readUInt16BE(off)
    const rdlen = buf.readUInt16BE(off + 8)
    const rdata = buf.subarray(off + 10, off + 10 + rdlen)
    if (type === TYPE_A && rdlen === 4) addresses.push([...rdata].join('.'))
    off += 10 + rdlen
  }
  return { id, rcode: flags & 0xf, addresses }
}

export const CLUSTER_DOMAIN = 'cluster.local'

/**
 * The names a pod in `namespace` tries for `name`, in order, as glibc/musl do
 * with kubelet's resolv.conf (search <ns>.svc.cluster.local svc.cluster.local
 * cluster.local, ndots:5): a name with fewer than 5 dots goes through the
 * search list first, then as is; a name ending in "." only as is.
 */
export function searchCandidates(name: string, namespace: string): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)]
  const search = [`${namespace}.svc.${CLUSTER_DOMAIN}`, `svc.${CLUSTER_DOMAIN}`, CLUSTER_DOMAIN]
  const dots = name.split('.').length - 1
  const expanded = search.map((s) => `${name}.${s}`)
  return dots >= 5 ? [name, ...expanded] : [...expanded, name]
}

/** A hosts-file line per name, the format dnsmasq's --addn-hosts reads. */
export function hostsFile(records: ReadonlyMap<string, readonly string[]>): string {
  const lines: string[] = []
  for (const [name, ips] of [...records].sort(([a], [b]) => a.localeCompare(b))) {
    for (const ip of ips) lines.push(`${ip} ${name}`)
  }
  return lines.join('\n') + '\n'
}
