// Whole-kernel views of what wren owns, needing no memory of earlier runs:
// counting it (status) and removing all of it (cleanup). Ownership is the name
// prefix alone, so `wren-enforcer cleanup` works after a crash or an upgrade.
import { type Exec, execOk } from '../../shared/exec.ts'
import type { Logger } from '../../shared/log.ts'
import { type Backend, RESTORE_ARGS } from './backend.ts'
import { parseIpsetSave, parseSave } from './kernel.ts'

export interface FamilyStatus {
  chains: number
  rules: number
  hooks: number
}

export interface KernelStatus {
  backend: string
  backendReason: string
  v4: FamilyStatus
  v6: FamilyStatus
  sets: number
  members: number
}

export async function countStatus(exec: Exec, backend: Backend, owner: string): Promise<KernelStatus> {
  const fam = async (family: 4 | 6): Promise<FamilyStatus> => {
    const s: FamilyStatus = { chains: 0, rules: 0, hooks: 0 }
    for (const kt of parseSave(await execOk(exec, backend.save(family), []), owner).values()) {
      s.chains += kt.chains.size
      for (const hashes of kt.chains.values()) s.rules += hashes.length
      for (const rules of kt.foreign.values()) s.hooks += rules.filter((r) => r.ours).length
    }
    return s
  }
  const [v4, v6, ipsets] = await Promise.all([fam(4), fam(6), execOk(exec, 'ipset', ['save'])])
  const sets = parseIpsetSave(ipsets, owner)
  let members = 0
  for (const s of sets.values()) members += s.members.size
  return { backend: backend.mode, backendReason: backend.reason, v4, v6, sets: sets.size, members }
}

/**
 * Removes, per family and table, wren's hook rules and all its chains in one
 * atomic restore, then every set under the prefix. Tries everything and throws
 * one error naming every failure.
 */
export async function cleanupAll(exec: Exec, backend: Backend, owner: string, log: Logger): Promise<void> {
  const errors: string[] = []
  for (const family of [4, 6] as const) {
    let tables
    try {
      tables = parseSave(await execOk(exec, backend.save(family), []), owner)
    } catch (e) {
      errors.push(`read v${family}: ${(e as Error).message}`)
      continue
    }
    for (const [table, kt] of tables) {
      const chains = [...kt.chains.keys()]
      const hooks: string[] = []
      for (const [chain, rules] of kt.foreign) for (const r of rules) if (r.ours) hooks.push(`-D ${chain} ${r.spec}`)
      if (!chains.length && !hooks.length) continue
      const input = [`*${table}`, ...chains.map((c) => `:${c} - [0:0]`), ...hooks, ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n')
      try {
        await execOk(exec, backend.restore(family), RESTORE_ARGS, { input })
        log.info('removed wren chains', { family, table, chains: chains.length, hooks: hooks.length })
      } catch (e) {
        log.error('cleanup restore failed', { family, table, input })
        errors.push(`v${family} ${table}: ${(e as Error).message}`)
      }
    }
  }
  try {
    const saved = parseIpsetSave(await execOk(exec, 'ipset', ['save']), owner)
    // list:sets first: a set held by a list:set cannot be destroyed
    const sets = [...saved.keys()].sort((a, b) => Number(saved.get(b)!.type === 'list:set') - Number(saved.get(a)!.type === 'list:set'))
    if (sets.length) await destroySets(exec, sets, errors)
    log.info('removed wren sets', { sets: sets.length })
  } catch (e) {
    errors.push(`ipsets: ${(e as Error).message}`)
  }
  if (errors.length) throw new Error(`cleanup incomplete: ${errors.join('; ')}`)
}

/** One restore for all; if that fails (a set still in use), one by one so the rest still go. */
async function destroySets(exec: Exec, sets: string[], errors: string[]): Promise<void> {
  const r = await exec('ipset', ['restore'], { input: sets.map((s) => `destroy ${s}`).join('\n') + '\n' })
  if (r.code === 0) return
  for (const s of sets) {
    const one = await exec('ipset', ['destroy', s])
    if (one.code !== 0 && !/does not exist/.test(one.stderr)) errors.push(`destroy ${s}: ${one.stderr.trim()}`)
  }
}
