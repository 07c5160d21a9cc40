// conf/kubernetes/wren.yaml deploys as written: every object is valid against
// the Kubernetes OpenAPI schemas (kubernetes-models), with no field the schema
// lacks; every flag it passes to wren-enforcer exists in the built CLI
// (`<command> --help`), with its `$(VAR)`s defined and its values allowed; and
// the pieces agree with each other (image, probes and health port, mounts,
// ConfigMap keys, RBAC). The checker is itself checked on a broken copy.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { callsOf, cliOptions, describe, flagProblems, parseManifests, schemaProblems, unknownFieldProblems, type CliOption, type K8sObject } from './lib/k8s-manifest.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const MANIFEST = join(REPO, 'conf', 'kubernetes', 'wren.yaml')
const ENFORCER = join(REPO, 'bin', 'wren-enforcer')
const BINARY = '/opt/wren/bin/wren-enforcer'
/** scripts/build-image replaces exactly this string with the tag it built. */
const IMAGE = 'localhost/wren:0.1.0'

const objects = parseManifests(readFileSync(MANIFEST, 'utf8'))
const daemonSet = objects.find((o) => o.kind === 'DaemonSet')!
const podSpec = daemonSet?.spec?.template?.spec
const agent = podSpec?.containers?.find((c: any) => c.name === 'agent')

const helpCache = new Map<string, CliOption[]>()
const optionsOf = (command: string) => {
  if (!helpCache.has(command)) helpCache.set(command, cliOptions(ENFORCER, command))
  return helpCache.get(command)!
}

/** Every problem the checks find in a set of objects. */
async function allProblems(objs: K8sObject[]): Promise<string[]> {
  const problems = (await Promise.all(objs.map(schemaProblems))).flat()
  problems.push(...unknownFieldProblems(objs, REPO))
  for (const call of callsOf(objs, BINARY)) problems.push(...flagProblems(call, optionsOf(call.argv[0]!)))
  return problems
}

t.test('the objects: what a cluster needs', async (t) => {
  t.same(objects.map(describe), ['ServiceAccount kube-system/wren', 'ClusterRole wren', 'ClusterRoleBinding wren', 'ConfigMap kube-system/wren-config', 'DaemonSet kube-system/wren'])
})

t.test('every object is valid against the OpenAPI schemas, with no unknown field; every wren-enforcer flag exists', async (t) => {
  t.ok(existsSync(ENFORCER), 'bin/wren-enforcer (built by scripts/build.mjs)')
  t.same(await allProblems(objects), [])
  const calls = callsOf(objects, BINARY)
  t.same(
    calls.map((c) => [c.where, c.argv[0]]),
    [
      ['DaemonSet kube-system/wren container install-cni', 'install-cni'],
      ['DaemonSet kube-system/wren container agent', 'run'],
    ],
    'both commands were checked',
  )
})

t.test('the checker catches a typo, a misplaced field, a wrong type, a made-up flag, a bad choice and an undefined variable', async (t) => {
  const broken = structuredClone(objects)
  const ds = broken.find((o) => o.kind === 'DaemonSet')!
  const spec = ds.spec.template.spec
  spec.hostNetwrk = spec.hostNetwork
  spec.containers[0].securityContext.hostPID = true
  spec.containers[0].livenessProbe.periodSeconds = '10'
  spec.initContainers[0].args.push('--no-such-flag')
  spec.containers[0].args.push('--overlay', 'geneve', '--log-level', '$(WREN_NO_SUCH_VAR)')
  const problems = await allProblems(broken)
  const expect = [/unknown field \.spec\.template\.spec\.hostNetwrk$/, /unknown field \.spec\.template\.spec\.containers\[0\]\.securityContext\.hostPID$/, /periodSeconds must be integer/, /install-cni has no option --no-such-flag/, /--overlay "geneve" is not one of auto, vxlan, host-gw/, /\$\(WREN_NO_SUCH_VAR\) names no variable/]
  for (const re of expect) t.ok(problems.some((p) => re.test(p)), `found: ${re}`)
})

t.test('one image name, the one scripts/build-image replaces', async (t) => {
  const containers = [...podSpec.initContainers, ...podSpec.containers]
  t.same(
    containers.map((c: any) => c.image),
    containers.map(() => IMAGE),
  )
})

