import t from 'tap'
import { CniError } from '../cni/errors.ts'
import { parseNetConf, DEFAULTS } from '../cni/netconf.ts'
import { parseEnv, parseArgs, ifnameProblem } from '../cni/env.ts'
import { versionCommand, SUPPORTED_VERSIONS } from '../cni/version.ts'

const base = { cniVersion: '1.0.0', name: 'wren-net', type: 'wren', ipam: { type: 'wren', ranges: [[{ subnet: '10.91.0.0/24' }]] } }
const parse = (o: unknown) => parseNetConf(JSON.stringify(o))
const codeOf = (fn: () => unknown): { code: number; msg: string; details: string } => {
  try {
    fn()
  } catch (e) {
    if (e instanceof CniError) return { code: e.code, msg: e.message, details: e.details }
    throw e
  }
  throw new Error('did not throw')
}

t.test('defaults fill every optional key', async (t) => {
  const c = parse(base)
  t.equal(c.ifacePrefix, DEFAULTS.ifacePrefix)
  t.equal(c.mtu, 1500)
  t.equal(c.stateDir, '/var/lib/wren')
  t.equal(c.runDir, '/var/run/wren')
  t.equal(c.agentWaitMs, 3000)
  t.equal(c.logFile, '/var/log/wren/cni.log')
  t.equal(c.ipam.type, 'wren')
  t.same(c.raw, base)
})

t.test('every supported version parses', async (t) => {
  for (const v of SUPPORTED_VERSIONS) t.equal(parse({ ...base, cniVersion: v }).cniVersion, v)
})

t.test('decode and version errors', async (t) => {
  t.equal(codeOf(() => parseNetConf('{"cniVersion": ')).code, 6, 'malformed JSON is a decode failure')
  t.equal(codeOf(() => parseNetConf('[1,2]')).code, 6, 'a list is not a config')
  const v = codeOf(() => parse({ ...base, cniVersion: '0.2.0' }))
  t.equal(v.code, 1)
  t.match(v.details, /1\.1\.0/, 'names the supported versions')
})

t.test('every problem is reported at once', async (t) => {
  const e = codeOf(() => parse({ cniVersion: '1.1.0', name: '-bad', mtu: 10, ifacePrefix: 'Too-Long-Prefix', stateDir: 'rel', logLevel: 'loud', agentWaitMs: -1 }))
  t.equal(e.code, 7)
  for (const needle of ['type is required', 'ipam is required', 'name "-bad"', 'ifacePrefix', 'mtu', 'stateDir', 'logLevel', 'agentWaitMs']) {
    t.match(e.details, needle)
  }
})

t.test('ipam, dns, prevResult and valid-attachments are checked', async (t) => {
  t.match(codeOf(() => parse({ ...base, ipam: { ranges: [] } })).details, /ipam must be an object with a non-empty "type"/)
  t.match(codeOf(() => parse({ ...base, ipam: { type: '../evil' } })).details, /plugin name/)
  t.match(codeOf(() => parse({ ...base, dns: { nameservers: 'x' } })).details, /dns.nameservers/)
  t.match(codeOf(() => parse({ ...base, prevResult: { ips: [{ address: '10.0.0.1' }] } })).details, /not a CIDR/)
  t.match(codeOf(() => parse({ ...base, 'cni.dev/valid-attachments': [{ containerID: 1 }] })).details, /valid-attachments\[0\]/)
  const ok = parse({ ...base, 'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }] })
  t.same(ok.validAttachments, [{ containerId: 'abc', ifname: 'eth0' }])
})

t.test('env table per command', async (t) => {
  const env = { CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' }
  t.same(parseEnv('ADD', env).path, ['/opt/cni/bin', '/usr/lib/cni'])
  t.equal(codeOf(() => parseEnv('ADD', { ...env, CNI_NETNS: '' })).code, 4, 'ADD needs CNI_NETNS')
  t.ok(parseEnv('DEL', { ...env, CNI_NETNS: '' }), 'DEL does not')
  t.ok(parseEnv('GC', { CNI_PATH: '/x' }), 'GC needs no container')
  const many = codeOf(() => parseEnv('ADD', { CNI_CONTAINERID: '-x', CNI_IFNAME: 'waytoolonginterface', CNI_ARGS: 'broken' }))
  t.equal(many.code, 4)
  for (const needle of ['CNI_NETNS', 'CNI_PATH', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_ARGS']) t.match(many.details, needle)
})

t.test('CNI_ARGS and interface names', async (t) => {
  t.same(parseArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p=1'), { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'p=1' })
  t.throws(() => parseArgs('=x'))
  t.equal(ifnameProblem('eth0'), undefined)
  t.match(ifnameProblem('a'.repeat(16))!, /16 bytes/)
  t.ok(ifnameProblem('a/b'))
  t.ok(ifnameProblem('..'))
})

t.test('VERSION answers in the asked version when supported', async (t) => {
  t.same(versionCommand('{"cniVersion":"0.4.0"}'), { cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] })
  t.equal(versionCommand('').cniVersion, '1.1.0')
  t.equal(versionCommand('{"cniVersion":"9.9.9"}').cniVersion, '1.1.0')
})
