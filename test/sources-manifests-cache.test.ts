// ManifestSource's parse cache: a scan re-parses only changed files, and of
// those only changed documents; a file replaced with one of the same size and
// mtime is still seen; deletions and "later file wins" survive the
// incremental publish; a scan that found nothing new leaves the store alone.
import { mkdtempSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ManifestSource } from '../enforcer/sources/manifests.ts'
import { Store } from '../enforcer/store.ts'
import { createLogger } from '../shared/log.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const LONG_AGO = new Date('2020-01-01T00:00:00Z')

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'wren-manifest-cache-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = new Store({ log: createLogger(() => {}, 'debug') })
  const source = new ManifestSource(dir, store, createLogger(() => {}, 'debug'), { debounceMs: 10_000, pollMs: 0 })
  t.teardown(() => source.stop())
  const write = (name: string, text: string, mtime?: Date) => {
    const tmp = join(dir, `.${name}.tmp`)
    writeFileSync(tmp, text)
    if (mtime) utimesSync(tmp, mtime, mtime)
    renameSync(tmp, join(dir, name))
  }
  let changes = 0
  store.on('change', () => changes++)
  return { dir, store, source, write, changes: () => changes }
}

const ns = (name: string, labels: Record<string, string> = {}) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}}\n`
const pod = (name: string, tier: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: prod, labels: {tier: ${tier}}}\nstatus: {podIP: 10.0.0.1}\n`

t.test('only a changed file is parsed again, and only its changed documents', async (t) => {
  const { store, source, write, changes } = await setup(t)
  write('a.yaml', ns('a'))
  write('pods.yaml', [pod('p1', 'web'), pod('p2', 'web'), pod('p3', 'web')].join('---\n'))
  await source.start()
  t.match(source.stats(), { parsed: 2, documents: 4 })
  const gen = store.generation
  await source.rescan()
  t.match(source.stats(), { parsed: 2, documents: 4 }, 'nothing changed: nothing parsed')
  t.equal(store.generation, gen, 'and the store untouched')
  write('pods.yaml', [pod('p1', 'web'), pod('p2', 'api'), pod('p3', 'web')].join('---\n'))
  const before = changes()
  await source.rescan()
  t.match(source.stats(), { parsed: 3, documents: 5 }, 'one file, one document parsed')
  t.equal(store.get('Pod', 'prod', 'p2')?.metadata.labels?.tier, 'api')
  t.equal(changes(), before + 1, 'one change')
  const reads = source.stats().unchanged
  write('pods.yaml', [pod('p1', 'web'), pod('p2', 'api'), pod('p3', 'web')].join('---\n'))
  await source.rescan()
  t.equal(source.stats().parsed, 3, 'rewritten with the same bytes: not parsed')
  t.ok(source.stats().unchanged > reads, 'but read again')
})

t.test('a file replaced by one of the same size and mtime is seen (inode, ctime)', async (t) => {
  const { store, source, write, dir } = await setup(t)
  write('a.yaml', ns('a', { v: 'aa' }), LONG_AGO)
  await source.start()
  // past the window in which a just-changed file is re-read whatever its stamp
  await sleep(2100)
  await source.rescan() // re-read once more: the first read was too close to the change
  await source.rescan()
  t.equal(source.stats().skipped, 1, 'taken from its stamp alone')
  t.equal(source.stats().parsed, 1)
  const old = statSync(join(dir, 'a.yaml'))
  write('a.yaml', ns('a', { v: 'bb' }), LONG_AGO)
  const now = statSync(join(dir, 'a.yaml'))
  t.equal(now.size, old.size)
  t.equal(now.mtimeMs, old.mtimeMs)
  await source.rescan()
  t.same(store.get('Namespace', undefined, 'a')?.metadata.labels, { v: 'bb' })
  // same inode, same size, mtime set back: the ctime still moved
  await sleep(20)
  writeFileSync(join(dir, 'a.yaml'), ns('a', { v: 'cc' }))
  utimesSync(join(dir, 'a.yaml'), LONG_AGO, LONG_AGO)
  await source.rescan()
  t.same(store.get('Namespace', undefined, 'a')?.metadata.labels, { v: 'cc' })
})

