/** Output helpers of the CLI: values as text or JSON, durations, and a progress bar for terminals. */
import { collectSecrets, redactText } from '../src/redact.js'

/**
 * Passwords the command line and the environment hold (`--url`, `CACHE_*` URLs, any argument that is a URL
 * with a password), found once.
 */
let secrets: string[] | undefined

/**
 * A message for stderr with every credential hidden: the last line of defence, so that no error or warning
 * the CLI prints shows a password, whatever produced it. Values a command was asked to print are not passed
 * through it: they are the user's data.
 */
export function withoutSecrets(message: string): string {
  secrets ??= collectSecrets([
    ...process.argv.slice(2).map((arg) => arg.replace(/^--?[\w-]+=/, '')),
    ...Object.entries(process.env).filter(([name]) => name.startsWith('CACHE_')).map(([, value]) => value),
  ])
  return redactText(message, secrets)
}

/** A value as plain JSON data: Map -> object (or entries), Set -> array, BigInt -> string, bytes -> base64. */
export function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return { base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') }
  if (value instanceof Set) return [...value].map(toPlain)
  if (value instanceof Map) {
    const entries = [...value.entries()]
    return entries.every(([k]) => typeof k === 'string')
      ? Object.fromEntries(entries.map(([k, v]) => [k, toPlain(v)]))
      : entries.map(([k, v]) => [toPlain(k), toPlain(v)])
  }
  if (Array.isArray(value)) return value.map(toPlain)
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]))
  }
  return value
}

/** A value for a human: text as it is, anything else as JSON. */
export function showValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(toPlain(value))
}

/** Milliseconds for a human: `950ms`, `42s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function showMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)}s`
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ]
  const parts: string[] = []
  let rest = s
  for (const [unit, size] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`)
      rest %= size
    }
    if (parts.length === 2) break
  }
  return parts.join(' ')
}

/** A glob (`*` any run, `?` one character) as an anchored regular expression. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) => (c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`))
  return new RegExp(`^${body}$`, 's')
}

/** Something that reports progress: a bar on a terminal, nothing elsewhere. */
export interface Progress {
  update(done: number): void
  done(): void
}

const silent: Progress = { update: () => {}, done: () => {} }

/**
 * A progress bar redrawn in place on `stream` when it is a terminal; silent otherwise, so that pipes and
 * scripts get only the final line. With `total` undefined it shows a spinner and a count instead.
 */
export function progress(label: string, total: number | undefined, stream: NodeJS.WriteStream = process.stdout): Progress {
  if (!stream.isTTY) return silent
  const started = Date.now()
  let last = 0
  let spin = 0
  const draw = (done: number) => {
    const elapsed = showMs(Date.now() - started)
    let line: string
    if (total === undefined || total === 0) {
      line = `${label} ${'|/-\\'[spin++ % 4]} ${done > 0 ? `${done} ` : ''}${elapsed}`
    } else {
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - label.length - 40))
      const ratio = Math.min(1, done / total)
      const filled = Math.round(ratio * width)
      line = `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${done}/${total} ${elapsed}`
    }
    stream.write(`\r${line}\x1b[K`)
  }
  draw(0)
  // A spinner moves even while the backend works on one long call.
  const timer = total === undefined ? setInterval(() => draw(last), 100) : undefined
  return {
    update(done) {
      last = done
      draw(done)
    },
    done() {
      if (timer !== undefined) clearInterval(timer)
      stream.write('\r\x1b[K')
    },
  }
}
