// Undo stack for ADD: each step that changes something pushes how to take it
// back; on failure the undos run newest first. An undo that fails is logged
// and the others still run: the caller returns the original error, not the
// undo's.
import type { Logger } from '../shared/log.ts'

export class Rollback {
  private undos: { what: string; fn: () => unknown }[] = []

  push(what: string, fn: () => unknown): void {
    this.undos.push({ what, fn })
  }

  async run(log: Logger): Promise<void> {
    while (this.undos.length) {
      const { what, fn } = this.undos.pop()!
      try {
        await fn()
        log.debug('rolled back', { step: what })
      } catch (e) {
        log.error('rollback step failed; something may be left behind', { step: what, err: (e as Error).message })
      }
    }
  }
}
