// Every seed scenario, in seed order.
import type { Scenario } from './types.ts'
import { s000 } from './s000-ingress-demo.ts'
import { s001 } from './s001-alpha.ts'
import { s002 } from './s002-advanced-policy.ts'
import { s003 } from './s003-pod-networking-lab.ts'
import { s004 } from './s004-sleep-httpbin.ts'

export const scenarios: Scenario[] = [s000, s001, s002, s003, s004]
