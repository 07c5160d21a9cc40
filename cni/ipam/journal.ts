// A journal of delegated ADDs, one file per attachment under
// <stateDir>/ipam-delegated/<network>/, so that ipamAdd stays idempotent even
// when the delegate is not: host-local refuses a second ADD of an attachment
// ("duplicate allocation"), which would wedge a retry after a crash.
//
// Model: "pending" is written before the delegate runs, the result after it
// answered; DEL removes the file once the delegate released.
// - done: a repeated ADD returns the recorded result, the same addresses.
// - pending: an earlier ADD died (or failed) mid-way and the delegate may
//   hold an address for it; the retry has the delegate DEL first, then ADDs.
// Files are replaced by rename, so a reader sees a whole record or none.
// Concurrency: the runtime never runs two commands for one attachment at
// once; different attachments touch different files.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { networkDir, uniqueSuffix } from './store.ts'
import type { Attachment, IpamResult } from './types.ts'

export interface Entry extends Attachment {
  result?: IpamResult
}

const dirOf = (stateDir: string, network: string): string => networkDir(join(stateDir, 'ipam-delegated'), network)
// container IDs never hold "@" (alphanumeric, "_", ".", "-"), so the name is unambiguous
const fileOf = (dir: string, a: Attachment): string => join(dir, `${a.containerId}@${a.ifname}`)

export function readEntry(stateDir: string, network: string, a: Attachment): Entry | undefined {
  try {
    const e = JSON.parse(readFileSync(fileOf(dirOf(stateDir, network), a), 'utf8')) as Entry
    return e.containerId === a.containerId && e.ifname === a.ifname ? e : undefined
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    // An unreadable record can only come from outside wren; treat it as an interrupted ADD.
    return { ...a }
  }
}

export function writeEntry(stateDir: string, network: string, e: Entry): void {
  const dir = dirOf(stateDir, network)
  mkdirSync(dir, { recursive: true })
  const temp = join(dir, `.tmp-${uniqueSuffix()}`)
  writeFileSync(temp, JSON.stringify(e), { flag: 'wx' })
  renameSync(temp, fileOf(dir, e))
}

export function removeEntry(stateDir: string, network: string, a: Attachment): void {
  rmSync(fileOf(dirOf(stateDir, network), a), { force: true })
}

/** Every journaled attachment of the network. */
export function listEntries(stateDir: string, network: string): Attachment[] {
  const dir = dirOf(stateDir, network)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
  return names.filter((n) => !n.startsWith('.') && n.includes('@')).map((n) => {
    const at = n.indexOf('@')
    return { containerId: n.slice(0, at), ifname: n.slice(at + 1) }
  })
}
