import type { AdapterFactory } from '../../src/adapter.js'
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import type { AdapterDefinition } from '../../src/definition.js'
import { requireDriver } from '../sql/options.js'

/**
 * A pg `Pool` (or a connected pg `Client`) of the app's, as cachekit uses it: `query`, and for a pool
 * `connect` (each statement checks a connection out and back in). Written out so that cachekit's types need
 * no `@types/pg`.
 */
export interface PostgresPool {
  query(...args: never[]): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  removeListener(event: 'error', listener: (error: Error) => void): unknown
}

/** Options of the PostgreSQL backend. */
export interface PostgresAdapterOptions {
  /**
   * `postgres://user:password@host:5432/database` (or `postgresql://`), with any libpq parameter pg knows
   * (`?sslmode=require`, `?application_name=...`, which cachekit prefixes with `cachekit/`). Without `url`
   * and `pool`, pg's defaults apply: the `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE`
   * variables, else localhost:5432. Environment: `CACHE_POSTGRES_URL` (or `CACHE_URL`).
   */
  url?: string
  /**
   * An existing pg `Pool` (or a connected `Client`) to share with the app. cachekit never ends it (close it
   * yourself after `cache.close()`); its `max`, timeouts and `application_name` are yours, cachekit still
   * bounds every call by `commandTimeout`.
   */
  pool?: PostgresPool
  /**
   * The table of the entries, `name` or `schema.name` (letters, digits, `_`). Created if missing, with
   * its indexes; a table of another shape is refused at `ready()`, never altered. Environment: `CACHE_SQL_TABLE`.
   * @default 'cachekit'
   */
  table?: string
  /**
   * Create the table `UNLOGGED`: writes skip the write-ahead log (faster, no replication), and a crash of the
   * server (not a clean restart) empties it. Applies when cachekit creates the table; an existing table keeps
   * what it is (a mismatch is a warning).
   * @default false
   */
  unlogged?: boolean
  /**
   * Whether a commit on cachekit's own connections waits until the server has written it to disk. Off by
   * default (`SET synchronous_commit TO off` on each connection): a write returns without waiting for the
   * disk, so counters and locks on one hot key are several times faster, and a crash of the server (not of
   * the app, not a clean restart) may lose the writes of its last fraction of a second, never half a write.
   * `true` keeps the server's own setting. With `pool`, the app's connections are left as they are.
   * @default false
   */
  synchronousCommit?: boolean
  /**
   * How long `ready()` waits for the server (and a new connection may take) before it rejects with a
   * `CacheBackendError` naming the server.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * The longest any one call may take, the wait for a free connection of the pool included. The
   * server's `statement_timeout` on cachekit's own connections is 80% of it, so that a statement stuck on a lock
   * is given up by the server first and a timed-out write never lands late. A call that times out fails (a miss or
   * `false` with `failOpen`, an error for `inc`, `dec` and `add`) and its connection is dropped. Inside one `getOrSet` or memoized call, statements share one deadline
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

/** `postgres://` and `postgresql://` URLs: checked here, passed to pg as they are. */
function postgresFromUrl(url: string): Record<string, unknown> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // No cause: the parser's TypeError holds the whole input, password included.
    throw new CacheConfigError('Invalid PostgreSQL URL: write it as postgres://[user[:password]@]host[:port]/database[?sslmode=require]; percent-encode `/`, `?`, `#` and `@` in a password.', {
      option: 'url',
    })
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new CacheConfigError(`A PostgreSQL URL starts with postgres:// or postgresql://, not ${parsed.protocol}//.`, { option: 'url' })
  }
  if (parsed.pathname.split('/').length > 2) {
    throw new CacheConfigError('Invalid PostgreSQL URL: the path is the database name, e.g. postgres://db:5432/app (use `table` for the table).', {
      option: 'url',
    })
  }
  return {}
}

/** The PostgreSQL backend, as the registry knows it. */
export const postgresDefinition: AdapterDefinition = {
  type: 'postgres',
  aliases: ['postgresql'],
  options: {
    pool: 'object',
    table: 'string',
    unlogged: 'boolean',
    synchronousCommit: 'boolean',
    connectTimeout: 'duration',
    commandTimeout: 'duration',
    poolSize: 'number',
    purgeInterval: 'duration',
    purgeBatchSize: 'number',
  },
  schemes: ['postgres', 'postgresql'],
  fromUrl: postgresFromUrl,
  env: { CACHE_POSTGRES_URL: 'url', CACHE_SQL_TABLE: 'table' },
  async load() {
    // The driver first, so that a missing `pg` is a clear CacheConfigError: run `npm install pg`.
    requireDriver('pg', 'postgres')
    return (await import('./index.js')).postgresAdapter as AdapterFactory<Record<string, unknown>>
  },
}
