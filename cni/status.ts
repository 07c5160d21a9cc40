// STATUS (spec 1.1): is the plugin ready for ADDs? Ready means IPAM can still
// hand out an address (CniError 50 otherwise, raised by the IPAM module) and
// the state folder is writable.
import { accessSync, constants, mkdirSync } from 'node:fs'
import { workloadsDir } from '../shared/record.ts'
import type { Ctx } from './context.ts'
import { CniError, CNI_CODE } from './errors.ts'
import { ipamStatus } from './ipam/index.ts'
import { requireVersion } from './version.ts'

export async function cmdStatus(ctx: Ctx): Promise<undefined> {
  const { conf, log } = ctx
  requireVersion(conf.cniVersion, '1.1.0', 'STATUS')
  const dir = workloadsDir(conf.stateDir)
  try {
    mkdirSync(dir, { recursive: true })
    accessSync(dir, constants.W_OK)
  } catch (e) {
    throw new CniError(CNI_CODE.pluginNotAvailable, `state folder ${dir} is not writable`, (e as Error).message)
  }
  await ipamStatus({ network: conf.name, ipam: conf.ipam, netconf: conf.raw, stateDir: conf.stateDir, env: ctx.rawEnv, exec: ctx.exec, log })
  return undefined
}
