// The CNI error of the spec: {code, msg, details}. Every failure inside the
// plugin is either a CniError or is mapped to code 999 at the boundary.

/** Well-known error codes of the CNI specification (1.1.0, "Error"). */
export const CNI_CODE = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50, // STATUS only
  limitedConnectivity: 51, // STATUS only
  generic: 999,
} as const

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg)
  }

  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.message }
    if (this.details) out.details = this.details
    return out
  }
}

/** Wraps anything thrown into a CniError, keeping one that already is. */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e
  const err = e as NodeJS.ErrnoException
  if (err && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) return new CniError(CNI_CODE.ioFailure, err.message, err.stack ?? '')
  return new CniError(CNI_CODE.generic, err?.message ?? String(e), err?.stack ?? '')
}
