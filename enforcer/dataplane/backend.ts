// Which iptables backend (nf_tables or legacy) to write through. Rules written
// through the other backend than kube-proxy's and kubelet's still run, but in a
// different ruleset whose ordering against theirs nobody controls, so wren uses
// the one the node already uses, decided like kube-proxy's iptables wrapper:
//   1. the backend whose mangle table holds kubelet's KUBE-IPTABLES-HINT or
//      KUBE-KUBELET-CANARY chain (nft checked first, as kubelet prefers it);
//   2. otherwise the one with more rules (v4 + v6); a tie goes to nft.
// Step 2 is a guess and is logged as a warning.
import type { Exec } from '../../shared/exec.ts'
import type { Logger } from '../../shared/log.ts'
import type { Family } from './types.ts'

export type BackendMode = 'nft' | 'legacy'

export interface Backend {
  mode: BackendMode
  /** Why this backend was chosen (for status and logs). */
  reason: string
  save(family: Family): string
  restore(family: Family): string
}

export function backendFor(mode: BackendMode, reason: string): Backend {
  return {
    mode,
    reason,
    save: (family) => `${family === 4 ? 'iptables' : 'ip6tables'}-${mode}-save`,
    restore: (family) => `${family === 4 ? 'iptables' : 'ip6tables'}-${mode}-restore`,
  }
}

/** Restore arguments: keep everything not named in the input, hold the xtables lock (bounded). */
export const RESTORE_ARGS: readonly string[] = ['--noflush', '--wait=10']

const HINTS = ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY']

interface Probe {
  hint: boolean
  rules: number
  works: boolean
}

/**
 * Reads both families' full save output (never `-t TABLE`: with legacy that
 * would load a table module and create the very table being looked for).
 */
async function probe(exec: Exec, mode: BackendMode): Promise<Probe> {
  const b = backendFor(mode, '')
  const result: Probe = { hint: false, rules: 0, works: false }
  const outputs = await Promise.all(([4, 6] as const).map((fam) => exec(b.save(fam), []).catch(() => undefined)))
  for (const r of outputs) {
    if (!r || r.code !== 0) continue
    result.works = true
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('-')) result.rules++
      else if (line.startsWith(':') && HINTS.includes(line.slice(1, line.indexOf(' ')))) result.hint = true
    }
  }
  return result
}

/**
 * Detects the backend. `override` ('nft' | 'legacy') skips detection. Never
 * throws for a guess; throws only when neither backend's tools run.
 */
export async function detectBackend(exec: Exec, log: Logger, override?: BackendMode | 'auto'): Promise<Backend> {
  if (override && override !== 'auto') {
    log.info('iptables backend set by configuration', { backend: override })
    return backendFor(override, 'configured')
  }
  // both at once: each is two full saves, and the answer needs both unless nft has the hint
  const [nft, legacy] = await Promise.all([probe(exec, 'nft'), probe(exec, 'legacy')])
  if (nft.hint) return chosen(log, backendFor('nft', 'kubelet hint chain in the nft ruleset'))
  if (legacy.hint) return chosen(log, backendFor('legacy', 'kubelet hint chain in the legacy ruleset'))
  if (!nft.works && !legacy.works) throw new Error('neither iptables-nft-save nor iptables-legacy-save runs on this node')
  const mode: BackendMode = !nft.works ? 'legacy' : !legacy.works ? 'nft' : legacy.rules > nft.rules ? 'legacy' : 'nft'
  const reason = `no kubelet hint chain; ${mode} has more rules (nft ${nft.rules}, legacy ${legacy.rules})`
  log.warn('UNSURE which iptables backend the node uses; guessing. Set the backend explicitly if this is wrong', {
    backend: mode,
    nftRules: nft.rules,
    legacyRules: legacy.rules,
  })
  return backendFor(mode, reason)
}

function chosen(log: Logger, b: Backend): Backend {
  log.info('iptables backend detected', { backend: b.mode, reason: b.reason })
  return b
}
