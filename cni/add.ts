// ADD: reserve addresses, wire the veth pair, record the workload, wait for
// the agent, answer with the result. Every step that changes the node pushes
// its undo first; a failure undoes them newest first and returns the
// original error. A re-ADD after a crash reuses the IPAM reservation (IPAM is
// idempotent per attachment) and replaces the stale host veth of the same name.
import { hostIfaceName } from '../shared/names.ts'
import { netnsExists } from '../shared/netns.ts'
import { removeRecord, writeRecord } from '../shared/record.ts'
import { waitProgrammed } from './agent-wait.ts'
import { ipamContext, type Ctx } from './context.ts'
import { podIdentity } from './env.ts'
import { CniError, CNI_CODE } from './errors.ts'
import { ipamAdd, ipamDel, type IpamResult } from './ipam/index.ts'
import { chainResults, ipFamily, type Result, type Route } from './result.ts'
import { Rollback } from './rollback.ts'
import { GW4, GW6, hostSysctls, IfnameTakenError, podMac, requireBatchWord, wirePod, type HostSide, type Wiring } from './veth.ts'

export async function cmdAdd(ctx: Ctx): Promise<Result> {
  const { env, conf, log } = ctx
  if (!netnsExists(env.netns)) {
    throw new CniError(CNI_CODE.unknownContainer, `network namespace ${env.netns} does not exist`, 'CNI_NETNS must name an existing namespace')
  }
  // the pod half is one `ip -batch` inside the pod whichever way the host half is made (veth.ts wirePod)
  requireBatchWord('CNI_IFNAME', env.ifname)
  const hostIface = hostIfaceName(conf.ifacePrefix, { ...podIdentity(env), containerId: env.containerId })
  const rollback = new Rollback()
  const started = Date.now()
  try {
    const result = await addSteps(ctx, hostIface, rollback)
    log.info('ADD done', { hostIface, host: ctx.host.kind, ips: result.ips.map((i) => i.address), ms: Date.now() - started })
    return chainResults(conf.prevResult, result)
  } catch (e) {
    log.error('ADD failed; rolling back', { hostIface, err: (e as Error).message })
    await rollback.run(log)
    throw e
  }
}

async function addSteps(ctx: Ctx, hostIface: string, rollback: Rollback): Promise<Result> {
  const { env, conf, exec, host, log } = ctx
  rollback.push('release addresses', () => ipamDel(ipamContext(ctx)))
  const ipam = await ipamAdd(ipamContext(ctx))
  const wiring: Wiring = {
    hostIface,
    ifname: env.ifname,
    netns: env.netns,
    mtu: conf.mtu,
    mac: podMac(env.containerId, env.ifname),
    addrs: hostAddresses(ipam),
    routes: ipam.routes.filter((r) => !isDefault(r.dst)),
  }
  rollback.push('delete host veth', () => host.unwire(hostIface))
  let hostSide: HostSide
  try {
    hostSide = await host.wire(wiring)
  } catch (e) {
    if (e instanceof IfnameTakenError) throw new CniError(CNI_CODE.invalidEnv, e.message, 'pick another CNI_IFNAME')
    throw e
  }
  hostSysctls(wiring)
  await wirePod(exec, wiring)
  rollback.push('remove workload record', () => removeRecord(conf.stateDir, env.containerId, env.ifname))
  const id = podIdentity(env)
  writeRecord(conf.stateDir, {
    containerId: env.containerId,
    ifname: env.ifname,
    network: conf.name,
    ...id,
    netns: env.netns,
    hostIface,
    ips: wiring.addrs.map((a) => a.split('/')[0]),
    mac: wiring.mac,
    created: new Date().toISOString(),
  })
  await waitProgrammed(conf.runDir, hostIface, conf.agentWaitMs, log, ctx.agent)
  return buildResult(ctx, wiring, hostSide, ipam)
}

/** Pod addresses are host routes: /32 and /128 whatever the range's prefix length. */
function hostAddresses(ipam: IpamResult): string[] {
  if (!ipam.ips.length) throw new Error('IPAM returned no addresses')
  return ipam.ips.map(({ address }) => {
    const ip = address.split('/')[0]
    return `${ip}/${ipFamily(ip) === 4 ? 32 : 128}`
  })
}

function isDefault(dst: string): boolean {
  return dst === '0.0.0.0/0' || dst === '::/0'
}

function buildResult(ctx: Ctx, w: Wiring, hostSide: HostSide, ipam: IpamResult): Result {
  const fams = new Set(w.addrs.map(ipFamily))
  const gw = (fam: 4 | 6) => (fam === 4 ? GW4 : GW6)
  const routes: Route[] = [...fams].map((f) => ({ dst: f === 4 ? '0.0.0.0/0' : '::/0', gw: gw(f) }))
  for (const r of w.routes) if (fams.has(ipFamily(r.dst))) routes.push({ dst: r.dst, gw: gw(ipFamily(r.dst)) })
  return {
    interfaces: [
      { name: w.hostIface, mac: hostSide.mac, mtu: w.mtu },
      { name: w.ifname, mac: w.mac, mtu: w.mtu, sandbox: w.netns },
    ],
    ips: w.addrs.map((address) => ({ address, gateway: gw(ipFamily(address)), interface: 1 })),
    routes,
    dns: ctx.conf.dns ?? ipam.dns,
  }
}
