// DEL: idempotent teardown. A missing netns, link, reservation or record is
// success; the runtime may call DEL twice, after a failed ADD, or after the
// namespace is gone. Order: unwire first (so the address is no longer in use),
// then release it, then drop the record the agent watches.
import { hostIfaceName } from '../shared/names.ts'
import { listRecords, readRecord, removeRecord, type WorkloadRecord } from '../shared/record.ts'
import { ipamContext, type Ctx } from './context.ts'
import { podIdentity } from './env.ts'
import { ipamDel } from './ipam/index.ts'
import type { Result } from './result.ts'

export async function cmdDel(ctx: Ctx): Promise<Result | undefined> {
  const { env, conf, host, log } = ctx
  const started = Date.now()
  const record = readRecord(conf.stateDir, env.containerId, env.ifname)
  const hostIface = record?.hostIface ?? hostIfaceName(conf.ifacePrefix, { ...podIdentity(env), containerId: env.containerId })
  const owner = otherOwner(conf.stateDir, hostIface, env.containerId, env.ifname)
  if (owner) {
    // a newer sandbox of the same pod reuses the name: its veth is not ours to delete
    log.info('host veth belongs to another attachment; leaving it', { hostIface, owner: owner.containerId })
  } else {
    const deleted = await host.unwire(hostIface)
    log.debug('host veth', { hostIface, deleted, host: host.kind })
  }
  await ipamDel(ipamContext(ctx))
  removeRecord(conf.stateDir, env.containerId, env.ifname)
  log.info('DEL done', { hostIface, hadRecord: !!record, ms: Date.now() - started })
  return undefined
}

/** The record of a different attachment that claims the same host interface, if any. */
export function otherOwner(stateDir: string, hostIface: string, containerId: string, ifname: string): WorkloadRecord | undefined {
  return listRecords(stateDir).find((r) => r.hostIface === hostIface && !(r.containerId === containerId && r.ifname === ifname))
}
