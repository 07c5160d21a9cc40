import t from 'tap'
import { stableJson } from '../shared/stable-json.ts'

t.test('stableJson: key order never matters, and it reads as JSON does', async (t) => {
  t.equal(stableJson({ b: 1, a: { d: [1, { z: 0, y: null }], c: 'x' } }), '{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}')
  t.equal(stableJson({ a: 1, b: 2 }), stableJson({ b: 2, a: 1 }))
  t.not(stableJson({ a: [1, 2] }), stableJson({ a: [2, 1] }), 'array order is content')
  const odd = { keep: 1, gone: undefined, fn: () => 1, list: [undefined, () => 1, 'x'] }
  t.equal(stableJson(odd), '{"keep":1,"list":[null,null,"x"]}')
  t.same(JSON.parse(stableJson(odd)), JSON.parse(JSON.stringify(odd)), 'drops what JSON.stringify drops')
  t.equal(stableJson('q"uote\n'), JSON.stringify('q"uote\n'))
  t.equal(stableJson(undefined), 'null')
  t.equal(stableJson({ 'é': 1, e: 2, E: 3 }), '{"E":3,"e":2,"é":1}', 'code-unit order')
})
