// Kernel experiment: what does each layout of a receiver's ingress chains cost
// a new TCP connection? Two network namespaces routed through the host, the
// FORWARD path programmed by hand (not by wren) in five layouts, connections/s
// measured with the bench's own client and server. Root only; takes the kernel
// lock, blackholes 10.97.0.0/16 first and removes everything it made.
//
//   node --experimental-transform-types scripts/bench/conn-experiment.ts [SECONDS] [ROUNDS]
//
// The policy set mirrors connPolicies(100) in synth.ts: 99 policies allowing
// three peers that do not match the client (podSelector, ipBlock with except,
// namespaceSelector), on one TCP port, and a last one allowing the client.
import { addNetns, blackhole, Cleanup, exclusiveKernel, sh, trySh } from '../../e2e/lib/host.ts'
import { exec } from '../../shared/exec.ts'
import { NODE } from './node.ts'
import { startServer } from './connrate.ts'
import { CONN_PORT } from './synth.ts'
import { join } from 'node:path'
import { REPO } from '../../e2e/lib/host.ts'

const CLIENT = join(REPO, 'scripts', 'bench', 'conn-client.ts')
const RANGE = '10.97.0.0/16'
const C = { ns: 'wrenxp-c', host: 'wrenxc', ip: '10.97.0.1' }
const S = { ns: 'wrenxp-s', host: 'wrenxs', ip: '10.97.0.2' }
const MARK = '0x100000'
const POLICIES = 100
const PFX = 'wrenx'

