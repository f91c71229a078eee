import KeyvSqlite from '@keyv/sqlite'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { loadSqliteDriver, type SqliteDriverName } from '../../adapters/sqlite/index.js'
import type { BenchBackend, Contestant } from '../harness.js'
import { bentoL1, cachekit, keyvPeers, TTL_MS } from '../peers.js'
import { tempDir } from './tmp.js'

/** The part of better-sqlite3's and node:sqlite's APIs the raw contestant uses: they share it. */
interface RawDatabase {
  exec(sql: string): unknown
  prepare(sql: string): { get(...params: unknown[]): unknown; run(...params: unknown[]): unknown }
  close(): unknown
}

const requireHere = createRequire(import.meta.url)
const LABELS: Record<SqliteDriverName, string> = { 'better-sqlite3': 'better-sqlite3', node: 'node:sqlite' }

function openRaw(driver: SqliteDriverName, file: string): RawDatabase {
  if (driver === 'node') {
    const { DatabaseSync } = requireHere('node:sqlite') as { DatabaseSync: new (path: string) => RawDatabase }
    return new DatabaseSync(file)
  }
  const Database = requireHere('better-sqlite3') as new (path: string) => RawDatabase
  return new Database(file)
}

/**
 * The driver with prepared statements, WAL and synchronous=NORMAL (as cachekit's adapter): values as JSON
 * text, an expires_at column checked on read and indexed (as any table whose expired rows get purged
 * needs, and as cachekit's is), an UPSERT ... RETURNING increment.
 */
function raw(driver: SqliteDriverName, file: string): Contestant {
  const db = openRaw(driver, file)
  db.exec('PRAGMA journal_mode = WAL')
  db.exec('PRAGMA synchronous = NORMAL')
  db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER)')
  db.exec('CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL')
  const select = db.prepare('SELECT value, expires_at FROM kv WHERE key = ?')
  const upsert = db.prepare('INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at')
  const increment = db.prepare(
    "INSERT INTO kv (key, value, expires_at) VALUES (?, '1', ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value",
  )
  const get = (k: string) => {
    const row = select.get(k) as { value: string; expires_at: number | null } | undefined
    return row === undefined || (row.expires_at !== null && row.expires_at <= Date.now()) ? undefined : (JSON.parse(row.value) as unknown)
  }
  const set = (k: string, v: unknown) => upsert.run(k, JSON.stringify(v), Date.now() + TTL_MS)
  return {
    name: `raw ${LABELS[driver]}`,
    role: 'raw',
    get,
    set,
    async getOrSet(k, f) {
      const hit = get(k)
      if (hit !== undefined) return hit
      const v = await f()
      set(k, v)
      return v
    },
    inc: (k) => Number((increment.get(k, Date.now() + TTL_MS) as { value: string } | undefined)?.value),
    close: () => db.close(),
  }
}

/** The drivers that run on this Node, the default (better-sqlite3 where it runs) first. */
function drivers(): SqliteDriverName[] {
  return (['better-sqlite3', 'node'] as const).filter((d) => {
    try {
      loadSqliteDriver(d).open(':memory:', 0).close()
      return true
    } catch {
      return false
    }
  })
}

export const sqlite: BenchBackend = {
  name: 'sqlite',
  inflight: [1],
  batch: 20,
  async open() {
    const dir = tempDir('sqlite')
    const here = drivers()
    const contestants: Contestant[] = []
    // The first cachekit contestant is the one the ratios compare: the default driver.
    for (const driver of here) {
      contestants.push(...(await cachekit('sqlite', { type: 'sqlite', driver, url: `sqlite:${join(dir, `cachekit-${driver}.sqlite`)}` }, `cachekit (${LABELS[driver]})`)))
    }
    // The memory tier in front of the default driver, and for scale the memory backend and bentocache's L1.
    contestants.push(...(await cachekit('sqlite', { type: 'sqlite', url: `sqlite:${join(dir, 'cachekit-l1.sqlite')}`, l1: true }, 'cachekit + l1')))
    contestants.push(...(await cachekit('memory', { type: 'memory' }, 'cachekit memory')).map((c): Contestant => ({ ...c, role: 'peer' })))
    contestants.push(bentoL1())
    for (const driver of here) contestants.push(raw(driver, join(dir, `raw-${driver}.sqlite`)))
    contestants.push(...keyvPeers('@keyv/sqlite', (name) => new KeyvSqlite(`sqlite://${join(dir, `${name}.sqlite`)}`) as never))
    return contestants
  },
  notes: [
    'sqlite: every contestant has its own file in one temporary folder; bentocache has no SQLite driver without knex/kysely (not installed).',
    "sqlite: cachekit and the raw driver on each SQLite binding this Node runs (better-sqlite3, node:sqlite); the ratios are the default driver's.",
  ],
}
