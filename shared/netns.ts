// The one gateway into a pod's network namespace. Node cannot setns safely
// (it switches only the calling thread, and libuv's other threads and every
// await would see the host namespace), so everything that must run inside a
// pod's namespace is a child process started by `nsenter --net=PATH`.
import { statfsSync, statSync } from 'node:fs'
import { execOk, type Exec } from './exec.ts'

/** True when the path exists (a bind-mounted nsfs file or a /proc/PID/ns/net link). */
export function netnsExists(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}

const NSFS_MAGIC = 0x6e736673

/** True when the path is a network namespace file (nsfs), not some other file that could block an open. */
export function isNetns(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC
  } catch {
    return false
  }
}

/** Feeds an `ip -batch` script to ip inside the namespace; rejects with ip's error. */
export async function ipBatchInNetns(exec: Exec, path: string, script: string): Promise<void> {
  await execOk(exec, 'nsenter', [`--net=${path}`, '--', 'ip', '-batch', '-'], { input: script })
}

/** `ip -j ARGS` inside the namespace, parsed. */
export async function ipJsonInNetns(exec: Exec, path: string, args: readonly string[]): Promise<unknown> {
  const out = await execOk(exec, 'nsenter', [`--net=${path}`, '--', 'ip', '-j', ...args])
  return out.trim() ? JSON.parse(out) : []
}
