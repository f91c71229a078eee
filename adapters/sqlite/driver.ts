/**
 * The one small interface the SQLite adapter talks to, and the choice of what stands behind it:
 * better-sqlite3 (a native module) or Node's built-in `node:sqlite` (`DatabaseSync`, unflagged from
 * Node 22.13). Both are SQLite itself, so they read and write the same files.
 */
import { createRequire } from 'node:module'
import { CacheConfigError } from '../../src/errors.js'
import { betterSqlite3Driver, type BetterSqlite3Module } from './driver-better-sqlite3.js'
import { nodeSqliteDriver, type NodeSqliteModule } from './driver-node.js'
import type { SqliteDriverName } from './definition.js'

export type { SqliteDriverName } from './definition.js'

/** The names `driver` accepts. */
export const SQLITE_DRIVERS: readonly SqliteDriverName[] = ['better-sqlite3', 'node']

/** A prepared statement. A plucked one answers `get` and `all` with the first column alone. */
export interface SqliteStatement {
  get(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
  run(...params: unknown[]): { changes: number }
}

/** An open database. */
export interface SqliteConnection {
  prepare(sql: string, pluck?: boolean): SqliteStatement
  exec(sql: string): void
  /** `fn` wrapped in BEGIN IMMEDIATE ... COMMIT, rolled back if it throws. Built once, called often. */
  immediate<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R
  close(): void
}

/** A SQLite binding. */
export interface SqliteDriver {
  readonly name: SqliteDriverName
  /**
   * Whether TEXT holding U+0000 reads back whole. Node 22's `node:sqlite` cuts it at the first U+0000
   * (it stores and binds it whole); the statements then read such columns as bytes.
   */
  readonly wholeText: boolean
  /** Open (creating if needed) the file, or `':memory:'`, with a busy timeout in ms. */
  open(file: string, busyTimeout: number): SqliteConnection
}

const requireFromHere = createRequire(import.meta.url)

/**
 * Where each binding is loaded from.
 * @internal Tests give names that are not installed, as on a machine without them.
 */
export interface DriverSources {
  betterSqlite3: string
  node: string
}

const SOURCES: DriverSources = { betterSqlite3: 'better-sqlite3', node: 'node:sqlite' }

/** `specifier` itself is not there (not a module it needs: that is a broken install, said as such). */
function isMissing(error: unknown, specifier: string): boolean {
  const e = error as NodeJS.ErrnoException | null
  const code = e?.code
  if (code === 'ERR_UNKNOWN_BUILTIN_MODULE') return true
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && e?.message.includes(`'${specifier}'`) === true
}

/** better-sqlite3 if it is installed; `undefined` if not; a config error if it is there but cannot load. */
function tryBetterSqlite3(specifier: string): SqliteDriver | undefined {
  let loaded: BetterSqlite3Module
  try {
    loaded = requireFromHere(specifier) as BetterSqlite3Module
  } catch (cause) {
    if (isMissing(cause, specifier)) return undefined
    throw new CacheConfigError(`The \`${specifier}\` package could not be loaded (${(cause as Error).message}): run \`npm rebuild ${specifier}\`, or set \`driver: 'node'\` on Node 22.13 or later.`, {
      option: 'driver',
      cause,
    })
  }
  return betterSqlite3Driver(loaded)
}

/** node:sqlite where this Node has it unflagged (22.13+, or 22.5+ with --experimental-sqlite); else `undefined`. */
function tryNodeSqlite(specifier: string): SqliteDriver | undefined {
  try {
    // require, not import(): the adapter is built synchronously, and a built-in loads the same either way.
    return nodeSqliteDriver(requireFromHere(specifier) as NodeSqliteModule)
  } catch (cause) {
    if (isMissing(cause, specifier)) return undefined
    throw cause
  }
}

const NODE_SQLITE_NEEDS = 'node:sqlite, which is built into Node 22.13 and later'

/**
 * The binding to use: the one named, or else better-sqlite3 where it is installed and node:sqlite where it is
 * not. Nothing is loaded before a SQLite cache is built.
 * @throws {CacheConfigError} naming what to install or which Node to use when the binding is missing.
 */
export function loadSqliteDriver(choice?: SqliteDriverName, sources: DriverSources = SOURCES): SqliteDriver {
  if (choice !== undefined && !SQLITE_DRIVERS.includes(choice)) {
    throw new CacheConfigError(`Option \`driver\` must be 'better-sqlite3' or 'node' (node:sqlite), not ${JSON.stringify(choice)}.`, { option: 'driver' })
  }
  if (choice === 'better-sqlite3') {
    const driver = tryBetterSqlite3(sources.betterSqlite3)
    if (driver !== undefined) return driver
    throw new CacheConfigError(
      `The sqlite backend with \`driver: 'better-sqlite3'\` needs the \`${sources.betterSqlite3}\` package, which is not installed: run \`npm install ${sources.betterSqlite3}\`` +
        (tryNodeSqlite(sources.node) === undefined ? '.' : `, or drop \`driver\` to use node:sqlite, which this Node (${process.version}) has.`),
      { option: 'driver' },
    )
  }
  if (choice === 'node') {
    const driver = tryNodeSqlite(sources.node)
    if (driver !== undefined) return driver
    throw new CacheConfigError(
      `The sqlite backend with \`driver: 'node'\` needs ${NODE_SQLITE_NEEDS}; this is Node ${process.version}${nodeSqliteFlagged()}. ` +
        `Use Node 22.13 or later, or install better-sqlite3 (\`npm install ${sources.betterSqlite3}\`) and drop \`driver\`.`,
      { option: 'driver' },
    )
  }
  const driver = tryBetterSqlite3(sources.betterSqlite3) ?? tryNodeSqlite(sources.node)
  if (driver !== undefined) return driver
  throw new CacheConfigError(
    `The sqlite backend needs better-sqlite3 or ${NODE_SQLITE_NEEDS}; this is Node ${process.version}${nodeSqliteFlagged()} without better-sqlite3. ` +
      `Either run \`npm install ${sources.betterSqlite3}\`, or use Node 22.13 or later.`,
    { option: 'type' },
  )
}

/** Node 22.5 to 22.12 have node:sqlite behind a flag. */
function nodeSqliteFlagged(): string {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  return major === 22 && minor >= 5 && minor < 13 ? ' (its node:sqlite needs --experimental-sqlite)' : ''
}

/** SQLite's primary result code of an error from either binding, e.g. `'SQLITE_BUSY'`; else `undefined`. */
export function sqliteErrorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; errcode?: unknown } | null
  // node:sqlite: code ERR_SQLITE_ERROR and the (extended) result code as a number.
  if (typeof e?.errcode === 'number') return PRIMARY_CODES[e.errcode & 0xff] ?? `SQLITE_${e.errcode & 0xff}`
  // better-sqlite3: the extended code's name, e.g. SQLITE_BUSY_SNAPSHOT.
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_')) return /^SQLITE_[A-Z]+/.exec(e.code)?.[0]
  return undefined
}

const PRIMARY_CODES: Readonly<Record<number, string>> = { 5: 'SQLITE_BUSY', 6: 'SQLITE_LOCKED', 11: 'SQLITE_CORRUPT', 14: 'SQLITE_CANTOPEN', 26: 'SQLITE_NOTADB' }

/** Another connection holds the lock: worth waiting for. */
export function isBusy(error: unknown): boolean {
  const code = sqliteErrorCode(error)
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
}
