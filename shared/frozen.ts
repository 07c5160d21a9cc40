// Deep-frozen plain data, and a memory of which objects are known to be so.
//
// The compiler remembers what it derived from an input object by identity,
// which is only sound for plain data frozen all the way down (see
// enforcer/compile/identity.ts). Checking that walks the whole object; the
// store already walks every object once to freeze it, so deepFreeze() records
// the plain ones and deepFrozen() answers for them without a second walk
// (5,000 pods at a cold start: ~30 ms).

/** Roots known to be plain data, frozen all the way down. Frozen data never thaws, so entries stay true. */
const known = new WeakSet<object>()

function plainProto(v: object): boolean {
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === Array.prototype || proto === null
}

/** Freezes `v` and everything it holds; returns `v`. */
export function deepFreeze<T>(v: T): T {
  freezeAll(v)
  return v
}

/** Freezes all the way down; whether it is all plain data (then remembered). */
function freezeAll(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return typeof v !== 'function'
  if (known.has(v)) return true
  let plain = plainProto(v)
  for (const k of Object.keys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k)!
    // an accessor is left alone (reading it could run anything) and makes v not plain
    if (!('value' in d) || !freezeAll(d.value)) plain = false
  }
  Object.freeze(v)
  if (plain) known.add(v)
  return plain
}

/** Whether `v` is plain data (objects, arrays, primitives) that no one can change any more. */
export function deepFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return typeof v !== 'function'
  if (known.has(v)) return true
  if (!Object.isFrozen(v) || !plainProto(v)) return false
  for (const k of Object.keys(v)) {
    const d = Object.getOwnPropertyDescriptor(v, k)!
    if (!('value' in d) || !deepFrozen(d.value)) return false
  }
  known.add(v)
  return true
}
