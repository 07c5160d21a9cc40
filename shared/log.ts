// A small leveled logger writing JSON lines. The plugin logs to a file (its
// stdout belongs to the CNI result); the agent logs to stderr.
import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export type Level = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
}

export type Sink = (line: string) => void

export function stderrSink(): Sink {
  return (line) => process.stderr.write(line + '\n')
}

/** Appends to a file, creating its folder; logging must never fail the caller. */
export function fileSink(path: string): Sink {
  let ready = false
  return (line) => {
    try {
      if (!ready) {
        mkdirSync(dirname(path), { recursive: true })
        ready = true
      }
      appendFileSync(path, line + '\n')
    } catch {
      /* a full or read-only disk must not turn into a failed pod */
    }
  }
}

export function createLogger(sink: Sink, level: Level = 'info', base: Record<string, unknown> = {}): Logger {
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return
    sink(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields }, errorReplacer))
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(sink, level, { ...base, ...f }),
  }
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { message: value.message, ...(value as any) }
  return value
}

export const nullLogger: Logger = createLogger(() => {}, 'error')
