// The plugin executable: the entry scripts/build.mjs bundles into dist/wren.cjs.
import { runProcess } from './main.ts'

runProcess()
