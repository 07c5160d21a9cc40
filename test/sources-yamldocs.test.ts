// The fast manifest parse (js-yaml, document by document) reads what the
// reference parser (`yaml`) reads, and leaves to it what it cannot vouch for.
import t from 'tap'
import { stringify } from 'yaml'
import { parseDocuments, parsePiece, parseStrict, splitDocuments } from '../enforcer/sources/yamldocs.ts'

const TEXTS: Record<string, string> = {
  'multi-document manifest': `
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
`,
  'scalars of YAML 1.2 core': `a: yes\nb: no\nc: on\nd: 0o17\ne: 017\nf: 1e3\ng: .inf\nh: ~\ni: 2020-01-01\nj: "8080"\nk: 0x1F\nl: -0\nm: true\nn: Null\n`,
  'leading marker, trailing empty document, comments': `# header\n---\na: 1\n--- # second\nb: [1, 2]\n---\n`,
  'block scalars': `a: |\n  line one\n  line two\nb: >-\n  folded\n  text\n---\nc: 'it''s'\n`,
  'JSON': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ kind: 'Pod', metadata: { name: 'x' } }] }),
  'stringified by yaml': [{ kind: 'Pod', metadata: { name: 'p', labels: { tier: 'web', 'app.kubernetes.io/name': 'x' } }, spec: { containers: [{ ports: [{ containerPort: 80 }] }] } }, { a: '---', b: 'yes', c: '0123' }].map((o) => stringify(o)).join('---\n'),
  'empty': '',
  'document with content on the marker line': '--- {a: 1}\n--- [1, 2]\n',
}

t.test('fast and reference parsers agree', async (t) => {
  for (const [name, text] of Object.entries(TEXTS)) {
    const ref = parseStrict(text)
    t.ok(ref.ok, `${name}: valid`)
    t.same(parseDocuments(text), ref, `${name}: whole text`)
    const pieces = splitDocuments(text)
    t.ok(pieces, `${name}: splittable`)
    t.same(pieces!.join(''), text, `${name}: pieces make the text`)
    t.same(pieces!.flatMap((p) => parsePiece(p)!), ref.ok ? ref.docs : undefined, `${name}: piece by piece`)
  }
})

t.test('errors come from the reference parser, with a line', async (t) => {
  const r = parseDocuments('a: 1\nb: {c: 2\n')
  t.equal(r.ok, false)
  t.match(!r.ok && r.message, /line \d+/)
  t.equal(parsePiece('a: {b'), undefined, 'a piece js-yaml refuses is left to the whole-file parse')
  t.equal(parseDocuments('a: 1\na: 2\n').ok, false, 'duplicate keys refused')
})

t.test('what cutting could change is not cut', async (t) => {
  t.equal(splitDocuments('%YAML 1.2\n---\na: 1\n'), undefined, 'directives')
  t.equal(splitDocuments('a: 1\n...\n---\nb: 2\n'), undefined, 'document end markers')
  t.equal(splitDocuments('a: &x {b: 1}\nc: *x\n'), undefined, 'anchors')
  t.same(parseDocuments('a: &x {b: 1}\nc: *x\n'), { ok: true, docs: [{ a: { b: 1 }, c: { b: 1 } }] }, 'anchors: the reference parse')
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill('*' + 'abcdefgh'[i]).join(', ')}]`)].join('\n')
  t.equal(parseDocuments(bomb).ok, false, 'alias expansion is capped (reference parser)')
})
