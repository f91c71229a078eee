/**
 * The shared backends the demo and CLI tests run on: every one the registry has. SQLite and the filesystem
 * get a fresh temporary location per call; Redis uses REDIS_URL (default redis://127.0.0.1:6379) under a
 * random prefix; PostgreSQL and MySQL get a table of their own per call (a purge or an eviction there is
 * table-wide, so a shared table would let another test file, or another copy of the suite, take their rows).
 * A server backend is skipped outside CI when no server answers (in CI a missing server fails the test).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findAdapter } from '../../src/registry.js'
import { uniquePrefix, uniqueTableName } from './prefix.js'
import { redisOrSkip, REDIS_URL } from './redis.js'
import { MYSQL_URL, mysqlOrSkip, mysqlQuery, pgQuery, POSTGRES_URL, postgresOrSkip } from './sql.js'

/** A fresh, empty cache: its URL, the prefix to use with it, and CACHE_* variables to set beside them. */
export interface FreshCache {
  url: string
  prefix: string
  /** E.g. CACHE_SQL_TABLE for a table of its own; pass it to the CLI or the demo with CACHE_URL. */
  env: Record<string, string>
  /** The SQL table that `env` names, when there is one. */
  table?: string
}

export interface SharedBackend {
  name: string
  fresh(): FreshCache
  /** Resolves true if the backend can be used here; false means skip (outside CI only). */
  available(): Promise<boolean>
  /** Removes what fresh() made: folders, tables. */
  cleanup(): Promise<void>
}

export { REDIS_URL }

function tempBackend(name: string, url: (dir: string) => string): SharedBackend {
  const dirs: string[] = []
  return {
    name,
    fresh() {
      const dir = mkdtempSync(join(tmpdir(), `cachekit-${name}-`))
      dirs.push(dir)
      return { url: url(dir), prefix: '', env: {} }
    },
    available: async () => true,
    async cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

const redis: SharedBackend = {
  name: 'redis',
  fresh: () => ({ url: REDIS_URL, prefix: uniquePrefix('backends'), env: {} }),
  available: () => redisOrSkip('the Redis cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)'),
  cleanup: async () => {},
}

/** A table of its own per call on a SQL server (CACHE_SQL_TABLE), under a random prefix; cleanup drops them. */
function sqlBackend(name: string, url: string, available: () => Promise<boolean>, drop: (table: string) => Promise<unknown>): SharedBackend {
  const tables: string[] = []
  return {
    name,
    fresh() {
      const table = uniqueTableName(name)
      tables.push(table)
      return { url, prefix: uniquePrefix(name), env: { CACHE_SQL_TABLE: table }, table }
    },
    available,
    async cleanup() {
      // Outside CI a missing server is a skip, and there is nothing to drop.
      for (const t of tables.splice(0)) await drop(t).catch(() => {})
    },
  }
}

/** Every shared backend the registry knows, in a stable order. */
export function sharedBackends(): SharedBackend[] {
  const all: SharedBackend[] = [
    tempBackend('sqlite', (dir) => `sqlite:${join(dir, 'cache.sqlite')}`),
    tempBackend('filesystem', (dir) => `file:${join(dir, 'cache')}`),
    redis,
    sqlBackend(
      'postgres',
      POSTGRES_URL,
      () => postgresOrSkip('the PostgreSQL cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)'),
      (t) => pgQuery(`DROP TABLE IF EXISTS ${t}`),
    ),
    sqlBackend(
      'mysql',
      MYSQL_URL,
      () => mysqlOrSkip('the MySQL cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)'),
      (t) => mysqlQuery(`DROP TABLE IF EXISTS ${t}`),
    ),
  ]
  return all.filter((b) => findAdapter(b.name) !== undefined)
}
