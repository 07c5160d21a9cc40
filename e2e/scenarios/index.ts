// Every seed scenario, in seed order.
import type { Scenario } from './types.ts'
import { s000 } from './s000-ingress-demo.ts'

export const scenarios: Scenario[] = [s000]