t.test('install-cni: Kubernetes mode into the host folders the runtime reads', async (t) => {
  const init = podSpec.initContainers.find((c: any) => c.name === 'install-cni')
  const argv = [...init.command, ...init.args]
  t.same(argv.slice(0, 2), [BINARY, 'install-cni'])
  for (const [flag, value] of [['--bin-dir', '/host/opt/cni/bin'], ['--conf-dir', '/host/etc/cni/net.d'], ['--node-name', '$(NODE_NAME)']]) t.equal(argv[argv.indexOf(flag) + 1], value, `${flag} ${value}`)
  t.ok(argv.includes('--in-cluster'))
  const mounts = Object.fromEntries(init.volumeMounts.map((m: any) => [m.mountPath, volume(m.name)?.hostPath?.path]))
  t.same(mounts, { '/host/opt/cni/bin': '/opt/cni/bin', '/host/etc/cni/net.d': '/etc/cni/net.d' })
})

function volume(name: string): any {
  return podSpec.volumes.find((v: any) => v.name === name)
}

t.test('the agent: probes on 127.0.0.1 at its health port; mounts it needs, each a volume', async (t) => {
  const args: string[] = agent.args
  const port = Number(args[args.indexOf('--health-port') + 1])
  for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) t.same(agent[probe].httpGet, { host: '127.0.0.1', path, port }, probe)
  t.equal(podSpec.hostNetwork, true)
  t.equal(podSpec.hostPID, true, '/proc/PID/ns/net paths are host pids')
  const hostPaths = Object.fromEntries(agent.volumeMounts.map((m: any) => [m.mountPath, volume(m.name)?.hostPath?.path]))
  t.same(hostPaths, {
    '/var/lib/wren': '/var/lib/wren',
    '/var/run/wren': '/var/run/wren',
    '/var/run/netns': '/var/run/netns',
    '/opt/cni/bin': '/opt/cni/bin',
    '/var/lib/cni': '/var/lib/cni',
    '/run/xtables.lock': '/run/xtables.lock',
  })
  const netns = agent.volumeMounts.find((m: any) => m.mountPath === '/var/run/netns')
  t.equal(netns.mountPropagation, 'HostToContainer', 'netns files made after the agent started appear in it')
  t.equal(agent.volumeMounts.find((m: any) => m.mountPath === '/opt/cni/bin').readOnly, true)
  const used = new Set([...podSpec.initContainers, ...podSpec.containers].flatMap((c: any) => c.volumeMounts.map((m: any) => m.name)))
  t.same(podSpec.volumes.map((v: any) => v.name).filter((n: string) => !used.has(n)), [], 'no unused volume')
})

t.test('settings: every ConfigMap key is used by the agent, every key it uses exists', async (t) => {
  const cm = objects.find((o) => o.kind === 'ConfigMap')!
  const refs = agent.env.flatMap((e: any) => (e.valueFrom?.configMapKeyRef ? [e.valueFrom.configMapKeyRef] : []))
  t.ok(refs.every((r: any) => r.name === cm.metadata!.name))
  t.same(refs.map((r: any) => r.key).sort(), Object.keys(cm.data).sort())
})

t.test('RBAC: read-only, the kinds wren reads, bound to the pods service account', async (t) => {
  const role = objects.find((o) => o.kind === 'ClusterRole')!
  const verbs = new Set(role.rules.flatMap((r: any) => r.verbs))
  t.same([...verbs].sort(), ['get', 'list', 'watch'])
  const granted = role.rules.flatMap((r: any) => r.resources.map((res: string) => `${r.apiGroups[0] || 'core'}/${res}:${r.verbs.join(',')}`)).sort()
  t.same(granted, ['core/namespaces:list,watch', 'core/nodes:get,list,watch', 'core/pods:list,watch', 'networking.k8s.io/networkpolicies:list,watch'])
  const binding = objects.find((o) => o.kind === 'ClusterRoleBinding')!
  const sa = objects.find((o) => o.kind === 'ServiceAccount')!
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata!.name })
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata!.name, namespace: sa.metadata!.namespace }])
  t.equal(podSpec.serviceAccountName, sa.metadata!.name)
  t.equal(daemonSet.metadata!.namespace, sa.metadata!.namespace)
})

t.test('scheduling: every node, first in line', async (t) => {
  t.same(podSpec.tolerations, [{ operator: 'Exists' }], 'every taint')
  t.equal(podSpec.priorityClassName, 'system-node-critical')
  t.equal(daemonSet.spec.updateStrategy.type, 'RollingUpdate')
})