t.test('deleting a file removes its objects; the earlier file of a duplicate comes back', async (t) => {
  const { store, source, write, dir } = await setup(t)
  write('a.yaml', ns('dup', { from: 'a' }) + '---\n' + ns('only-a'))
  write('b.yaml', ns('dup', { from: 'b' }) + '---\n' + ns('only-b'))
  await source.start()
  t.same(store.get('Namespace', undefined, 'dup')?.metadata.labels, { from: 'b' })
  unlinkSync(join(dir, 'b.yaml'))
  await source.rescan()
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['dup', 'only-a'])
  t.same(store.get('Namespace', undefined, 'dup')?.metadata.labels, { from: 'a' }, 'a.yaml was not re-parsed, yet its version is back')
  t.equal(source.stats().parsed, 2)
  unlinkSync(join(dir, 'a.yaml'))
  await source.rescan()
  t.same(store.list('Namespace'), [])
})

t.test('a broken file is not re-parsed, keeps its objects and its problem until it changes', async (t) => {
  const { store, source, write } = await setup(t)
  write('a.yaml', ns('a'))
  await source.start()
  write('a.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a\n')
  await source.rescan()
  await source.rescan()
  t.equal(source.stats().parsed, 2)
  t.equal(source.problems().length, 1, 'still reported')
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['a'])
  write('a.yaml', ns('b'))
  await source.rescan()
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['b'])
  t.same(source.problems(), [])
})

t.test('a refused document is checked again on every parse of its file', async (t) => {
  const { store, source, write } = await setup(t)
  const bad = 'apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: prod}\nspec: {containers: [{ports: [{containerPort: http}]}]}\n'
  write('a.yaml', bad + '---\n' + ns('a'))
  await source.start()
  t.equal(source.problems().length, 1)
  write('a.yaml', bad + '---\n' + ns('b'))
  await source.rescan()
  t.match(source.problems(), [{ file: 'a.yaml', message: /Pod prod\/x/ }])
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['b'])
})

t.test('an edited document updates only its object; duplicates keep "later wins" within a file and across files', async (t) => {
  const { store, source, write } = await setup(t)
  write('a.yaml', [pod('p1', 'web'), pod('p2', 'web'), pod('p2', 'db'), pod('p3', 'web')].join('---\n'))
  write('b.yaml', [pod('p3', 'cache'), pod('p4', 'web')].join('---\n'))
  await source.start()
  t.equal(store.get('Pod', 'prod', 'p2')?.metadata.labels?.tier, 'db', 'the later document of a file wins')
  t.equal(store.get('Pod', 'prod', 'p3')?.metadata.labels?.tier, 'cache', 'the later file wins')
  const p1 = store.get('Pod', 'prod', 'p1')
  write('a.yaml', [pod('p1', 'web'), pod('p2', 'web'), pod('p2', 'api'), pod('p3', 'db')].join('---\n'))
  await source.rescan()
  t.equal(store.get('Pod', 'prod', 'p2')?.metadata.labels?.tier, 'api', 'edited later duplicate')
  t.equal(store.get('Pod', 'prod', 'p3')?.metadata.labels?.tier, 'cache', 'an earlier file edited: the later one still wins')
  t.equal(store.get('Pod', 'prod', 'p1'), p1, 'an untouched object keeps its identity')
  write('a.yaml', [pod('p1', 'web'), pod('p2', 'web'), pod('p3', 'db')].join('---\n'))
  await source.rescan()
  t.equal(store.get('Pod', 'prod', 'p2')?.metadata.labels?.tier, 'web', 'duplicate removed: the remaining definition')
  write('b.yaml', pod('p4', 'web'))
  await source.rescan()
  t.equal(store.get('Pod', 'prod', 'p3')?.metadata.labels?.tier, 'db', 'the later file dropped it: the earlier one applies')
  write('a.yaml', [pod('p1', 'web'), pod('p2', 'web')].join('---\n'))
  await source.rescan()
  t.equal(store.get('Pod', 'prod', 'p3'), undefined, 'no file defines it: removed')
  t.equal(store.get('Pod', 'prod', 'p1'), p1)
})
