/** Every adapter of the registry that can be loaded here, with a config that reaches it: for the Keyv tests. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { ADAPTERS, type AdapterDefinition } from '../../src/registry.js'
import { uniqueTableName } from './prefix.js'
import { REDIS_URL, redisOrSkip } from './redis.js'
import { MYSQL_URL, mysqlOrSkip, mysqlQuery, pgQuery, POSTGRES_URL, postgresOrSkip } from './sql.js'

/** The SQL backends' table for these tests, dropped at the end. */
const SQL_TABLE = uniqueTableName('keyv')

/** A config reaching each backend, by the URL scheme its registry entry declares. */
const BY_SCHEME: Record<string, (def: AdapterDefinition, dir: string) => Record<string, unknown>> = {
  memory: () => ({ url: 'memory:' }),
  file: (def, dir) => ({ url: `file:${join(dir, def.type)}` }),
  sqlite: (def, dir) => ({ url: `sqlite:${join(dir, `${def.type}.sqlite`)}` }),
  redis: () => ({ url: REDIS_URL }),
  postgres: () => ({ url: POSTGRES_URL, table: SQL_TABLE }),
  mysql: () => ({ url: MYSQL_URL, table: SQL_TABLE }),
}
/** Backends without a URL of their own. */
const BY_TYPE: Record<string, () => Record<string, unknown>> = {
  keyv: () => ({ type: 'keyv', store: new Map() }),
}
/** Backends that cannot be a Keyv store, and why. */
export const EXCLUDED: Readonly<Record<string, string>> = {
  null: 'stores nothing by design, so no store test can pass',
  memcached: 'cannot list keys (capabilities.listKeys is false), which the Keyv iterator tests need; test/adapters/memcached.test.ts covers it',
}

/** A fresh config for `def` (files under `dir`), or undefined if this file has no recipe for it. */
export function configFor(def: AdapterDefinition, dir: string): Record<string, unknown> | undefined {
  const byType = BY_TYPE[def.type]
  if (byType !== undefined) return byType()
  const scheme = def.schemes?.find((s) => BY_SCHEME[s] !== undefined)
  return scheme === undefined ? undefined : BY_SCHEME[scheme]?.(def, dir)
}

export interface Backend {
  type: string
  /** A new config reaching the backend: the same storage each call. */
  config: () => Record<string, unknown>
}

/**
 * The backends to test: not excluded, loadable (a missing driver skips loudly), and with their server up
 * (servers.ts: skip with one loud line outside CI, fail under CI=true). Call at the top level of a test file.
 */
export async function loadableBackends(label: string): Promise<Backend[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-keyv-backends-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const needsRedis = (def: AdapterDefinition): boolean => def.schemes?.some((s) => s === 'redis' || s === 'rediss') === true
  const redisUp = ADAPTERS.some(needsRedis) ? await redisOrSkip(`${label} for the redis adapter`) : false
  const backends: Backend[] = []
  for (const def of ADAPTERS) {
    if (EXCLUDED[def.type] !== undefined || configFor(def, dir) === undefined) continue
    if (needsRedis(def) && !redisUp) continue
    if (def.type === 'postgres' || def.type === 'mysql') {
      if (!(await (def.type === 'postgres' ? postgresOrSkip : mysqlOrSkip)(`${label} for the ${def.type} adapter`))) continue
      afterAll(() => (def.type === 'postgres' ? pgQuery(`DROP TABLE IF EXISTS "${SQL_TABLE}"`) : mysqlQuery(`DROP TABLE IF EXISTS \`${SQL_TABLE}\``)).then(() => {}))
    }
    try {
      await def.load()
    } catch (error) {
      console.warn(`\n!!! SKIPPING ${label} for the ${def.type} adapter: it cannot be loaded here (${(error as Error).message}).\n`)
      continue
    }
    backends.push({ type: def.type, config: () => configFor(def, dir) ?? {} })
  }
  return backends
}
