/** The SQLite backend, as the Cache knows it before loading it: its options (the one place), URL and variable. */
import type { AdapterDefinition } from '../../src/definition.js'
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import { pathFromUrl, redactUrl, refuseUserinfo } from '../../src/url.js'

/** The SQLite bindings cachekit can use. */
export type SqliteDriverName = 'better-sqlite3' | 'node'

/** Options of the SQLite backend. */
export interface SqliteAdapterOptions {
  /**
   * The database file, relative to the working directory or absolute (parent folders are created);
   * `':memory:'` for a private in-memory database (one process, gone on close). Env `CACHE_SQLITE_PATH`.
   * @default '.cache/cachekit.sqlite'
   */
  path?: string
  /**
   * The table holding the entries (letters, digits, `_`). It is created if missing; a table of another
   * shape is refused, never altered. Several caches may share one file with different tables, or one table
   * with different `keyPrefix`es.
   * @default 'cachekit'
   */
  table?: string
  /**
   * How long a write waits for another process's lock (then retries as long again without blocking the
   * event loop) before it fails with `CacheBackendError`.
   * @default '5s'
   */
  busyTimeout?: Duration
  /**
   * How often expired rows are deleted in the background (an unref'd timer); `0` turns it off
   * (`purgeExpired()` still works).
   * @default '1m'
   */
  purgeInterval?: Duration
  /**
   * The most rows one purge or eviction step deletes before yielding to the event loop, so that purging a
   * large table never stalls a server.
   * @default 500
   */
  purgeBatchSize?: number
  /**
   * The binding: `'better-sqlite3'` (the npm package, a native module) or `'node'` (`node:sqlite`, built
   * into Node 22.13 and later, nothing to compile). Both read and write the same files, so processes on
   * either share one cache.
   * @default better-sqlite3 where it is installed, else node:sqlite
   */
  driver?: SqliteDriverName
}

/**
 * `sqlite:./app.db`, `sqlite:///var/cache/app.db` (absolute), `sqlite://relative/app.db`,
 * `sqlite::memory:`.
 */
export function sqliteOptionsFromUrl(url: string): Record<string, unknown> {
  refuseUserinfo(url, "'sqlite:./.cache/app.sqlite'")
  const path = pathFromUrl(url)
  if (path.trim() === '') {
    throw new CacheConfigError(`The URL ${JSON.stringify(redactUrl(url))} has no path: write e.g. 'sqlite:./.cache/app.sqlite' or 'sqlite::memory:'.`, { option: 'url' })
  }
  return { path }
}

/** `sqlite:./app.db` (or `type: 'sqlite'`): one file every process on the machine shares. */
export const sqliteDefinition: AdapterDefinition = {
  type: 'sqlite',
  aliases: ['sqlite3'],
  options: { path: 'string', table: 'string', busyTimeout: 'duration', purgeInterval: 'duration', purgeBatchSize: 'number', driver: 'string' },
  schemes: ['sqlite', 'sqlite3'],
  fromUrl: sqliteOptionsFromUrl,
  env: { CACHE_SQLITE_PATH: 'path' },
  // The binding (better-sqlite3 or node:sqlite) is loaded by the factory, so a missing one is a clear error at `ready()`.
  load: async () => (await import('./index.js')).sqliteAdapter,
}
