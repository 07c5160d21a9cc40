// Reaps seed runs that died without their teardown (SIGKILL, a runner's hard
// timeout): their folder in tmpdir names an owner pid that is gone, and lists
// the processes (negative = a process group) and netns the run made. Called
// with the kernel lock held, so no live run can be affected.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { trySh } from '../lib/host.ts'
import { RUN_DIR_PREFIX } from '../lib/cluster.ts'
import { OUTSIDE_HOST_IF, SVC_CHAIN } from './world.ts'

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
}

/** Returns what it reaped, one line per dead run. */
export function reapStaleRuns(): string[] {
  const reaped: string[] = []
  for (const d of readdirSync(tmpdir()).filter((n) => n.startsWith(RUN_DIR_PREFIX) && n !== `${RUN_DIR_PREFIX}logs`)) {
    const root = join(tmpdir(), d)
    const owner = Number(lines(join(root, 'owner'))[0])
    if (!owner || existsSync(`/proc/${owner}`)) continue
    for (const pid of lines(join(root, 'pids')).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
    const netns = lines(join(root, 'netns'))
    for (const n of netns) trySh('ip', ['netns', 'del', n])
    trySh('ip', ['netns', 'del', 'ws-out'])
    trySh('ip', ['link', 'del', OUTSIDE_HOST_IF])
    trySh('iptables', ['-w', '-t', 'nat', '-D', 'PREROUTING', '-j', SVC_CHAIN])
    trySh('iptables', ['-w', '-t', 'nat', '-F', SVC_CHAIN])
    trySh('iptables', ['-w', '-t', 'nat', '-X', SVC_CHAIN])
    const enforcer = join(root, 'build', 'bin', 'wren-enforcer')
    if (existsSync(enforcer)) trySh(enforcer, ['cleanup'])
    for (const cidr of ['10.92.0.0/16', '10.93.0.0/16', '10.94.0.0/24']) trySh('ip', ['route', 'del', 'blackhole', cidr])
    rmSync(root, { recursive: true, force: true })
    reaped.push(`${root} (owner ${owner}, ${netns.length} pods)`)
  }
  return reaped
}
