// deepFreeze/deepFrozen: the compiler's identity memory relies on deepFrozen
// never saying yes to something that can still change.
import t from 'tap'
import { deepFreeze, deepFrozen } from '../shared/frozen.ts'

t.test('plain data, frozen by deepFreeze, is known deep-frozen', async (t) => {
  const v = deepFreeze({ a: [1, { b: 'x' }], c: null })
  t.ok(Object.isFrozen(v.a[1]), 'frozen all the way down')
  t.ok(deepFrozen(v))
  t.ok(deepFrozen(v.a), 'and so is every part')
})

t.test('deepFrozen says no to anything that can still change', async (t) => {
  t.notOk(deepFrozen({ a: 1 }), 'not frozen')
  t.notOk(deepFrozen(Object.freeze({ a: { b: 1 } })), 'a child not frozen')
  class Box {
    x = 1
  }
  t.notOk(deepFrozen(deepFreeze({ box: new Box() })), 'a class instance inside, even frozen')
  const withGetter = Object.defineProperty({}, 'g', { get: () => Math.random(), enumerable: true })
  t.notOk(deepFrozen(deepFreeze({ withGetter })), 'an accessor inside')
  t.notOk(deepFrozen(deepFreeze({ f: () => 1 })), 'a function inside')
  t.ok(deepFrozen(Object.freeze({ a: Object.freeze([1]) })), 'frozen by hand, plain: yes, by walking')
})

t.test('a frozen part shared by two objects does not vouch for a thawed sibling', async (t) => {
  const shared = deepFreeze({ k: 'v' })
  const parent = Object.freeze({ shared, other: { mutable: true } })
  t.ok(deepFrozen(shared))
  t.notOk(deepFrozen(parent))
})
