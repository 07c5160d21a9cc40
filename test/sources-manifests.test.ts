// ManifestSource on a real temp folder: multi-document files, Lists, file
// add/modify/delete, fail-safe on bad YAML, refused shapes, rescan().
import { mkdtempSync, rmSync, unlinkSync, writeFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ManifestSource } from '../enforcer/sources/manifests.ts'
import { Store } from '../enforcer/store.ts'
import { createLogger } from '../shared/log.ts'

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'wren-manifests-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lines: any[] = []
  const log = createLogger((l) => lines.push(JSON.parse(l)), 'debug')
  const store = new Store({ log })
  const source = new ManifestSource(dir, store, log, { debounceMs: 20, pollMs: 0 })
  t.teardown(() => source.stop())
  const write = (name: string, text: string) => {
    // atomic, as editors and ConfigMap updates do, so a scan never sees half a file
    writeFileSync(join(dir, `.${name}.tmp`), text)
    renameSync(join(dir, `.${name}.tmp`), join(dir, name))
  }
  const names = (kind: 'Namespace' | 'Pod' | 'NetworkPolicy') => store.list(kind).map((o) => (o.metadata.namespace ? `${o.metadata.namespace}/` : '') + o.metadata.name)
  return { dir, store, source, lines, write, names }
}

const BASE = `
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  containers:
  - name: c
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
`

t.test('multi-document file: kinds loaded, others ignored, defaults applied', async (t) => {
  const { store, source, lines, write, names } = await setup(t)
  write('base.yaml', BASE)
  write('list.yml', JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nons' } }] }))
  write('np.json', JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'j', namespace: 'prod' }, spec: { podSelector: { matchLabels: { app: 'web' } } } }))
  write('notes.txt', 'kind: Namespace\nmetadata: {name: not-a-manifest}\n')
  let changes = 0
  store.on('change', () => changes++)
  await source.start()
  t.equal(source.synced, true)
  t.same(names('Namespace'), ['prod'])
  t.same(names('Pod'), ['default/nons', 'prod/web'], 'namespace defaults to default; List items expanded')
  t.same(names('NetworkPolicy'), ['prod/deny-all', 'prod/j'])
  t.same(store.get('Pod', 'prod', 'web')?.spec?.containers?.[0].ports, [{ name: 'http', containerPort: 8080 }])
  t.equal(changes, 1, 'one scan is one change')
  t.ok(lines.some((l) => l.level === 'debug' && l.kind === 'Deployment'), 'other kinds ignored with a debug log')
  t.same(source.problems(), [])
})

t.test('adding, modifying and deleting files updates the store', async (t) => {
  const { store, source, write, names, dir } = await setup(t)
  await source.start()
  t.same(names('Namespace'), [])
  write('base.yaml', BASE)
  await waitFor('added', () => names('Pod').length === 1)
  write('base.yaml', BASE.replace('app: web', 'app: web2'))
  await waitFor('modified', () => store.get('Pod', 'prod', 'web')?.metadata.labels?.app === 'web2')
  write('extra.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n')
  await waitFor('second file', () => names('Namespace').length === 2)
  unlinkSync(join(dir, 'base.yaml'))
  await waitFor('deleted', () => names('Pod').length === 0)
  t.same(names('Namespace'), ['dev'])
  t.same(names('NetworkPolicy'), [])
})

t.test('a file that fails to parse keeps its previous objects and is reported', async (t) => {
  const { store, source, lines, write, names } = await setup(t)
  write('base.yaml', BASE)
  await source.start()
  const gen = store.generation
  write('base.yaml', BASE.replace('spec: {podSelector: {}, policyTypes: [Ingress]}', 'spec: {podSelector: {}, policyTypes: [Ingress'))
  await source.rescan()
  t.same(names('NetworkPolicy'), ['prod/deny-all'], 'policies kept')
  t.same(names('Pod'), ['prod/web'])
  t.equal(store.generation, gen, 'nothing changed')
  const err = lines.find((l) => l.level === 'error' && l.file === 'base.yaml')
  t.ok(err, 'logged with the file name')
  t.match(err.error, /line \d+/, 'with the YAML error')
  t.equal(source.problems().length, 1)
  t.equal(source.problems()[0].file, 'base.yaml')
  write('base.yaml', BASE.replace('name: deny-all', 'name: deny-all-2'))
  await source.rescan()
  t.same(names('NetworkPolicy'), ['prod/deny-all-2'], 'fixed file loads again')
  t.same(source.problems(), [])
})

