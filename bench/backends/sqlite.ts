import KeyvSqlite from '@keyv/sqlite'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'
import { tempDir } from './tmp.js'

/**
 * better-sqlite3 with prepared statements, WAL and synchronous=NORMAL (as cachekit's adapter): values as
 * JSON text, an expires_at column checked on read and indexed (as any table whose expired rows get purged
 * needs, and as cachekit's is), an UPSERT ... RETURNING increment.
 */
function raw(file: string): Contestant {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER)')
  db.exec('CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL')
  const select = db.prepare<[string], { value: string; expires_at: number | null }>('SELECT value, expires_at FROM kv WHERE key = ?')
  const upsert = db.prepare('INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at')
  const increment = db.prepare<[string, number], { value: string }>(
    "INSERT INTO kv (key, value, expires_at) VALUES (?, '1', ?) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value",
  )
  const get = (k: string) => {
    const row = select.get(k)
    return row === undefined || (row.expires_at !== null && row.expires_at <= Date.now()) ? undefined : (JSON.parse(row.value) as unknown)
  }
  const set = (k: string, v: unknown) => upsert.run(k, JSON.stringify(v), Date.now() + TTL_MS)
  return {
    name: 'raw better-sqlite3',
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
    inc: (k) => Number(increment.get(k, Date.now() + TTL_MS)?.value),
    close: () => db.close(),
  }
}

export const sqlite: BenchBackend = {
  name: 'sqlite',
  inflight: [1],
  batch: 20,
  async open() {
    const dir = tempDir('sqlite')
    return [
      ...(await cachekit('sqlite', { type: 'sqlite', url: `sqlite:${join(dir, 'cachekit.sqlite')}` })),
      raw(join(dir, 'raw.sqlite')),
      ...keyvPeers('@keyv/sqlite', (name) => new KeyvSqlite(`sqlite://${join(dir, `${name}.sqlite`)}`) as never),
    ]
  },
  notes: ['sqlite: every contestant has its own file in one temporary folder; bentocache has no SQLite driver without knex/kysely (not installed).'],
}
