// When the compiler may remember something by an input object's identity.
//
// The Compiler keeps what it derived from a pod or policy object in a WeakMap
// keyed by that object, so an object handed back unchanged (the store keeps
// unchanged objects from one snapshot to the next) costs a lookup. That is
// only sound if the object cannot change behind the compiler's back: it must
// be plain data frozen all the way down (the store freezes what it stores).
// Anything else is derived afresh on every compile and compared by content.

import { deepFrozen } from '../../shared/frozen.ts'

/**
 * Values derived from deep-frozen objects, by identity. `get` returns
 * undefined for an object it does not hold; `set` keeps the value only when
 * the object is deep-frozen, and says whether it did.
 */
export class IdentityMemo<K extends object, V> {
  private readonly values = new WeakMap<K, V>()

  get(obj: K): V | undefined {
    return this.values.get(obj)
  }

  set(obj: K, value: V): boolean {
    if (!this.values.has(obj) && !deepFrozen(obj)) return false
    this.values.set(obj, value)
    return true
  }
}
