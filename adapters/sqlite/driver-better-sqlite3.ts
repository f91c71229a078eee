/** better-sqlite3 behind the adapter's driver interface: its own statements, nothing wrapped. */
import type BetterSqlite3 from 'better-sqlite3'
import { CacheConfigError } from '../../src/errors.js'
import type { SqliteConnection, SqliteDriver, SqliteStatement } from './driver.js'

export type BetterSqlite3Module = typeof BetterSqlite3

export function betterSqlite3Driver(Database: BetterSqlite3Module): SqliteDriver {
  return {
    name: 'better-sqlite3',
    wholeText: true,
    open(file, busyTimeout) {
      let db: BetterSqlite3.Database
      try {
        db = new Database(file, { timeout: busyTimeout })
      } catch (cause) {
        // Its native part is loaded here, at the first database: built for another Node, or not built at all.
        if (/better_sqlite3\.node|NODE_MODULE_VERSION/.test((cause as Error).message)) {
          throw new CacheConfigError(
            `better-sqlite3 could not load its native part (${(cause as Error).message}): run \`npm rebuild better-sqlite3\`, or set \`driver: 'node'\` on Node 22.13 or later.`,
            { option: 'driver', cause },
          )
        }
        throw cause
      }
      return connection(db)
    },
  }
}

function connection(db: BetterSqlite3.Database): SqliteConnection {
  return {
    // The statements are better-sqlite3's own: the adapter's hot path calls them directly.
    prepare: (sql, pluck = false) => (pluck ? db.prepare(sql).pluck() : db.prepare(sql)) as unknown as SqliteStatement,
    exec: (sql) => void db.exec(sql),
    // better-sqlite3 prepares the BEGIN IMMEDIATE and COMMIT of a transaction function once.
    immediate: (fn) => db.transaction(fn).immediate,
    close: () => void db.close(),
  }
}