function pod(cleanup: Cleanup, p: typeof C): void {
  addNetns(cleanup, p.ns)
  trySh('ip', ['link', 'del', p.host])
  sh('ip', ['link', 'add', p.host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p.ns])
  cleanup.push(`veth ${p.host}`, () => void trySh('ip', ['link', 'del', p.host]))
  sh('ip', ['-n', p.ns, 'addr', 'add', `${p.ip}/32`, 'dev', 'eth0'])
  sh('ip', ['-n', p.ns, 'link', 'set', 'eth0', 'up'])
  sh('ip', ['-n', p.ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link'])
  sh('ip', ['-n', p.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0'])
  sh('ip', ['link', 'set', p.host, 'up'])
  sh('sysctl', ['-qw', `net.ipv4.conf.${p.host}.proxy_arp=1`])
  sh('ip', ['route', 'add', `${p.ip}/32`, 'dev', p.host])
}

// ---- sets ----
interface SetDef { name: string; type: string; members: string[] }
const sets: SetDef[] = []
const podSet = (i: number) => `${PFX}-pod${i}`
const netSet = (i: number) => `${PFX}-net${i}`
const nsSet = (t: number) => `${PFX}-ns${t}`
const CLIENT_SET = `${PFX}-client`
const listSet = (i: number) => `${PFX}-l${i}`
const ALL_LIST = `${PFX}-all`
const UNION = `${PFX}-union`

function buildSets(): void {
  for (let i = 0; i < POLICIES - 1; i++) {
    sets.push({ name: podSet(i), type: 'hash:ip', members: [`10.96.${i}.7`] })
    const b = 16 + (i % 16)
    sets.push({ name: netSet(i), type: 'hash:net', members: [`172.${b}.0.0/16`, `172.${b}.${i % 256}.0/24 nomatch`] })
  }
  for (let t = 0; t < 10; t++) sets.push({ name: nsSet(t), type: 'hash:ip', members: [`10.95.${t}.1`, `10.95.${t}.2`] })
  sets.push({ name: CLIENT_SET, type: 'hash:ip', members: [C.ip] })
  // nomatch check: a net set holding the client's /16 with the client's /24 excepted
  sets.push({ name: `${PFX}-nomatch`, type: 'hash:net', members: ['10.97.0.0/16', '10.97.0.0/24 nomatch'] })
  for (let i = 0; i < POLICIES - 1; i++) sets.push({ name: listSet(i), type: 'list:set', members: [podSet(i), netSet(i), nsSet(i % 10)] })
  const every = [...new Set(sets.filter((s) => s.type !== 'list:set' && s.name !== `${PFX}-nomatch`).map((s) => s.name))]
  sets.push({ name: ALL_LIST, type: 'list:set', members: every })
  const union = new Set<string>()
  for (const x of sets) if (x.type !== 'list:set' && x.name !== `${PFX}-nomatch`) for (const m of x.members) if (!m.endsWith('nomatch')) union.add(m.includes('/') ? m : `${m}/32`)
  sets.push({ name: UNION, type: 'hash:net', members: [...union] })
  sets.push({ name: `${PFX}-chk1`, type: 'list:set', members: [`${PFX}-nomatch`] })
  sets.push({ name: `${PFX}-chk2`, type: 'list:set', members: [`${PFX}-nomatch`, CLIENT_SET] })
}

// Not a layout here: Cilium-style identities (pod IP → identity in mark bits with
// `SET --map-set … --map-mark`, then one (receiver, identity) lookup per port)
// need hash:ip,mark or hash:mark, which this kernel does not offer ("set type
// not supported"; hash:net,net and hash:net,port,net are missing too).

function createSets(cleanup: Cleanup): void {
  const lines: string[] = []
  for (const s of sets) {
    trySh('ipset', ['destroy', s.name])
    lines.push(s.type === 'list:set' ? `create ${s.name} list:set size ${Math.max(8, s.members.length + 8)}` : `create ${s.name} ${s.type} family inet maxelem 65536`)
    for (const m of s.members) lines.push(`add ${s.name} ${m}`)
  }
  sh('ipset', ['restore'], lines.join('\n') + '\n')
  // list sets first: a member set in use by a list set cannot be destroyed
  cleanup.push('sets', () => {
    for (const s of [...sets].reverse()) trySh('ipset', ['destroy', s.name])
  })
}

// ---- chains ----
type Chains = Map<string, string[]>
const markSet = `-m mark --mark ${MARK}/${MARK}`
const port = `-p tcp -m tcp --dport ${CONN_PORT}`

function base(tw: string[]): Chains {
  return new Map([
    [`${PFX}-FWD`, [`-j MARK --set-xmark 0x0/${MARK}`, `-i ${C.host} -j ${PFX}-fw`, `-o ${S.host} -j ${PFX}-tw`, `${markSet} -j ACCEPT`]],
    [`${PFX}-fw`, ['-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', '-m conntrack --ctstate INVALID -j DROP', `-j MARK --set-xmark ${MARK}/${MARK}`]],
    [`${PFX}-tw`, ['-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', '-m conntrack --ctstate INVALID -j DROP', ...tw]],
  ])
}

function peersOf(i: number): string[] {
  return i === POLICIES - 1 ? [CLIENT_SET] : [podSet(i), netSet(i), nsSet(i % 10)]
}

const layouts: Record<string, () => Chains> = {
  'a none': () => base([`-j MARK --set-xmark ${MARK}/${MARK}`]),
  'b marks x100 (design sketch)': () => {
    const tw = [`-j MARK --set-xmark 0x0/${MARK}`]
    const c = new Map<string, string[]>()
    for (let i = 0; i < POLICIES; i++) {
      tw.push(`-j ${PFX}-pi${i}`, `${markSet} -j RETURN`)
      c.set(`${PFX}-pi${i}`, [...peersOf(i).map((s) => `-m set --match-set ${s} src ${port} -j MARK --set-xmark ${MARK}/${MARK}`), `${markSet} -j RETURN`])
    }
    tw.push('-j DROP')
    return new Map([...base(tw), ...c])
  },
  'c accept x100': () => {
    const tw: string[] = []
    const c = new Map<string, string[]>()
    for (let i = 0; i < POLICIES; i++) {
      tw.push(`-j ${PFX}-pi${i}`)
      c.set(`${PFX}-pi${i}`, peersOf(i).map((s) => `-m set --match-set ${s} src ${port} -j ACCEPT`))
    }
    tw.push('-j DROP')
    return new Map([...base(tw), ...c])
  },
  'd accept + list:set x100': () => {
    const tw: string[] = []
    const c = new Map<string, string[]>()
    for (let i = 0; i < POLICIES; i++) {
      tw.push(`-j ${PFX}-pi${i}`)
      const set = i === POLICIES - 1 ? CLIENT_SET : listSet(i)
      c.set(`${PFX}-pi${i}`, [`-m set --match-set ${set} src ${port} -j ACCEPT`])
    }
    tw.push('-j DROP')
    return new Map([...base(tw), ...c])
  },
  'e per-workload list:set': () => base([`-m set --match-set ${ALL_LIST} src ${port} -j ACCEPT`, '-j DROP']),
  // cost split: 100 jumps into chains holding no set match at all
  'x jumps only x100': () => {
    const tw: string[] = []
    const c = new Map<string, string[]>()
    for (let i = 0; i < POLICIES; i++) {
      tw.push(`-j ${PFX}-pi${i}`)
      c.set(`${PFX}-pi${i}`, i === POLICIES - 1 ? [`${port} -j ACCEPT`] : [`-s 10.96.${i}.7/32 ${port} -j ACCEPT`])
    }
    tw.push('-j DROP')
    return new Map([...base(tw), ...c])
  },
  // one hash:net lookup for every peer address of every policy (union, one set)
  'f union set (wren today)': () => base([`-m set --match-set ${UNION} src ${port} -j ACCEPT`, '-j DROP']),
}

function program(chains: Chains): void {
  const lines = ['*filter']
  for (const name of chains.keys()) lines.push(`:${name} - [0:0]`)
  for (const [name, rules] of chains) for (const r of rules) lines.push(`-A ${name} ${r}`)
  lines.push('COMMIT', '')
  sh('iptables-restore', ['-w', '--noflush'], lines.join('\n'))
}

function removeChains(): void {
  trySh('iptables', ['-w', '-D', 'FORWARD', '-j', `${PFX}-FWD`])
  const save = trySh('iptables-save', ['-t', 'filter']).stdout
  const names = [...save.matchAll(new RegExp(`^:(${PFX}-\\S+)`, 'gm'))].map((m) => m[1])
  if (!names.length) return
  sh('iptables-restore', ['-w', '--noflush'], ['*filter', ...names.map((n) => `:${n} - [0:0]`), ...names.map((n) => `-X ${n}`), 'COMMIT', ''].join('\n'))
}

async function rate(seconds: number): Promise<number | string> {
  const r = await exec('ip', ['netns', 'exec', C.ns, NODE, '--no-warnings', CLIENT, S.ip, String(CONN_PORT), String(seconds * 1000)], { timeoutMs: seconds * 1000 + 60_000 })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() || '{}')
  if (out.error) return out.error
  if (out.failures > 0) return `${out.failures} failures`
  return (out.connections / out.ms) * 1000
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5)
  const rounds = Number(process.argv[3] ?? 2)
  const cleanup = new Cleanup()
  try {
    await exclusiveKernel(cleanup)
    blackhole(cleanup, RANGE)
    sh('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
    pod(cleanup, C)
    pod(cleanup, S)
    buildSets()
    removeChains()
    createSets(cleanup)
    cleanup.push('chains', removeChains)
    program(layouts['a none']())
    sh('iptables', ['-w', '-I', 'FORWARD', '1', '-j', `${PFX}-FWD`])
    await startServer(cleanup, S.ns)

    // list:set semantics: a member set whose most specific entry is nomatch does not match; the list moves on
    for (const [set, want] of [[`${PFX}-chk1`, 'denied'], [`${PFX}-chk2`, 'allowed']] as const) {
      program(base([`-m set --match-set ${set} src ${port} -j ACCEPT`, '-j DROP']))
      const r = await rate(1)
      const got = typeof r === 'number' ? 'allowed' : 'denied'
      console.log(`nomatch check ${set}: ${got} (want ${want})${got === want ? '' : '  <-- MISMATCH'}`)
    }

    const results = new Map<string, number[]>()
    for (let round = 0; round < rounds; round++) {
      for (const [name, build] of Object.entries(layouts)) {
        program(build())
        const r = await rate(seconds)
        if (typeof r !== 'number') throw new Error(`${name}: ${r}`)
        results.set(name, [...(results.get(name) ?? []), r])
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const none = median(results.get('a none')!)
    console.log('\nlayout                      conns/s   ratio   runs')
    for (const [name, xs] of results) {
      const m = median(xs)
      console.log(`${name.padEnd(26)} ${m.toFixed(0).padStart(8)}   ${(m / none).toFixed(2)}x   ${xs.map((x) => x.toFixed(0)).join(' ')}`)
    }
  } finally {
    const errors = await cleanup.run()
    if (errors.length) console.error('cleanup:', errors.join('; '))
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
