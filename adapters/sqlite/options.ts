/** The SQLite backend's defaults and the checks of its options (declared in `definition.ts`). */
import { resolve } from 'node:path'
import { durationOption, type Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import type { SqliteAdapterOptions, SqliteDriverName } from './definition.js'

export type { SqliteAdapterOptions } from './definition.js'

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
  return durationOption(value, option, { fallback })
}
