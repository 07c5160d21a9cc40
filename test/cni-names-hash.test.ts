// shared/names.ts hashes in plain JavaScript (the plugin must not load
// node:crypto); its names must be exactly what a node:crypto SHA-256 gives.
import { createHash } from 'node:crypto'
import t from 'tap'
import { hashParts, hostIfaceName } from '../shared/names.ts'

function reference(parts: readonly string[], hexLen: number): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p).update('\0')
  return h.digest('hex').slice(0, hexLen)
}

t.test('hashParts equals node:crypto SHA-256 over NUL-terminated parts', async (t) => {
  const samples: string[][] = [[], [''], ['a'], ['ab', 'c'], ['a', 'bc'], ['kube-system', 'coredns-5d78c9869d-abcde'], ['ünïcødé', '日本', '🙂']]
  // every length around the 55/56/64-byte padding boundaries, one and two blocks
  for (let n = 0; n < 200; n++) samples.push(['x'.repeat(n)])
  let seed = 7
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31)
  for (let i = 0; i < 300; i++) samples.push(Array.from({ length: 1 + (rnd() % 4) }, () => String.fromCharCode(...Array.from({ length: rnd() % 90 }, () => 32 + (rnd() % 0x2000)))))
  const differing = samples.filter((parts) => hashParts(parts, 64) !== reference(parts, 64))
  t.same(differing, [], `all ${samples.length} samples agree`)
  t.equal(hashParts(['a'], 11), reference(['a'], 11), 'cut to length')
})

t.test('host interface names are unchanged', async (t) => {
  t.equal(hostIfaceName('wren', { namespace: 'default', pod: 'web-0', containerId: 'c1' }), 'wren' + reference(['default', 'web-0'], 11))
  t.equal(hostIfaceName('wtc', { containerId: 'c1' }), 'wtc' + reference(['c1'], 12))
})
