import { createRequire } from 'node:module'
import { durationOption } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'

/** Defaults shared by the PostgreSQL and MySQL backends (their TSDoc repeats them). */
export const SQL_DEFAULTS = {
  table: 'cachekit',
  connectTimeout: 5_000,
  commandTimeout: 5_000,
  poolSize: 10,
  purgeInterval: 60_000,
  purgeBatchSize: 500,
} as const

/** A table name: plain SQL names (letters, digits, `_`), optionally `schema.table`. */
const TABLE_RE = /^[A-Za-z_][A-Za-z0-9_]{0,47}(\.[A-Za-z_][A-Za-z0-9_]{0,47})?$/

/** The table option split into its schema (if given) and name. */
export interface TableName {
  schema: string | undefined
  name: string
  /** As given, for messages. */
  shown: string
}

/** Check the `table` option. @throws {CacheConfigError} naming it. */
export function tableOption(value: unknown): TableName {
  const table = value ?? SQL_DEFAULTS.table
  if (typeof table !== 'string' || !TABLE_RE.test(table)) {
    throw new CacheConfigError(
      `Option \`table\` must be a plain SQL name of at most 48 characters (letters, digits and _, not starting with a digit), optionally as schema.table; not ${JSON.stringify(table)}.`,
      { option: 'table' },
    )
  }
  const dot = table.indexOf('.')
  return dot < 0 ? { schema: undefined, name: table, shown: table } : { schema: table.slice(0, dot), name: table.slice(dot + 1), shown: table }
}

/** A duration option in ms; `0` is refused unless `zero` says what it means. @throws {CacheConfigError} */
export function sqlDuration(value: unknown, fallback: number, option: string, zero?: string): number {
  return durationOption(value, option, { fallback, ...(zero === undefined ? { notZero: 'a database call must never wait forever' } : {}) })
}

/** An integer option >= 1. @throws {CacheConfigError} */
export function countOption(value: unknown, fallback: number, option: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new CacheConfigError(`Option \`${option}\` must be an integer >= 1, not ${JSON.stringify(value)}.`, { option })
  }
  return value
}

const requireHere = createRequire(import.meta.url)

/**
 * Load a driver package (`pg`, `mysql2`) only when its backend is used.
 * @throws {CacheConfigError} saying which package to install when it is missing.
 */
export function requireDriver<T>(specifier: string, backend: string): T {
  try {
    return requireHere(specifier) as T
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    if (code === 'MODULE_NOT_FOUND' && (cause as Error).message.includes(specifier)) {
      throw new CacheConfigError(`The ${backend} backend needs the \`${specifier}\` package, which is not installed: run \`npm install ${specifier}\`.`, {
        option: 'type',
        cause,
      })
    }
    throw new CacheConfigError(`The \`${specifier}\` package could not be loaded (${(cause as Error).message}): reinstall it with \`npm install ${specifier}\`.`, {
      option: 'type',
      cause,
    })
  }
}
