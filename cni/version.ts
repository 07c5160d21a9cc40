// CNI spec versions wren speaks, their ordering, and the VERSION command.
import { CniError, CNI_CODE } from './errors.ts'

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const
export type SpecVersion = (typeof SUPPORTED_VERSIONS)[number]
export const LATEST: SpecVersion = '1.1.0'

export function isSupported(v: unknown): v is SpecVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)
}

/** Negative, zero or positive like a comparator; both must be supported versions. */
export function compareVersions(a: SpecVersion, b: SpecVersion): number {
  return SUPPORTED_VERSIONS.indexOf(a) - SUPPORTED_VERSIONS.indexOf(b)
}

export function atLeast(v: SpecVersion, min: SpecVersion): boolean {
  return compareVersions(v, min) >= 0
}

/** Rejects a command that the configured version does not define (CHECK < 0.4.0, GC/STATUS < 1.1.0). */
export function requireVersion(v: SpecVersion, min: SpecVersion, command: string): void {
  if (!atLeast(v, min)) {
    throw new CniError(CNI_CODE.incompatibleVersion, `${command} needs cniVersion ${min} or later, the config says ${v}`)
  }
}

/**
 * VERSION: stdin holds {"cniVersion": ...}; the answer is in that version when
 * wren speaks it, else in the latest (the runtime then sees what we support).
 */
export function versionCommand(stdin: string): Record<string, unknown> {
  let asked: unknown
  try {
    asked = stdin.trim() ? JSON.parse(stdin).cniVersion : undefined
  } catch {
    asked = undefined
  }
  return { cniVersion: isSupported(asked) ? asked : LATEST, supportedVersions: [...SUPPORTED_VERSIONS] }
}
