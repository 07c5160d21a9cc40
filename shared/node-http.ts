// node:http, loaded with require. An ESM `import … from 'node:http'` builds a
// facade that reads every export of the module, and one of them loads undici
// (fetch): ~20 ms of every start of the agent and of every `wren-enforcer
// status`. Types still come from a type-only import, which costs nothing.
import { createRequire } from 'node:module'

export const http = createRequire(import.meta.url)('node:http') as typeof import('node:http')
