// list:set ordering in a plan: ipset refuses a list:set naming a set that does
// not exist yet, and refuses to destroy a set a list:set still holds.
import t from 'tap'
import { makePlan, type ActualState } from '../enforcer/dataplane/plan.ts'
import { prepare } from '../enforcer/dataplane/prepare.ts'
import { parseIpsetSave } from '../enforcer/dataplane/kernel.ts'
import type { DesiredState, IpSet } from '../enforcer/dataplane/types.ts'

const MAX = 65536
// names chosen so that the list set sorts before its members
const pods: IpSet = { name: 'wren4i-b', type: 'hash:ip', family: 4, members: ['10.0.0.1'], comment: '' }
const net: IpSet = { name: 'wren4n-c', type: 'hash:net', family: 4, members: ['10.1.0.0/16', '10.1.0.0/24 nomatch'], comment: '' }
const list: IpSet = { name: 'wren4a-list', type: 'list:set', family: 4, members: ['wren4i-b', 'wren4n-c'], comment: '' }

function state(sets: IpSet[]): DesiredState {
  const rules = sets.some((s) => s === list) ? [{ match: ['-m', 'set', '--match-set', list.name, 'src'], action: ['-j', 'ACCEPT'], comment: 'peers' }] : []
  return {
    v4: { family: 4, hooks: [], chains: [{ name: 'wren-pi-x', table: 'filter', rules }], sets },
    v6: { family: 6, hooks: [], chains: [], sets: [] },
    problems: [],
    workloads: [],
  }
}
const empty = (): ActualState => ({ tables: new Map(), sets: new Map() })

t.test('a list:set is created after its members, with a size and no family', async (t) => {
  const plan = makePlan(prepare(state([list, pods, net]), MAX), empty(), MAX)
  const creates = plan.sets!.split('\n').filter((l) => l.startsWith('create '))
  t.same(creates, ['create wren4i-b hash:ip family inet maxelem 65536', 'create wren4n-c hash:net family inet maxelem 65536', 'create wren4a-list list:set size 65536'])
  t.match(plan.sets!, /add wren4a-list wren4i-b\nadd wren4a-list wren4n-c\n$/)
})

t.test('stale list:sets are destroyed before the sets they hold', async (t) => {
  const saved = ['create wren4i-b hash:ip family inet hashsize 1024 maxelem 65536', 'add wren4i-b 10.0.0.1', 'create wren4n-c hash:net family inet hashsize 1024 maxelem 65536',
    'create wren4a-list list:set size 65536', 'add wren4a-list wren4i-b', 'add wren4a-list wren4n-c'].join('\n')
  const sets = parseIpsetSave(saved)
  t.same(sets.get('wren4a-list'), { type: 'list:set', family: 4, maxelem: MAX, members: new Set(['wren4i-b', 'wren4n-c']) })
  const plan = makePlan(prepare(state([]), MAX), { tables: new Map(), sets }, MAX)
  t.equal(plan.destroySets, 'destroy wren4a-list\ndestroy wren4i-b\ndestroy wren4n-c\n')
})

t.test('an unchanged IPv6 list:set is left alone although the kernel keeps no family for it', async (t) => {
  const v6 = { ...pods, name: 'wren6i-b', family: 6 as const, members: ['fd00::1'] }
  const l6 = { ...list, name: 'wren6a-list', family: 6 as const, members: ['wren6i-b'] }
  const desired: DesiredState = { ...state([]), v6: { family: 6, hooks: [], chains: [], sets: [v6, l6] } }
  const sets = parseIpsetSave(['create wren6i-b hash:ip family inet6 hashsize 1024 maxelem 65536', 'add wren6i-b fd00::1', 'create wren6a-list list:set size 65536', 'add wren6a-list wren6i-b'].join('\n'))
  const plan = makePlan(prepare(desired, MAX), { tables: new Map(), sets }, MAX)
  t.equal(plan.sets, undefined)
})

t.test('prepare refuses a list:set holding a missing set, a list:set or a set of the other family', async (t) => {
  t.throws(() => prepare(state([list, pods]), MAX), /holds set wren4n-c, which is not in the desired state/)
  const nested: IpSet = { ...list, name: 'wren4a-nest', members: ['wren4a-list'] }
  t.throws(() => prepare(state([list, pods, net, nested]), MAX), /holds list set wren4a-list/)
  const d = state([list, pods, net])
  d.v6.sets.push({ ...list, name: 'wren6a-list', family: 6, members: ['wren4i-b'] })
  t.throws(() => prepare(d, MAX), /IPv6 list set wren6a-list holds IPv4 set wren4i-b/)
  t.throws(() => prepare(state([{ ...list, members: ['wren4i-b', 'x y'] }, pods]), MAX), /is not a set name/)
})
