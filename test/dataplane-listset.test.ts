// list:sets left by wren's earlier layout (one per multi-peer rule): the
// writer no longer makes them, but destroys them, before the sets they hold
// (ipset refuses to destroy a set a list:set still holds).
import t from 'tap'
import { makePlan } from '../enforcer/dataplane/plan.ts'
import { prepare } from '../enforcer/dataplane/prepare.ts'
import { parseIpsetSave } from '../enforcer/dataplane/kernel.ts'
import type { DesiredState } from '../enforcer/dataplane/types.ts'

const MAX = 65536
const nothing: DesiredState = {
  v4: { family: 4, hooks: [], chains: [], sets: [] },
  v6: { family: 6, hooks: [], chains: [], sets: [] },
  problems: [],
  workloads: [],
}

t.test('stale list:sets are destroyed before the sets they hold', async (t) => {
  // names chosen so that the list set sorts before its members
  const saved = ['create wren4i-b hash:ip family inet hashsize 1024 maxelem 65536', 'add wren4i-b 10.0.0.1', 'create wren4n-c hash:net family inet hashsize 1024 maxelem 65536',
    'create wren4a-list list:set size 65536', 'add wren4a-list wren4i-b', 'add wren4a-list wren4n-c'].join('\n')
  const sets = parseIpsetSave(saved)
  t.same(sets.get('wren4a-list'), { type: 'list:set', family: 4, maxelem: MAX, members: new Set(['wren4i-b', 'wren4n-c']) })
  const plan = makePlan(prepare(nothing, MAX), { tables: new Map(), sets }, MAX)
  t.equal(plan.destroySets, 'destroy wren4a-list\ndestroy wren4i-b\ndestroy wren4n-c\n')
})
