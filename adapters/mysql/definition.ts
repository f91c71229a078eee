import type { AdapterFactory } from '../../src/adapter.js'
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import type { AdapterDefinition } from '../../src/definition.js'
import { requireDriver } from '../sql/options.js'

/**
 * A mysql2 pool of the app's (`mysql.createPool(...)`, or `mysql2/promise`'s, whose `.pool` is used), as
 * cachekit uses it. Written out so that cachekit's types do not depend on mysql2's.
 */
export interface MysqlPool {
  getConnection?(...args: never[]): unknown
  pool?: unknown
  on(event: string, listener: (...args: never[]) => void): unknown
}

/** Options of the MySQL / MariaDB backend. */
export interface MysqlAdapterOptions {
  /**
   * `mysql://user:password@host:3306/database` (or `mariadb://`), with `?ssl=true` for TLS; required unless
   * `pool` is given (pass a pool for any other connection setting).
   * Environment: `CACHE_MYSQL_URL` (or `CACHE_URL`).
   */
  url?: string
  /**
   * An existing mysql2 pool to share with the app (callback or promise API). cachekit never ends it (close it
   * yourself after `cache.close()`); its limits and session settings are yours, cachekit still bounds every
   * call by `commandTimeout`.
   */
  pool?: MysqlPool
  /**
   * The table of the entries, `name` or `database.name` (letters, digits, `_`). Created if missing, with
   * its indexes; a table of another shape is refused at `ready()`, never altered. Environment: `CACHE_SQL_TABLE`.
   * @default 'cachekit'
   */
  table?: string
  /**
   * How long `ready()` waits for the server (and a new connection may take) before it rejects with a
   * `CacheBackendError` naming the server.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * The longest any one call may take, the wait for a free connection of the pool included. cachekit's own
   * connections give the server a shorter limit, 80% of it (`max_statement_time` on MariaDB;
   * `max_execution_time` and `innodb_lock_wait_timeout` on MySQL), so a timed-out write never lands late. A call that times out fails (a miss or `false` with `failOpen`, an error for `inc`, `dec`
   * and `add`) and its connection is dropped. Inside one `getOrSet` or memoized call, statements share one deadline
   * (this value unless the cache's `operationTimeout` is set, which also bounds each statement); a write
   * sent late in such a call runs under a server limit of 80% of what is left.
   * @default '5s'
   */
  commandTimeout?: Duration
  /**
   * The most connections cachekit's own pool opens (ignored with `pool`).
   * @default 10
   */
  poolSize?: number
  /**
   * How often expired rows are deleted in the background (an unref'd timer); `0` turns it off
   * (`purgeExpired()` still works).
   * @default '1m'
   */
  purgeInterval?: Duration
  /**
   * The most rows one purge or eviction statement deletes, so that no statement holds its locks for long.
   * @default 500
   */
  purgeBatchSize?: number
}

/** `mysql://` and `mariadb://` URLs: checked here, given to mysql2 as host, port, user, password and database. */
function mysqlFromUrl(url: string): Record<string, unknown> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // No cause: the parser's TypeError holds the whole input, password included.
    throw new CacheConfigError('Invalid MySQL URL: write it as mysql://[user[:password]@]host[:port]/database (or mariadb://); percent-encode `/`, `?`, `#` and `@` in a password.', { option: 'url' })
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    throw new CacheConfigError(`A MySQL URL starts with mysql:// or mariadb://, not ${parsed.protocol}//.`, { option: 'url' })
  }
  if (parsed.hostname === '') throw new CacheConfigError('Invalid MySQL URL: it names no host, e.g. mysql://app@db:3306/app.', { option: 'url' })
  const database = parsed.pathname.replace(/^\//, '')
  if (database === '' || database.includes('/')) {
    throw new CacheConfigError('Invalid MySQL URL: its path must be the database, e.g. mysql://app@db:3306/app (use `table` for the table).', { option: 'url' })
  }
  for (const [name, value] of parsed.searchParams) {
    if (name !== 'ssl' || !['true', '1', 'required'].includes(value)) {
      throw new CacheConfigError(
        `The MySQL URL parameter ${JSON.stringify(name)} is not read: only ?ssl=true (TLS with the system's CAs) is. For other settings, pass your own mysql2 pool as \`pool\`.`,
        { option: 'url' },
      )
    }
  }
  return {}
}

/** The MySQL / MariaDB backend, as the registry knows it. */
export const mysqlDefinition: AdapterDefinition = {
  type: 'mysql',
  aliases: ['mariadb'],
  options: {
    pool: 'object',
    table: 'string',
    connectTimeout: 'duration',
    commandTimeout: 'duration',
    poolSize: 'number',
    purgeInterval: 'duration',
    purgeBatchSize: 'number',
  },
  schemes: ['mysql', 'mariadb'],
  fromUrl: mysqlFromUrl,
  env: { CACHE_MYSQL_URL: 'url', CACHE_SQL_TABLE: 'table' },
  async load() {
    // The driver first, so that a missing `mysql2` is a clear CacheConfigError: run `npm install mysql2`.
    requireDriver('mysql2', 'mysql')
    return (await import('./index.js')).mysqlAdapter as AdapterFactory<Record<string, unknown>>
  },
}
