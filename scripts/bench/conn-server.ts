// Connection-rate server, run inside the receiver's network namespace:
//   node conn-server.ts PORT
// Answers every connection with one byte; prints "listening" when ready.
import { createServer } from 'node:net'

const port = Number(process.argv[2])
const server = createServer((s) => {
  s.on('error', () => {}) // clients reset on purpose
  s.end('x')
})
server.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'))
process.on('SIGTERM', () => process.exit(0))