t.test('a new file that fails to parse loads nothing and harms nothing', async (t) => {
  const { source, write, names } = await setup(t)
  write('base.yaml', BASE)
  write('broken.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x\n')
  await source.start()
  t.same(names('Namespace'), ['prod'])
  t.same(source.problems().map((p) => p.file), ['broken.yaml'])
})

t.test('objects of a bad shape are refused by name; the rest load', async (t) => {
  const { source, lines, write, names, store } = await setup(t)
  write(
    'bad.yaml',
    [
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: no-selector, namespace: prod}\nspec: {policyTypes: [Ingress]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {namespace: prod}\nspec: {}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: bad-port, namespace: prod}\nspec: {containers: [{ports: [{containerPort: http}]}]}',
      'apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: old-api}\nspec: {podSelector: {}}',
      '- just\n- a list',
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: good}',
    ].join('\n---\n'),
  )
  await source.start()
  t.same(names('Namespace'), ['good'])
  t.same(names('Pod'), [])
  t.same(names('NetworkPolicy'), [])
  const msgs = source.problems().map((p) => p.message)
  t.match(msgs, [/NetworkPolicy prod\/no-selector: spec\.podSelector: required/, /Pod prod\/<no name>: metadata\.name: required/, /Pod prod\/bad-port: spec\.containers\[0\]\.ports\[0\]\.containerPort/, /old-api: apiVersion/, /document 5: not an object/])
  t.equal(lines.filter((l) => l.level === 'error' && l.file === 'bad.yaml').length, 5)
  // a good object that later turns bad keeps its previous version
  write('p.yaml', 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {matchLabels: {a: b}}}')
  await source.rescan()
  t.same(names('NetworkPolicy'), ['default/p'])
  write('p.yaml', 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {matchLabels: {a: 1}}}')
  await source.rescan()
  t.same(store.get('NetworkPolicy', 'default', 'p')?.spec.podSelector, { matchLabels: { a: 'b' } }, 'previous version kept')
  t.ok(source.problems().some((p) => p.file === 'p.yaml'))
})

t.test('the same object in two files: the later file wins', async (t) => {
  const { source, write, store, lines } = await setup(t)
  write('a.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {from: a}}')
  write('b.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {from: b}}')
  await source.start()
  t.same(store.get('Namespace', undefined, 'n')?.metadata.labels, { from: 'b' })
  t.ok(lines.some((l) => l.level === 'warn' && /several files/.test(l.msg)))
})

t.test('manifests do not touch objects of other origins', async (t) => {
  const { source, write, store, dir } = await setup(t)
  store.upsert('Namespace', { metadata: { name: 'from-kube' } }, 'kube')
  write('a.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: m}')
  await source.start()
  unlinkSync(join(dir, 'a.yaml'))
  await source.rescan()
  t.same(store.list('Namespace').map((n) => n.metadata.name), ['from-kube'])
})

t.test('a missing folder is empty, and is picked up once created', async (t) => {
  const { source, dir, store } = await setup(t)
  rmSync(dir, { recursive: true })
  await source.start()
  t.equal(store.list('Namespace').length, 0)
  const { mkdirSync } = await import('node:fs')
  mkdirSync(dir)
  writeFileSync(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: late}')
  await source.rescan()
  t.equal(store.list('Namespace').length, 1)
  writeFileSync(join(dir, 'b.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: later}')
  await waitFor('watch re-established', () => store.list('Namespace').length === 2)
})
