// The Router against a fake kernel: when it reads and applies, what a failure
// leaves, what status shows. The planning itself is network-plan.test.ts's;
// the real kernel is e2e/nodes.test.ts's.
import t from 'tap'
import { nullLogger } from '../shared/log.ts'
import type { Node } from '../enforcer/model.ts'
import type { HostAddresses, RoutesApplied } from '../enforcer/network/kernel.ts'
import type { RoutePlan } from '../enforcer/network/plan.ts'
import { Router } from '../enforcer/network/router.ts'

const node = (name: string, ip: string, cidr: string): Node => ({ metadata: { name }, spec: { podCIDRs: [cidr] }, status: { addresses: [{ type: 'InternalIP', address: ip }] } })
const A = node('a', '192.168.1.1', '10.244.1.0/24')
const B = node('b', '192.168.1.2', '10.244.2.0/24')

class FakeKernel {
  reads = 0
  plans: RoutePlan[] = []
  failNext = false
  async hostAddresses(): Promise<HostAddresses> {
    this.reads++
    return { connected: ['192.168.1.0/24'], links: [], addresses: [] }
  }
  async apply(plan: RoutePlan, host: HostAddresses): Promise<RoutesApplied> {
    if (!host.connected.length) throw new Error('apply without the read')
    if (this.failNext) {
      this.failNext = false
      throw new Error('netlink said no')
    }
    this.plans.push(plan)
    return { added: plan.routes.length, removed: 0, problems: [] }
  }
}

function setup() {
  const kernel = new FakeKernel()
  let now = 1000
  const router = new Router({ kernel, nodeName: 'a', mode: 'auto', log: nullLogger, resyncMs: 30_000, now: () => now })
  return { kernel, router, advance: (ms: number) => (now += ms) }
}

t.test('no Node ever seen (manifests mode): nothing read, nothing applied', async (t) => {
  const { kernel, router } = setup()
  await router.sync([])
  await router.sync([])
  t.same([kernel.reads, kernel.plans.length], [0, 0])
  t.match(router.status(), { nodes: 0, routes: [], hold: false })
})

t.test('the same node list again is no work until the resync is due; a new list is', async (t) => {
  const { kernel, router, advance } = setup()
  const nodes = [A, B]
  await router.sync(nodes)
  t.equal(kernel.plans.length, 1)
  t.same(kernel.plans[0]!.routes.map((r) => r.dst), ['10.244.1.0/24', '10.244.2.0/24'])
  advance(29_999)
  await router.sync(nodes)
  t.equal(kernel.plans.length, 1, 'unchanged list within resyncMs: skipped')
  await router.sync([A])
  t.equal(kernel.plans.length, 2, 'another list: applied')
  t.same(kernel.plans[1]!.routes.map((r) => r.dst), ['10.244.1.0/24'], 'b gone: its route withdrawn')
  advance(30_000)
  const list = [A]
  await router.sync(list)
  t.equal(kernel.plans.length, 3, 'resync due: applied again (repairs what someone deleted)')
  t.equal(kernel.reads, 3, 'one host read per apply')
})

t.test('a failed apply is reported and the next sync of the same list tries again', async (t) => {
  const { kernel, router } = setup()
  const nodes = [A, B]
  kernel.failNext = true
  await t.rejects(router.sync(nodes), /netlink said no/)
  t.match(router.status(), { lastError: 'netlink said no', routes: [] })
  await router.sync(nodes)
  t.equal(kernel.plans.length, 1, 'retried with the same list')
  t.notOk('lastError' in router.status(), 'error cleared')
  t.same(router.status().routes, [{ dst: '10.244.1.0/24', kind: 'blackhole' }, { dst: '10.244.2.0/24', kind: 'host-gw', via: '192.168.1.2' }])
})

t.test("this node's object missing: the plan holds and status says why", async (t) => {
  const { kernel, router } = setup()
  await router.sync([B])
  t.equal(kernel.plans[0]!.hold, true)
  t.match(router.status(), { hold: true, problems: [{ object: 'Node a', message: /own Node object is missing/ }] })
})
