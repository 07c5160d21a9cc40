// New-connection rate between two local pods, with and without policies that
// select the receiver: a Node TCP server in the receiver's netns, a Node client
// in the sender's netns opening and resetting connections back to back.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { REPO, type Cleanup } from '../../e2e/lib/host.ts'
import { exec } from '../../shared/exec.ts'
import { NODE, synced, type Dirs, type LocalPod } from './node.ts'
import type { ManifestFolder } from './manifests.ts'
import { CONN_PORT, connPolicies } from './synth.ts'

const SERVER = join(REPO, 'scripts', 'bench', 'conn-server.ts')
const CLIENT = join(REPO, 'scripts', 'bench', 'conn-client.ts')
const POLICY_FILE = 'conn-policies.yaml'

export interface ConnResult {
  /** connections/s per run, in run order. */
  none: number[]
  withPolicies: number[]
  policies: number
}

/** Starts the server in the receiver's netns and resolves once it listens. */
export function startServer(cleanup: Cleanup, netns: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', netns, NODE, '--no-warnings', SERVER, String(CONN_PORT)], { stdio: ['ignore', 'pipe', 'inherit'], detached: true })
  cleanup.push(`conn server in ${netns}`, () => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      /* gone */
    }
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('conn server did not start in 10 s')), 10_000)
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('listening')) (clearTimeout(timer), resolve())
    })
    child.once('exit', (code) => reject(new Error(`conn server exited ${code}`)))
  })
}

async function clientRun(sender: LocalPod, receiverIp: string, seconds: number): Promise<number> {
  const r = await exec('ip', ['netns', 'exec', sender.netns, NODE, '--no-warnings', CLIENT, receiverIp, String(CONN_PORT), String(seconds * 1000)], { timeoutMs: seconds * 1000 + 60_000 })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}')
  if (r.code !== 0 || out.error) throw new Error(`conn client: ${out.error ?? r.stderr.trim()}`)
  if (out.failures > 0) throw new Error(`conn client: ${out.failures} connections failed (policy denied or timed out)`)
  return (out.connections / out.ms) * 1000
}

async function setPolicies(dirs: Dirs, folder: ManifestFolder, count: number): Promise<void> {
  if (count === 0) folder.drop(POLICY_FILE)
  else {
    for (const p of connPolicies(count)) folder.put(POLICY_FILE, p)
    folder.write(POLICY_FILE)
  }
  await synced(dirs)
}

/**
 * Alternates none / with policies `rounds` times so drift of the machine hits
 * both alike; odd rounds run the policies first, so neither side always runs
 * right after an apply. Results stay in pairs (round i of each).
 */
export async function connRate(o: { cleanup: Cleanup; dirs: Dirs; folder: ManifestFolder; server: LocalPod; client: LocalPod; policies: number; seconds: number; rounds: number }): Promise<ConnResult> {
  await startServer(o.cleanup, o.server.netns)
  const res: ConnResult = { none: [], withPolicies: [], policies: o.policies }
  for (let r = 0; r < o.rounds; r++) {
    const order = r % 2 === 0 ? [0, o.policies] : [o.policies, 0]
    for (const count of order) {
      await setPolicies(o.dirs, o.folder, count)
      ;(count ? res.withPolicies : res.none).push(await clientRun(o.client, o.server.ip, o.seconds))
    }
  }
  await setPolicies(o.dirs, o.folder, 0)
  return res
}
