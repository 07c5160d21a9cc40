// Checks for Kubernetes manifests, used by test/manifests-k8s.test.ts.
//
// Schema: each object is validated by kubernetes-models (the Kubernetes
// OpenAPI schemas compiled to validators). Those validators accept unknown
// fields (the schemas carry no additionalProperties: false), so each object
// is also type-checked as a TypeScript literal of the package's interface for
// its kind, generated from the same schemas: an excess property (a typo'd or
// misplaced field) is a type error there, at any depth.
// Flags: what the manifests pass to wren-enforcer is checked against the
// options the built CLI prints in `<command> --help`, with `$(VAR)`
// references resolved the way the kubelet does (env value, ConfigMap key,
// downward API), and a value from a fixed set checked against its choices.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import ts from 'typescript'
import { parseAllDocuments } from 'yaml'

export type K8sObject = { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string }; [k: string]: any }

/** Every document of a YAML stream; a syntax error or a duplicate key throws. */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d, i) => {
    if (d.errors.length) throw new Error(`document ${i + 1}: ${d.errors.map((e) => e.message).join('; ')}`)
    return d.toJS() as K8sObject
  })
}

export const describe = (o: K8sObject) => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`

/** kubernetes-models' module for a kind: "apps/v1" + "DaemonSet" → kubernetes-models/apps/v1/DaemonSet. */
const modelPath = (o: K8sObject) => `kubernetes-models/${o.apiVersion}/${o.kind}`

/** The package's validation: the schema's types, enums, required fields and formats. Problems, one line each. */
export async function schemaProblems(o: K8sObject): Promise<string[]> {
  let Model: any
  try {
    Model = (await import(modelPath(o)))[o.kind]
  } catch {
    return [`${describe(o)}: no schema for ${o.apiVersion} ${o.kind}`]
  }
  try {
    new Model(o).validate()
    return []
  } catch (e) {
    return [`${describe(o)}: ${(e as Error).message}`]
  }
}

/**
 * Fields the schema does not have, at any depth: each object as a literal of
 * the package's interface for its kind, and every property of every object
 * literal looked up in the type the checker expects there (the compiler's own
 * excess-property error stops at the first problem of an object). Type
 * errors the compiler finds are reported too. Problems, one line each.
 */
export function unknownFieldProblems(objects: K8sObject[], repo: string): string[] {
  const file = join(repo, 'test', '__manifest_types__.ts')
  const imports = objects.map((o, i) => `import type { I${o.kind} as T${i} } from '${modelPath(o)}'`)
  const decls = objects.map((o, i) => `export const o${i}: T${i} = ${JSON.stringify(o)}`)
  const text = [...imports, ...decls].join('\n') + '\n'
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, text, lang, true) : getSourceFile(name, lang, ...rest))
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === file || fileExists(name)
  const readFile = host.readFile.bind(host)
  host.readFile = (name) => (name === file ? text : readFile(name))
  const program = ts.createProgram([file], options, host)
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)!
  const problems: string[] = []
  const owner = (pos: number) => {
    const line = source.getLineAndCharacterOfPosition(pos).line - imports.length
    return line >= 0 ? describe(objects[line]!) : 'import'
  }
  const knows = (type: ts.Type, name: string): boolean =>
    !!(type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) || (type.isUnion() ? type.types.some((m) => knows(m, name)) : !!type.getStringIndexType() || !!type.getProperty(name))
  const walk = (node: ts.Node, path: string): void => {
    if (ts.isObjectLiteralExpression(node)) {
      const type = checker.getContextualType(node)
      for (const p of node.properties) {
        if (!ts.isPropertyAssignment(p)) continue
        const name = (p.name as ts.StringLiteral).text
        if (type && !knows(type, name)) problems.push(`${owner(p.getStart())}: unknown field ${path}.${name}`)
        else walk(p.initializer, `${path}.${name}`)
      }
    } else if (ts.isArrayLiteralExpression(node)) {
      node.elements.forEach((e, i) => walk(e, `${path}[${i}]`))
    } else ts.forEachChild(node, (c) => walk(c, path))
  }
  for (const stmt of source.statements) {
    if (!ts.isVariableStatement(stmt)) continue
    for (const d of stmt.declarationList.declarations) if (d.initializer) walk(d.initializer, '')
  }
  // excess properties are the walk's; everything else the compiler says
  const EXCESS = new Set([2353, 2561])
  for (const d of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
    if (EXCESS.has(d.code)) continue
    problems.push(`${d.start === undefined ? 'import' : owner(d.start)}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`)
  }
  return problems
}

export interface CliOption {
  flags: string[]
  /** '' for a switch; else the value's placeholder, e.g. "<cidr...>". */
  value: string
  choices?: string[]
}

/** The options `<bin> <command> --help` prints (commander's layout: flags, two spaces or more, the description). */
export function cliOptions(bin: string, command: string): CliOption[] {
  const help = execFileSync(bin, [command, '--help'], { encoding: 'utf8' })
  const section = help.split(/^Options:$/m)[1] ?? ''
  // an entry starts at two spaces and a dash; deeper-indented lines continue its description
  const entries: string[] = []
  for (const line of section.split('\n')) {
    if (/^ {2}-/.test(line)) entries.push(line.trim())
    else if (/^ {3,}\S/.test(line) && entries.length) entries[entries.length - 1] += ` ${line.trim()}`
    else if (line.trim()) break
  }
  return entries.map((e) => {
    const [head = '', ...desc] = e.split(/ {2,}/)
    const m = /^((?:-{1,2}[\w-]+(?:, )?)+)(?: ([<[].*[>\]]))?$/.exec(head.trim())
    if (!m) throw new Error(`cannot read option line ${JSON.stringify(e)}`)
    const choices = /\(choices: ((?:"[^"]*"(?:, )?)+)/.exec(desc.join(' '))?.[1]?.match(/"[^"]*"/g)?.map((c) => c.slice(1, -1))
    return { flags: m[1]!.split(', ').map((f) => f.trim()), value: m[2] ?? '', ...(choices && { choices }) }
  })
}

export interface ContainerCall {
  where: string
  /** After the binary: the subcommand, then its arguments. */
  argv: string[]
  /** Variable → value as the kubelet would set it (downward API fields as a stand-in). */
  env: Map<string, string>
}

/** Every container of every pod template that runs `binary`. */
export function callsOf(objects: K8sObject[], binary: string): ContainerCall[] {
  const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata?.name, o.data ?? {}]))
  const calls: ContainerCall[] = []
  for (const o of objects) {
    const spec = o.spec?.template?.spec
    if (!spec) continue
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])]
      if (argv[0] !== binary) continue
      const env = new Map<string, string>()
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef
        const value = e.value ?? (ref ? configMaps.get(ref.name)?.[ref.key] : e.valueFrom?.fieldRef ? `<${e.valueFrom.fieldRef.fieldPath}>` : undefined)
        if (value !== undefined) env.set(e.name, String(value))
      }
      calls.push({ where: `${describe(o)} container ${c.name}`, argv: argv.slice(1), env })
    }
  }
  return calls
}

/** Flags that do not exist, values missing, `$(VAR)` with no such variable, values outside their choices. */
export function flagProblems(call: ContainerCall, options: CliOption[]): string[] {
  const problems: string[] = []
  const byFlag = new Map(options.flatMap((o) => o.flags.map((f) => [f, o] as const)))
  const expand = (v: string) =>
    v.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => {
      const value = call.env.get(name)
      if (value === undefined) problems.push(`${call.where}: ${whole} names no variable of the container (the kubelet would pass it as is)`)
      return value ?? whole
    })
  const args = call.argv.slice(1)
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!
    if (!token.startsWith('-')) {
      problems.push(`${call.where}: stray argument ${JSON.stringify(token)}`)
      continue
    }
    const [flag, inline] = token.includes('=') ? [token.slice(0, token.indexOf('=')), token.slice(token.indexOf('=') + 1)] : [token, undefined]
    const opt = byFlag.get(flag!)
    if (!opt) {
      problems.push(`${call.where}: wren-enforcer ${call.argv[0]} has no option ${flag}`)
      continue
    }
    if (!opt.value) {
      if (inline !== undefined) problems.push(`${call.where}: ${flag} takes no value`)
      continue
    }
    const values: string[] = inline !== undefined ? [inline] : []
    const variadic = opt.value.includes('...')
    while (inline === undefined && i + 1 < args.length && !args[i + 1]!.startsWith('-') && (values.length === 0 || variadic)) values.push(args[++i]!)
    if (!values.length && opt.value.startsWith('<')) problems.push(`${call.where}: ${flag} needs a value ${opt.value}`)
    for (const v of values.map(expand)) {
      if (opt.choices && !opt.choices.includes(v)) problems.push(`${call.where}: ${flag} ${JSON.stringify(v)} is not one of ${opt.choices.join(', ')}`)
    }
  }
  return problems
}
