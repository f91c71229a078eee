/** The SQLite backend's options, their defaults, and their checks. */
import { resolve } from 'node:path'
import { parseDuration, type Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import type { SqliteDriverName } from './driver.js'

/** Options of the SQLite backend. */
export interface SqliteAdapterOptions {
  /**
   * The database file, relative to the working directory or absolute; parent folders are created as
   * needed. `':memory:'` is a private in-memory database (one process, gone on close).
   * @default '.cache/cachekit.sqlite'
   */
  path?: string
  /**
   * The table that holds the entries (letters, digits and `_`). Several caches may share one file with
   * different tables, or one table with different `keyPrefix`es.
   * @default 'cachekit'
   */
  table?: string
  /**
   * How long a write waits for another process's lock before it gives up with a `CacheBackendError`.
   * @default '5s'
   */
  busyTimeout?: Duration
  /** How often expired rows are deleted in the background; `0` turns the timer off. @default '1m' */
  purgeInterval?: Duration
  /**
   * The most rows one purge or eviction step deletes before it yields to the event loop, so that purging a
   * large table never stalls a server.
   * @default 500
   */
  purgeBatchSize?: number
  /**
   * The SQLite binding: `'better-sqlite3'` (the npm package, a native module) or `'node'` (`node:sqlite`,
   * built into Node 22.13 and later, nothing to compile). Both read and write the same files, so processes
   * on either share one cache.
   * @default better-sqlite3 where it is installed, else node:sqlite
   */
  driver?: SqliteDriverName
}

/** The defaults of {@link SqliteAdapterOptions}. */
export const SQLITE_DEFAULTS = {
  path: '.cache/cachekit.sqlite',
  table: 'cachekit',
  busyTimeout: 5_000,
  purgeInterval: 60_000,
  purgeBatchSize: 500,
} as const

/** The options once checked: durations in ms, the file absolute. */
export interface SqliteSettings {
  /** The absolute path of the file, or `':memory:'`. */
  file: string
  memory: boolean
  table: string
  busyTimeout: number
  purgeInterval: number
  batchSize: number
  driver: SqliteDriverName | undefined
  /** How the file is named in messages. */
  where: string
}

/** @throws {CacheConfigError} naming the option that is wrong. */
export function sqliteSettings(options: SqliteAdapterOptions): SqliteSettings {
  const rawPath = options.path ?? SQLITE_DEFAULTS.path
  if (typeof rawPath !== 'string' || rawPath.trim() === '') {
    throw new CacheConfigError(`Option \`path\` must be a file path or ':memory:', not ${JSON.stringify(rawPath)}.`, { option: 'path' })
  }
  const memory = rawPath === ':memory:'
  const file = memory ? ':memory:' : resolve(rawPath)
  const table = options.table ?? SQLITE_DEFAULTS.table
  if (typeof table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table) || /^sqlite_/i.test(table)) {
    throw new CacheConfigError(
      `Option \`table\` must be a plain SQL name (letters, digits and _, not starting with a digit or sqlite_), not ${JSON.stringify(table)}.`,
      { option: 'table' },
    )
  }
  return {
    file,
    memory,
    table,
    busyTimeout: duration(options.busyTimeout, SQLITE_DEFAULTS.busyTimeout, 'busyTimeout'),
    purgeInterval: duration(options.purgeInterval, SQLITE_DEFAULTS.purgeInterval, 'purgeInterval'),
    batchSize: positiveInteger(options.purgeBatchSize ?? SQLITE_DEFAULTS.purgeBatchSize, 'purgeBatchSize'),
    driver: options.driver,
    where: memory ? 'an in-memory SQLite database' : `the SQLite file ${file}`,
  }
}

function positiveInteger(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new CacheConfigError(`Option \`${option}\` must be an integer >= 1, not ${JSON.stringify(value)}.`, { option })
  }
  return value
}

function duration(value: Duration | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback
  try {
    return parseDuration(value, `\`${option}\``, { option })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
}
