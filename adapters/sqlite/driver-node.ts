/**
 * Node's built-in `node:sqlite` (`DatabaseSync`) behind the adapter's driver interface. Written against
 * Node 22.13's API (the first unflagged one); the newer `setReturnArrays` is used where it exists.
 */
import type { SqliteConnection, SqliteDriver, SqliteStatement } from './driver.js'

/** The part of `node:sqlite` used here (the @types/node of the Node 20 floor has none). */
export interface NodeSqliteModule {
  DatabaseSync: new (path: string) => NodeDatabase
}

interface NodeDatabase {
  prepare(sql: string): NodeStatement
  exec(sql: string): void
  close(): void
}

interface NodeStatement {
  get(...params: unknown[]): Record<string, unknown> | unknown[] | undefined
  all(...params: unknown[]): (Record<string, unknown> | unknown[])[]
  run(...params: unknown[]): { changes: number | bigint }
  /** Node 22.16 and 24+. */
  setReturnArrays?(enabled: boolean): void
}

export function nodeSqliteDriver(sqlite: NodeSqliteModule): SqliteDriver {
  return {
    name: 'node',
    wholeText: readsTextWhole(sqlite),
    open(file, busyTimeout) {
      const db = new sqlite.DatabaseSync(file)
      try {
        db.exec(`PRAGMA busy_timeout = ${Math.min(Math.round(busyTimeout), 2 ** 31 - 1)}`)
      } catch (error) {
        db.close()
        throw error
      }
      return connection(db)
    },
  }
}

let wholeText: boolean | undefined

/** Node 22's node:sqlite reads TEXT up to its first U+0000; Node 24's reads all of it. Asked once. */
function readsTextWhole(sqlite: NodeSqliteModule): boolean {
  if (wholeText === undefined) {
    const probe = new sqlite.DatabaseSync(':memory:')
    try {
      const row = probe.prepare("SELECT 'a' || char(0) || 'b' AS t").get() as { t: string }
      wholeText = row.t.length === 3
    } finally {
      probe.close()
    }
  }
  return wholeText
}

function connection(db: NodeDatabase): SqliteConnection {
  const begin = db.prepare('BEGIN IMMEDIATE')
  const commit = db.prepare('COMMIT')
  const rollback = db.prepare('ROLLBACK')
  return {
    prepare: (sql, pluck = false) => {
      const statement = db.prepare(sql)
      return pluck ? plucked(statement) : (statement as SqliteStatement)
    },
    exec: (sql) => db.exec(sql),
    immediate:
      <A extends unknown[], R>(fn: (...args: A) => R) =>
      (...args: A): R => {
        begin.run()
        try {
          const result = fn(...args)
          commit.run()
          return result
        } catch (error) {
          // SQLite may have rolled back already (on some I/O or memory errors): then there is nothing to undo.
          try {
            rollback.run()
          } catch {
            // no transaction is active
          }
          throw error
        }
      },
    close: () => db.close(),
  }
}

/** node:sqlite has no pluck: rows come back as arrays where it can, and the first column is taken. */
function plucked(statement: NodeStatement): SqliteStatement {
  let first: (row: Record<string, unknown> | unknown[]) => unknown
  if (typeof statement.setReturnArrays === 'function') {
    statement.setReturnArrays(true)
    first = (row) => (row as unknown[])[0]
  } else {
    first = (row) => {
      for (const key in row) return (row as Record<string, unknown>)[key]
      return undefined
    }
  }
  return {
    get: (...params) => {
      const row = statement.get(...params)
      return row === undefined ? undefined : first(row)
    },
    all: (...params) => statement.all(...params).map(first),
    run: (...params) => statement.run(...params) as { changes: number },
  }
}
