/**
 * The race client behind the CLI's `race` command and the demo (examples/race.ts): N clients call a
 * counter's increment URL once each, all at once, and the verdict on whether they saw exactly 1..N.
 */
import * as http from 'node:http'
import { redactUrl } from '../src/redact.js'

/** What `race` found: the counter values the clients saw, and how they differ from exactly 1..N. */
export interface RaceResult {
  /** The increment URL, any password in it hidden. */
  url: string
  clients: number
  /** The value each client saw, in the order the answers arrived. */
  values: number[]
  /** True if the values are exactly 1..clients, each once. */
  ok: boolean
  /** Values seen more than once, with how often. */
  duplicates: { value: number; times: number }[]
  /** Values of 1..clients that nobody saw. */
  missing: number[]
  /** How many distinct processes answered (from the `worker` field of the answers). */
  workers: number
  /** Requests that failed or gave no number, with why. */
  errors: string[]
}

/** Options of {@link race}. */
export interface RaceOptions {
  /** @default 100 */
  clients?: number
  /** Path that increments the counter and answers `{ value, worker }`. @default '/increment' */
  path?: string
  /** Path that resets the counter first; `''` skips the reset. @default '/create' */
  reset?: string
  /** Give up on a request after this many ms. @default 10000 */
  timeout?: number
}

interface Answer {
  value?: unknown
  worker?: unknown
}

/** One GET on a fresh connection: with a new connection per client, the cluster spreads them over workers. */
function getJson(url: URL, timeout: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout, headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        if (res.statusCode !== 200) return reject(new Error(`${url.pathname} answered ${res.statusCode}: ${text.slice(0, 200)}`))
        try {
          resolve(JSON.parse(text) as Answer)
        } catch {
          reject(new Error(`${url.pathname} did not answer JSON: ${text.slice(0, 200)}`))
        }
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${url.pathname} did not answer within ${timeout}ms`)))
    req.on('error', reject)
  })
}

/** Compare what the clients saw with exactly 1..clients. */
export function judge(values: readonly number[], clients: number): Pick<RaceResult, 'ok' | 'duplicates' | 'missing'> {
  const counts = new Map<number, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  const duplicates = [...counts].filter(([, n]) => n > 1).map(([value, times]) => ({ value, times })).sort((a, b) => a.value - b.value)
  const missing: number[] = []
  for (let i = 1; i <= clients; i++) if (!counts.has(i)) missing.push(i)
  const ok = values.length === clients && duplicates.length === 0 && missing.length === 0
  return { ok, duplicates, missing }
}

/**
 * Whether a counter is atomic across the processes that serve it: reset the counter, let `clients` clients
 * call `/increment` once each, all at once, and tell whether they saw exactly 1..clients, each once. On
 * per-process state (a memory cache, a module-level object) each worker counts on its own copy, and
 * they see duplicates and gaps.
 *
 * @throws if the reset request fails (the app is not there); failures of single increments are reported.
 */
export async function race(base: string, options: RaceOptions = {}): Promise<RaceResult> {
  const clients = options.clients ?? 100
  const timeout = options.timeout ?? 10_000
  const root = new URL(base)
  const reset = options.reset ?? '/create'
  if (reset !== '') await getJson(new URL(reset, root), timeout)
  const target = new URL(options.path ?? '/increment', root)
  const settled = await Promise.allSettled(Array.from({ length: clients }, () => getJson(target, timeout)))
  const values: number[] = []
  const errors: string[] = []
  const workers = new Set<unknown>()
  for (const s of settled) {
    if (s.status === 'rejected') errors.push((s.reason as Error).message)
    else if (typeof s.value.value !== 'number') errors.push(`an answer without a numeric \`value\`: ${JSON.stringify(s.value).slice(0, 200)}`)
    else {
      values.push(s.value.value)
      if (s.value.worker !== undefined) workers.add(s.value.worker)
    }
  }
  return { url: redactUrl(target.href), clients, values, ...judge(values, clients), workers: workers.size, errors }
}

/** A short account of a race for a human. */
export function describeRace(r: RaceResult): string {
  const lines = [`${r.clients} concurrent clients called ${r.url} once each; ${r.workers} worker process${r.workers === 1 ? '' : 'es'} answered.`]
  if (r.ok) {
    lines.push(`OK: they saw exactly 1..${r.clients}, each once. The counter is atomic across workers.`)
    return lines.join('\n')
  }
  const list = (xs: number[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, ... (${xs.length} in all)` : xs.join(', '))
  lines.push(`FAILED: they did not see exactly 1..${r.clients}, each once.`)
  if (r.duplicates.length > 0) {
    const shown = r.duplicates.slice(0, 8).map((d) => `${d.value} (x${d.times})`).join(', ')
    lines.push(`  duplicates: ${r.duplicates.length} values seen more than once: ${shown}${r.duplicates.length > 8 ? ', ...' : ''}`)
  }
  if (r.missing.length > 0) lines.push(`  gaps: ${r.missing.length} values nobody saw: ${list(r.missing)}`)
  if (r.errors.length > 0) lines.push(`  errors: ${r.errors.length} requests failed, e.g. ${r.errors[0]}`)
  if (r.workers > 1 && r.duplicates.length > 0) {
    lines.push('  Each worker counts on its own copy: a memory cache, like a module-level object, is per process. Use a shared backend (sqlite:, file:, redis://).')
  }
  return lines.join('\n')
}
