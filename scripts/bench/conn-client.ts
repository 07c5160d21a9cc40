// Connection-rate client, run inside the sender's network namespace:
//   node conn-client.ts HOST PORT DURATION_MS
// Opens connections one after another for DURATION_MS: connect, read the
// server's byte, reset (RST, so no TIME_WAIT eats the ephemeral ports).
// Every connection is new to conntrack, so every one walks the policy chains.
// Prints {"connections":N,"ms":T,"failures":F} as one JSON line.
import { connect } from 'node:net'

const [host, portText, durationText] = process.argv.slice(2)
const port = Number(portText)
const durationMs = Number(durationText)

function once(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port })
    const timer = setTimeout(() => (s.destroy(), resolve(false)), 1000)
    s.once('data', () => {
      clearTimeout(timer)
      s.resetAndDestroy()
      resolve(true)
    })
    s.once('error', () => (clearTimeout(timer), resolve(false)))
  })
}

async function main(): Promise<void> {
  // warm-up: the first connections pay for ARP and the JIT
  let warm = 0
  for (let i = 0; i < 200 && warm < 3; i++) if (!(await once())) warm++
  if (warm >= 3) {
    process.stdout.write(JSON.stringify({ error: `no connection to ${host}:${port}` }) + '\n')
    process.exit(1)
  }
  let connections = 0
  let failures = 0
  const start = performance.now()
  while (performance.now() - start < durationMs) {
    if (await once()) connections++
    else failures++
  }
  const ms = performance.now() - start
  process.stdout.write(JSON.stringify({ connections, ms, failures }) + '\n')
}

main()
