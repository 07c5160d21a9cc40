// Seed 003's three-tier lab (scenarios/s003-pod-networking-lab.ts: its
// namespaces, pods, headless Services, policies, probes and expected matrices,
// unchanged) on two nodes, its tiers spread over them, once on one L2 segment
// (host-gw) and once across a router (VXLAN). Every cell must equal the
// one-node expectation: ingress is judged on the receiver's node, egress on
// the sender's, peers on the other node matched by their pod IPs.
//
// Two placements, because three tiers (plus the clients and kube-dns) on two
// nodes cannot put every pair on different nodes at once; together they do:
// every probed pair (bb2, flaskback, mysqldb to bb1, mysqldb, flaskback and
// kube-dns) crosses nodes in at least one of them.
import t from 'tap'
import { s003 } from './scenarios/s003-pod-networking-lab.ts'
import { LEGEND, formatMatrix } from './scenarios/matrix.ts'
import { runOnNodes, type Placement } from './lib/nodes-world.ts'
import { WHOAMI_PORT, type Underlay } from './lib/nodes.ts'
import { probeFrom } from './lib/probe.ts'

const NODES = [
  { name: 'a', podCidrs: ['10.98.1.0/24'] },
  { name: 'b', podCidrs: ['10.98.2.0/24'] },
]

const PLACEMENTS: { name: string; placement: Placement }[] = [
  {
    // the allowed (flaskback) and denied (bb2) paths into mysqldb cross nodes
    name: 'clients and backend on a; database, bb1 and kube-dns on b',
    placement: { 'default/bb2': 'a', 'default/flaskback': 'a', 'default/mysqldb': 'b', 'default/bb1': 'b', 'kube-system/coredns': 'b' },
  },
  {
    // client → backend and database → everything cross nodes
    name: 'client and database on a; backend, bb1 and kube-dns on b',
    placement: { 'default/bb2': 'a', 'default/mysqldb': 'a', 'default/flaskback': 'b', 'default/bb1': 'b', 'kube-system/coredns': 'b' },
  },
]

const UNDERLAYS: { underlay: Underlay; what: string }[] = [
  { underlay: 'l2', what: 'one L2 segment (host-gw)' },
  { underlay: 'routed', what: 'across a router (VXLAN)' },
]

const root = process.getuid?.() === 0
// ~1 min a run; the kernel lock may first wait for other agent-owning tests
t.setTimeout(60 * 60_000)
t.comment(LEGEND)

for (const { underlay, what } of UNDERLAYS) {
  for (const { name, placement } of PLACEMENTS) {
    t.test(`seed 003 on two nodes, ${what}: ${name}`, { skip: root ? false : 'needs root', timeout: 20 * 60_000 }, async (t) => {
      const res = await runOnNodes(
        s003,
        { underlay, nodes: NODES, placement },
        async (r, s) => {
          const where = (id: string) => `${id.split('/')[1]}@${s.nodeOf(id)}`
          t.comment(`step ${r.index + 1}/${s003.steps.length}: ${r.step.title} (${r.ms} ms) [${Object.keys(placement).map(where).join(' ')}]\n${formatMatrix(s003, r.matrix)}`)
          for (const c of r.matrix.flat()) {
            if (c.expect === '.') continue
            t.equal(c.got, c.expect, `step ${r.index + 1} "${r.step.title}": ${c.row} -> ${c.col}${c.detail ? ` (${c.detail})` : ''}`)
          }
          if (r.index === 0) {
            // the seed's "pods communicate directly without NAT": bb1 sees bb2's own address, across nodes
            const bb2 = s.pod('default/bb2')
            const [w] = await probeFrom(bb2.netns, [{ kind: 'tcp', host: s.pod('default/bb1').ip, port: WHOAMI_PORT }])
            t.equal(w!.reply, bb2.ip, `bb1 (on ${s.nodeOf('default/bb1')}) sees bb2 (on ${s.nodeOf('default/bb2')}) by its own address`)
          }
        },
        (m) => t.comment(m),
      )
      t.error(res.error, 'every step ran')
      t.equal(res.steps.length, s003.steps.length, 'all steps measured')
      t.same(res.teardownErrors, [], 'teardown without errors')
      t.same(res.leftovers, [], 'nothing left behind (wn* netns, wn- links, 10.95/10.98 host routes)')
    })
  }
}
