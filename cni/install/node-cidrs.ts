// install-cni's Kubernetes mode: this node's pod ranges from its Node object.
//
// The Node may not exist yet (the init container can start before kubelet's
// registration is visible), it may have no spec.podCIDRs yet (the controller
// manager assigns them shortly after), and the API may be unreachable for a
// while. So: poll readNode until the ranges are there, bounded by a deadline,
// saying on stderr what it is waiting for, and never guess a range: on timeout
// the caller gets an error and writes nothing.
import type { KubeConfig } from '@kubernetes/client-node'
import { podCidrProblems } from './conflist.ts'
import { podCidrsOf } from '../../shared/pod-cidrs.ts'

export interface NodeCidrOptions {
  /** A kubeconfig file, or the pod's service account when inCluster. */
  kubeconfig?: string
  inCluster?: boolean
  nodeName: string
  timeoutMs: number
  pollMs?: number
  /** A progress line at least this often while waiting (and whenever the reason changes). */
  progressMs?: number
  say: (line: string) => void
}

export { podCidrsOf }

type Outcome = { cidrs: string[] } | { waiting: string }

export async function waitForNodePodCidrs(o: NodeCidrOptions): Promise<string[]> {
  const { KubeConfig, CoreV1Api, Observable } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  if (o.inCluster) kc.loadFromCluster()
  else kc.loadFromFile(o.kubeconfig!)
  const api = kc.makeApiClient(CoreV1Api)
  const pollMs = o.pollMs ?? 1000
  const progressMs = o.progressMs ?? 5000
  const started = Date.now()
  const deadline = started + o.timeoutMs
  let lastSaid = { text: '', at: 0 }

  const readOnce = async (): Promise<Outcome> => {
    // a black-holed API server must not hold a request past the deadline
    // (the last try, at the deadline, still gets a second to answer)
    const signal = AbortSignal.timeout(Math.min(10_000, Math.max(1000, deadline - Date.now())))
    const withSignal = {
      middleware: [{ pre: (ctx: any) => (ctx.setSignal(signal), new Observable(Promise.resolve(ctx))), post: (ctx: any) => new Observable(Promise.resolve(ctx)) }],
      middlewareMergeStrategy: 'append' as const,
    }
    try {
      const node = await api.readNode({ name: o.nodeName }, withSignal)
      const cidrs = podCidrsOf(node)
      if (cidrs.length) return { cidrs }
      return { waiting: `node ${o.nodeName} has no spec.podCIDRs yet (the controller manager assigns them with --allocate-node-cidrs)` }
    } catch (e) {
      return { waiting: describeFailure(e, o.nodeName, serverOf(kc)) }
    }
  }

  for (;;) {
    const r = await readOnce()
    if ('cidrs' in r) {
      const problems = podCidrProblems(r.cidrs)
      if (problems.length) throw new Error(`node ${o.nodeName} has pod CIDRs wren cannot use (${r.cidrs.join(', ')}): ${problems.join('; ')}`)
      return r.cidrs
    }
    const now = Date.now()
    if (now >= deadline) {
      throw new Error(`gave up after ${seconds(o.timeoutMs)}: ${r.waiting}; wrote nothing (raise --wait-timeout, or give --pod-cidr)`)
    }
    if (r.waiting !== lastSaid.text || now - lastSaid.at >= progressMs) {
      o.say(`waiting for node ${o.nodeName}'s pod CIDRs (${seconds(now - started)} of ${seconds(o.timeoutMs)}): ${r.waiting}`)
      lastSaid = { text: r.waiting, at: now }
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, deadline - now)))
  }
}

function serverOf(kc: KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? 'the API server'
}

/** One clear line per reason: the node is missing, the API refused us, or it cannot be reached. */
function describeFailure(e: unknown, nodeName: string, server: string): string {
  const err = e as { code?: unknown; body?: unknown; message?: string; name?: string }
  if (typeof err?.code === 'number') {
    if (err.code === 404) return `node ${nodeName} does not exist yet`
    let reason = ''
    try {
      reason = JSON.parse(String(err.body)).message ?? ''
    } catch {
      /* not a Status */
    }
    return `${server} answered HTTP ${err.code}${reason ? `: ${reason}` : ''}`
  }
  const why = err?.name === 'AbortError' || err?.name === 'TimeoutError' ? 'no answer in time' : typeof err?.code === 'string' ? err.code : (err?.message ?? String(e))
  return `the API server ${server} is unreachable (${why})`
}

function seconds(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`
}
