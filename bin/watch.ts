/**
 * `cachekit stats --watch`: the backend's live key count and, for every process that publishes its counters
 * (`publishStats`), its ops/s, hit rate and errors, redrawn every `--interval` on a terminal.
 */
import type { StoreFigures } from '../src/adapter.js'
import { CacheUnsupportedError } from '../src/errors.js'
import { ENGINE } from '../src/engine.js'
import { parseReport, STATS_MARK, type PublishedStats } from '../src/published-stats.js'
import { showBytes } from '../src/size.js'
import type { Opened } from './open.js'

/** One process's figures in a frame. */
export interface ProcessFigures {
  /** The publishing cache's random id. */
  id: string
  host: string
  pid: number
  backend: string
  /** Operations (reads, writes, deletes) per second over its last period; since it started, when seen once. */
  opsPerSec: number
  /** Hits / reads over the same span; `null` without reads. */
  hitRate: number | null
  /** Errors since it started. */
  errors: number
  /** The memory tier's hits / its lookups over the same span, with `l1` on. */
  l1HitRate?: number | null
  /** When it last wrote its counters (ms since the epoch). */
  at: number
}

/** What one refresh shows. */
export interface Frame {
  at: number
  entries: number
  countedInMs: number
  /** What the backend tells by itself (SQLite, PostgreSQL, MySQL): rows stored, their bytes, expired ones awaiting the purge. */
  store: StoreFigures
  processes: ProcessFigures[]
  total: { opsPerSec: number; hitRate: number | null; errors: number }
}

const ops = (r: PublishedStats): number => r.hits + r.misses + r.sets + r.deletes
const ratio = (part: number, whole: number): number | null => (whole > 0 ? part / whole : null)

/** What the backend tells by itself of what it stores under the cache's prefix (nothing, if it cannot). */
export async function inspectStore(o: Opened): Promise<StoreFigures> {
  const adapter = (await o.cache[ENGINE]()).adapter
  return (await adapter?.inspect?.(o.cache.keyPrefix)) ?? {}
}

/** The reports of the processes that publish under the cache's prefix and are not gone (three periods late). */
export async function readReports(o: Opened): Promise<PublishedStats[]> {
  const adapter = (await o.cache[ENGINE]()).adapter
  if (adapter === undefined) return []
  if (adapter.capabilities.listKeys === false) {
    throw new CacheUnsupportedError(
      `stats --watch cannot find the processes' counters on the ${adapter.name} backend: it cannot list its keys. Use a backend that lists keys (Redis, SQLite, PostgreSQL, MySQL, the filesystem).`,
    )
  }
  const keys: string[] = []
  for await (const key of adapter.keys(`${o.cache.keyPrefix}${STATS_MARK}`)) keys.push(key)
  if (keys.length === 0) return []
  const now = Date.now()
  return (await adapter.getMany(keys)).map(parseReport).filter((r): r is PublishedStats => r !== undefined && r.at > now - 3 * r.every)
}

/** Turns successive reads of the reports into rates: each process's figures over its last period. */
export class Rates {
  /** The report before the latest, and the latest, of each cache (by its random id). */
  #seen = new Map<string, { before: PublishedStats | undefined; latest: PublishedStats }>()

  figures(reports: PublishedStats[]): { processes: ProcessFigures[]; total: Frame['total'] } {
    const live = new Set<string>()
    const processes: ProcessFigures[] = []
    let opsPerSec = 0
    let hitsPerSec = 0
    let readsPerSec = 0
    let errors = 0
    for (const r of reports) {
      const id = r.id
      live.add(id)
      const known = this.#seen.get(id)
      if (known === undefined) this.#seen.set(id, { before: undefined, latest: r })
      else if (r.at > known.latest.at) this.#seen.set(id, { before: known.latest, latest: r })
      const { before, latest } = this.#seen.get(id) as { before: PublishedStats | undefined; latest: PublishedStats }
      // Over its last period when two reports are known; else since it started.
      const base = before ?? { ...latest, at: latest.since, hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0, l1: latest.l1 === undefined ? undefined : { ...latest.l1, hits: 0, misses: 0 } }
      const seconds = Math.max(latest.at - base.at, 1) / 1000
      const perSec = (ops(latest) - ops(base)) / seconds
      const hits = latest.hits - base.hits
      const reads = hits + latest.misses - base.misses
      const figures: ProcessFigures = {
        id: latest.id,
        host: latest.host,
        pid: latest.pid,
        backend: latest.backend,
        opsPerSec: perSec,
        hitRate: ratio(hits, reads),
        errors: latest.errors,
        at: latest.at,
      }
      if (latest.l1 !== undefined) {
        const l1Hits = latest.l1.hits - (base.l1?.hits ?? 0)
        figures.l1HitRate = ratio(l1Hits, l1Hits + latest.l1.misses - (base.l1?.misses ?? 0))
      }
      processes.push(figures)
      opsPerSec += perSec
      hitsPerSec += hits / seconds
      readsPerSec += reads / seconds
      errors += latest.errors
    }
    for (const id of this.#seen.keys()) if (!live.has(id)) this.#seen.delete(id)
    processes.sort((a, b) => a.host.localeCompare(b.host) || a.pid - b.pid)
    return { processes, total: { opsPerSec, hitRate: ratio(hitsPerSec, readsPerSec), errors } }
  }
}

/** A host name as a terminal may show it: anyone who can write to the cache writes reports, escapes included. */
const printable = (text: string): string => Array.from(text, (c) => (/\p{Cc}/u.test(c) ? '?' : c)).join('')

/** `host:pid`, and the cache's id where one process publishes for several caches. */
const label = (p: ProcessFigures, all: ProcessFigures[]): string => {
  const name = `${printable(p.host)}:${p.pid}`
  return all.filter((q) => q.host === p.host && q.pid === p.pid).length > 1 ? `${name}/${printable(p.id)}` : name
}

const percent = (r: number | null | undefined): string => (r === null || r === undefined ? '-' : `${(r * 100).toFixed(1)}%`)
const rate = (n: number): string => (n >= 100 ? Math.round(n).toString() : n.toFixed(1))

/** A frame as the lines a terminal shows. */
export function showFrame(frame: Frame, heading: string): string[] {
  const lines = [heading, `entries    ${frame.entries} (counted in ${Math.round(frame.countedInMs)}ms)`]
  const { stored, bytes, expired } = frame.store
  if (stored !== undefined) lines.push(`stored     ${stored} rows${bytes === undefined ? '' : `, ${showBytes(bytes)}`}${expired === undefined ? '' : `, ${expired} expired awaiting the purge`}`)
  if (frame.processes.length === 0) {
    lines.push(
      'processes  none publishes its counters: start the app with publishStats, e.g. cache.init({ ..., publishStats: \'5s\' }) or CACHE_PUBLISH_STATS=5s',
    )
    return lines
  }
  lines.push(`processes  ${frame.processes.length} publishing`, '')
  // The memory tier's column only when some process has one.
  const l1 = frame.processes.some((p) => p.l1HitRate !== undefined)
  const rows = [
    ['process', 'ops/s', 'hit rate', 'errors', ...(l1 ? ['l1 hit rate'] : [])],
    ['all', rate(frame.total.opsPerSec), percent(frame.total.hitRate), String(frame.total.errors), ...(l1 ? [''] : [])],
    ...frame.processes.map((p, _, all) => [label(p, all), rate(p.opsPerSec), percent(p.hitRate), String(p.errors), ...(l1 ? [p.l1HitRate === undefined ? '-' : percent(p.l1HitRate)] : [])]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)))
  for (const r of rows) lines.push(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ').trimEnd())
  return lines
}
