// When the compiler may remember something by an input object's identity.
//
// The Compiler keeps what it derived from a pod or policy object in a WeakMap
// keyed by that object, so an object handed back unchanged (the store keeps
// unchanged objects from one snapshot to the next) costs a lookup. That is
// only sound if the object cannot change behind the compiler's back: it must
// be plain data frozen all the way down (the store freezes what it stores).
// Anything else is derived afresh on every compile and compared by content.

/** Whether `v` is plain data (objects, arrays, primitives) that no one can change any more. */
export function deepFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return typeof v !== 'function'
  if (!Object.isFrozen(v)) return false
  // A class instance or an accessor could compute a field afresh on every read: not plain data.
  const proto = Object.getPrototypeOf(v)
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return false
  for (const k of Object.keys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k)!
    if (!('value' in d) || !deepFrozen(d.value)) return false
  }
  return true
}

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
