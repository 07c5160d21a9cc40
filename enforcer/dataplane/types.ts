// Desired dataplane state as plain data: what the compiler produces and the
// renderer/writer consume. Nothing here knows iptables text syntax except the
// `match` strings, which are built only by enforcer/compile/match.ts helpers
// from validated values (never from raw user strings).

export type Family = 4 | 6
export type Table = 'filter' | 'raw' | 'nat' | 'mangle'

export interface Rule {
  /**
   * iptables match arguments as tokens, e.g. ['-i','wren1a2b','-p','tcp','--dport','80'].
   * Tokens are validated by the compiler; the renderer still quotes any token
   * it cannot prove safe.
   */
  match: string[]
  /** Target arguments, e.g. ['-j','ACCEPT'], ['-g','wren-fw-…'], ['-j','MARK','--set-xmark','0x10000/0x10000']. */
  action: string[]
  /** Human-readable origin, e.g. `policy default/allow-dns ingress rule 0 peer 1`. Sanitised by the renderer. */
  comment: string
}

export interface Chain {
  name: string
  table: Table
  rules: Rule[]
}

/** The set types wren programs. */
export type SetType = 'hash:ip' | 'hash:net' | 'hash:ip,port'

export interface IpSet {
  name: string
  type: SetType
  family: Family
  /**
   * Members in ipset's text form: '10.0.0.1', '10.0.0.0/24', '10.0.1.0/28 nomatch',
   * '10.0.0.1,tcp:80'. Canonical (sorted, deduplicated) so equality is textual.
   */
  members: string[]
  comment: string
}

/**
 * A rule wren inserts into a built-in chain (e.g. FORWARD → wren-FORWARD).
 * The writer keeps exactly one copy at the top of `chain`.
 */
export interface Hook {
  table: Table
  chain: 'FORWARD' | 'INPUT' | 'OUTPUT' | 'PREROUTING' | 'POSTROUTING'
  target: string
}

export interface FamilyState {
  family: Family
  hooks: Hook[]
  chains: Chain[]
  sets: IpSet[]
}

export interface DesiredState {
  v4: FamilyState
  v6: FamilyState
  /** Problems found while compiling (bad policy fields, etc.), each naming the object. */
  problems: Problem[]
  /** Host interfaces whose chains are in this state (used to answer "is X programmed"). */
  workloads: string[]
}

export interface Problem {
  object: string // e.g. 'NetworkPolicy default/foo'
  message: string
  /** What wren did about it, e.g. 'isolated selected pods for ingress'. */
  effect: string
}
