/**
 * The shared backends the demo and CLI tests run on: every one the registry has. SQLite and the filesystem
 * get a fresh temporary location per call; Redis uses REDIS_URL (default redis://127.0.0.1:6379) under a
 * random prefix, and is skipped outside CI when no server answers (in CI a missing server fails the test).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findAdapter } from '../../src/registry.js'
import { uniquePrefix } from './prefix.js'
import { redisOrSkip, REDIS_URL } from './redis.js'
import { MYSQL_URL, mysqlOrSkip, POSTGRES_URL, postgresOrSkip } from './sql.js'

export interface SharedBackend {
  name: string
  /** A URL for a fresh, empty cache, and the prefix to use with it. */
  fresh(): { url: string; prefix: string }
  /** Resolves true if the backend can be used here; false means skip (outside CI only). */
  available(): Promise<boolean>
  cleanup(): void
}

export { REDIS_URL }

function tempBackend(name: string, url: (dir: string) => string): SharedBackend {
  const dirs: string[] = []
  return {
    name,
    fresh() {
      const dir = mkdtempSync(join(tmpdir(), `cachekit-${name}-`))
      dirs.push(dir)
      return { url: url(dir), prefix: '' }
    },
    available: async () => true,
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

const redis: SharedBackend = {
  name: 'redis',
  fresh: () => ({ url: REDIS_URL, prefix: uniquePrefix('backends') }),
  available: () => redisOrSkip('the Redis cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)'),
  cleanup: () => {},
}

/** A SQL server's default table, under a random prefix per call (rows expire with the default TTL). */
function sqlBackend(name: string, url: string, available: () => Promise<boolean>): SharedBackend {
  return { name, fresh: () => ({ url, prefix: uniquePrefix(name) }), available, cleanup: () => {} }
}

/** Every shared backend the registry knows, in a stable order. */
export function sharedBackends(): SharedBackend[] {
  const all: SharedBackend[] = [
    tempBackend('sqlite', (dir) => `sqlite:${join(dir, 'cache.sqlite')}`),
    tempBackend('filesystem', (dir) => `file:${join(dir, 'cache')}`),
    redis,
    sqlBackend('postgres', POSTGRES_URL, () => postgresOrSkip('the PostgreSQL cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)')),
    sqlBackend('mysql', MYSQL_URL, () => mysqlOrSkip('the MySQL cases of the CLI and demo tests (npx vitest run test/cli.test.ts test/demo.test.ts)')),
  ]
  return all.filter((b) => findAdapter(b.name) !== undefined)
}
