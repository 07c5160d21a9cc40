// GC (spec 1.1): the runtime lists the attachments that are still valid;
// everything else this network holds is released: host veths of stale
// records, the records themselves, and (through IPAM) their reservations.
import { listRecords, removeRecord } from '../shared/record.ts'
import type { Ctx } from './context.ts'
import { CniError, CNI_CODE } from './errors.ts'
import { ipamGc } from './ipam/index.ts'
import { requireVersion } from './version.ts'

export async function cmdGc(ctx: Ctx): Promise<undefined> {
  const { conf, exec, host, log } = ctx
  requireVersion(conf.cniVersion, '1.1.0', 'GC')
  const valid = conf.validAttachments
  if (!valid) throw new CniError(CNI_CODE.invalidConfig, 'GC needs cni.dev/valid-attachments')
  const isValid = (containerId: string, ifname: string) => valid.some((a) => a.containerId === containerId && a.ifname === ifname)
  const records = listRecords(conf.stateDir, (file, err) => log.warn('unreadable workload record', { file, err: String(err) }))
  const mine = records.filter((r) => r.network === conf.name)
  // a host interface a valid attachment still uses is never deleted, even if a stale record names it too
  const inUse = new Set(records.filter((r) => isValid(r.containerId, r.ifname)).map((r) => r.hostIface))
  const stale = mine.filter((r) => !isValid(r.containerId, r.ifname))
  for (const r of stale) {
    if (r.hostIface.startsWith(conf.ifacePrefix) && !inUse.has(r.hostIface)) await host.unwire(r.hostIface)
    removeRecord(conf.stateDir, r.containerId, r.ifname)
    log.info('GC removed stale attachment', { containerId: r.containerId, ifname: r.ifname, hostIface: r.hostIface })
  }
  await ipamGc({ network: conf.name, ipam: conf.ipam, netconf: conf.raw, stateDir: conf.stateDir, env: ctx.rawEnv, exec, log }, valid)
  return undefined
}
