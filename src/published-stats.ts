/**
 * A process's counters, written to the backend every `publishStats` so that one view (`cachekit stats
 * --watch`) can show every process sharing the cache: each writes its own bookkeeping key. A reader takes a
 * report older than three periods for gone, so a process that stopped drops out of the view on its own; the
 * key itself is kept for an hour at least (see KEEP_MS). Written as JSON text,
 * whatever the cache's serializer, through the adapter (not counted in `stats()`, not traced).
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { CacheAdapter } from './adapter.js'
import { BOOKKEEPING } from './engine.js'

/** Where the reports live, under the cache's key prefix: `<keyPrefix>|ck:stats:<host>:<pid>:<random>`. */
export const STATS_MARK = `${BOOKKEEPING}stats:`

/** The counters one process reports. */
export interface ProcessCounters {
  backend: string
  hits: number
  misses: number
  sets: number
  deletes: number
  errors: number
  /** The memory tier's, when `l1` is on. */
  l1?: { hits: number; misses: number; entries: number; bytes: number }
}

/** What one process writes: its counters since `init`, who it is and when it wrote them. */
export interface PublishedStats extends ProcessCounters {
  /** The shape's version. */
  v: 1
  /** This cache's own, random: two caches of one process (or a restart with the same pid) stay apart. */
  id: string
  host: string
  pid: number
  /** When the cache was initialised and when this was written, in ms since the epoch (the wall clock). */
  since: number
  at: number
  /** The period it writes at, in ms: a reader takes a report older than three of them for gone. */
  every: number
}

export interface Publishing {
  /** Write the first report now, if none was: called once the backend has loaded. */
  kick(): void
  /** Stop writing and remove this process's report (best effort, at most `waitMs`). */
  stop(waitMs?: number): Promise<void>
}

/**
 * How long a report is kept in the backend: an hour at least, so that an eviction by soonest expiry (SQLite,
 * PostgreSQL, MySQL, memory) takes the user's entries before it. A reader takes a report older than three
 * periods (by its `at`) for gone.
 */
const KEEP_MS = 3_600_000

/**
 * Write `read()` every `every` ms under `prefix` + {@link STATS_MARK}, once `adapter()` gives an adapter.
 * A failed write is dropped quietly: the operations themselves report a backend that is down. On a backend
 * no other process reads (memory, null) or that cannot list its keys (memcached), `warn` is told once and
 * nothing is written.
 */
export function publishStats(options: {
  every: number
  prefix: string
  adapter: () => CacheAdapter | undefined
  read: () => ProcessCounters
  /** The cache's clock, for the report's expiry. */
  now: () => number
  warn: (message: string) => void
}): Publishing {
  const id = randomBytes(4).toString('hex')
  const key = `${options.prefix}${STATS_MARK}${hostname()}:${process.pid}:${id}`
  const since = Date.now()
  let writing: Promise<unknown> | undefined
  let stopped = false
  let checked = false
  let written = false
  const write = (): void => {
    const adapter = options.adapter()
    if (stopped || writing !== undefined || adapter === undefined) return
    if (!checked) {
      checked = true
      const { shared, listKeys } = adapter.capabilities
      if (!shared || listKeys === false) {
        options.warn(
          `publishStats: the ${adapter.name} backend ${shared ? 'cannot list its keys, so `cachekit stats --watch` could not find the counters' : 'is not shared between processes, so no other process could read the counters'}; nothing is published.`,
        )
        stopped = true
        clearInterval(timer)
        return
      }
    }
    written = true
    const report: PublishedStats = { v: 1, id, host: hostname(), pid: process.pid, since, at: Date.now(), every: options.every, ...options.read() }
    writing = Promise.resolve()
      .then(() => adapter.set(key, JSON.stringify(report), options.now() + Math.max(3 * options.every, KEEP_MS)))
      .catch(() => {})
      .finally(() => (writing = undefined))
  }
  const timer = setInterval(write, options.every)
  timer.unref?.()
  // The first report soon after start-up, not a whole period later.
  const first = setTimeout(write, Math.min(options.every, 50))
  first.unref?.()
  return {
    kick() {
      if (!written) write()
    },
    async stop(waitMs = 1_000) {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      clearTimeout(first)
      const adapter = options.adapter()
      if (adapter === undefined) return
      let timeout: NodeJS.Timeout | undefined
      const removed = (async () => {
        await writing
        await adapter.delete(key)
      })().catch(() => {})
      await Promise.race([removed, new Promise((r) => (timeout = setTimeout(r, waitMs)))])
      clearTimeout(timeout)
    },
  }
}

/** A report read back, or `undefined` for anything that is not one (another version, a corrupt value). */
export function parseReport(payload: string | Uint8Array | undefined): PublishedStats | undefined {
  if (payload === undefined) return undefined
  try {
    const text = typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')
    const report = JSON.parse(text) as Partial<PublishedStats>
    if (report?.v !== 1 || typeof report.id !== 'string' || typeof report.host !== 'string' || typeof report.backend !== 'string') return undefined
    for (const field of ['pid', 'since', 'at', 'every', 'hits', 'misses', 'sets', 'deletes', 'errors'] as const) {
      if (typeof report[field] !== 'number' || !Number.isFinite(report[field])) return undefined
    }
    return report as PublishedStats
  } catch {
    return undefined
  }
}
