// Workload records: one JSON file per attachment (container ID + ifname) under
// <stateDir>/workloads/. The plugin writes them on ADD and removes them on DEL;
// the enforcer watches the folder to learn which host interface is which pod.
// Writes are atomic (temp file in the same folder + rename), so a reader never
// sees half a record.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface WorkloadRecord {
  /** The runtime's container (sandbox) ID. */
  containerId: string
  /** CNI_IFNAME, the interface name inside the pod. */
  ifname: string
  /** Network name from the CNI config. */
  network: string
  /** Pod identity from CNI_ARGS K8S_POD_*; absent when the runtime did not pass it. */
  namespace?: string
  pod?: string
  podUid?: string
  netns: string
  /** Host-side veth name (prefix + hash). */
  hostIface: string
  /** Pod addresses without prefix length, IPv4 and/or IPv6. */
  ips: string[]
  /** MAC of the container-side interface. */
  mac: string
  /** ISO time of the ADD that wrote the record. */
  created: string
}

export function workloadsDir(stateDir: string): string {
  return join(stateDir, 'workloads')
}

/** File name of a record: container ID and ifname, both validated by the plugin. */
export function recordFileName(containerId: string, ifname: string): string {
  return `${containerId}_${ifname}.json`
}

export function writeRecord(stateDir: string, rec: WorkloadRecord): string {
  const dir = workloadsDir(stateDir)
  mkdirSync(dir, { recursive: true })
  const path = join(dir, recordFileName(rec.containerId, rec.ifname))
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n')
  renameSync(tmp, path)
  return path
}

export function removeRecord(stateDir: string, containerId: string, ifname: string): void {
  rmSync(join(workloadsDir(stateDir), recordFileName(containerId, ifname)), { force: true })
}

export function readRecord(stateDir: string, containerId: string, ifname: string): WorkloadRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(workloadsDir(stateDir), recordFileName(containerId, ifname)), 'utf8'))
  } catch (e: any) {
    if (e?.code === 'ENOENT') return undefined
    throw e
  }
}

/** Every complete record in the folder; temp files and unreadable files are skipped and reported. */
export function listRecords(stateDir: string, onBad?: (file: string, err: unknown) => void): WorkloadRecord[] {
  let files: string[]
  try {
    files = readdirSync(workloadsDir(stateDir))
  } catch (e: any) {
    if (e?.code === 'ENOENT') return []
    throw e
  }
  const out: WorkloadRecord[] = []
  for (const f of files) {
    if (!f.endsWith('.json')) continue
    try {
      out.push(JSON.parse(readFileSync(join(workloadsDir(stateDir), f), 'utf8')))
    } catch (e) {
      onBad?.(f, e)
    }
  }
  return out
}
