/**
 * The SQLite backend's invalidation channel for the memory tier: a change log that the database itself
 * writes. Triggers on the cache table append the key of every row inserted, updated or deleted to
 * `"<table>|changes"`, in the same transaction as the change, whoever makes it (a process with the tier,
 * one without, the purge, the bound). Each process with the tier reads the rows after the last one it saw,
 * on a timer every `staleness` and, when a read finds the last look older than that, before answering it:
 * so another process's write is seen at most `staleness` late (plus a read of the log, ~2 µs when empty).
 *
 * The log lists this process's own writes too, which its tier has recorded already. The adapter tells the
 * channel of each single-key write that changed a row (`wrote`), in the same synchronous step as the
 * statement, and a look skips that many rows of the key. Each such write adds exactly one row, so when
 * another process wrote the key too, the key has more rows than this process's writes and is dropped,
 * whichever came first. What a look did not match is forgotten when it ends (every write before it is in
 * what it read), so a count never outlives one look.
 *
 * The log is kept short: a process that finds it longer than {@link KEEP_ROWS} deletes the older half. A
 * reader that finds a gap after the last row it saw (it fell behind by more than that) flushes its tier.
 * Its rows are numbered by rowid (no AUTOINCREMENT, which costs a second write per row): the trim keeps the
 * newest row, so numbers only grow; a log emptied by hand starts again from 1, which a reader notices on its
 * next trim check (every 200 looks) and flushes.
 */
import type { InvalidationChannel, InvalidationListener } from '../../src/adapter.js'
import type { SqliteConnection, SqliteStatement } from './driver.js'

/** How many rows of the log are kept at least: a process that falls further behind flushes its tier. */
export const KEEP_ROWS = 100_000
/** Rows read per query. */
const PAGE = 2_000

/** The log's table: a name no cachekit table can have (`|` is refused in none, but quoted it is any name). */
export const changesTable = (table: string): string => `${table}|changes`

/** Create the log and its triggers if they are missing; one immediate transaction, so processes agree. */
export function ensureChangeLog(db: SqliteConnection, table: string): void {
  const q = `"${table}"`
  const log = `"${changesTable(table)}"`
  db.immediate(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${log} (seq INTEGER PRIMARY KEY, key TEXT NOT NULL);` +
        `CREATE TRIGGER IF NOT EXISTS "${table}|changed_on_insert" AFTER INSERT ON ${q} BEGIN INSERT INTO ${log} (key) VALUES (NEW.key); END;` +
        `CREATE TRIGGER IF NOT EXISTS "${table}|changed_on_update" AFTER UPDATE ON ${q} BEGIN INSERT INTO ${log} (key) VALUES (NEW.key); END;` +
        `CREATE TRIGGER IF NOT EXISTS "${table}|changed_on_delete" AFTER DELETE ON ${q} BEGIN INSERT INTO ${log} (key) VALUES (OLD.key); END;`,
    )
  })()
}

/**
 * Trim the log to its newest rows if it holds more than {@link KEEP_ROWS}; nothing if there is no log. Run
 * by the adapter's housekeeping too, so the log stays short while no process with the tier reads it.
 */
export function trimChangeLog(db: SqliteConnection, table: string): void {
  const name = changesTable(table)
  if (db.prepare('SELECT 1 FROM sqlite_master WHERE type = \'table\' AND name = ?', true).get(name) === undefined) return
  const log = `"${name}"`
  const span = db.prepare(`SELECT coalesce(max(seq) - min(seq), 0) FROM ${log}`, true).get() as number
  if (span <= KEEP_ROWS) return
  db.immediate(() => {
    db.prepare(`DELETE FROM ${log} WHERE seq <= (SELECT max(seq) FROM ${log}) - ?`).run(KEEP_ROWS / 2)
  })()
}

export interface ChangeLogContext {
  connection: () => SqliteConnection
  table: string
  /** Keys outside the cache's prefix are of no interest to its tier. */
  prefix: string
  staleness: number
  /** True once the adapter is closed. */
  isClosed: () => boolean
  /** Names the database in messages. */
  where: string
  /** The driver reads a TEXT with U+0000 whole; else (Node 22's node:sqlite) keys are read as bytes. */
  wholeText: boolean
}

/** A key of the log as read: text, or its UTF-8 bytes where the driver would cut the text at a NUL. */
const keyText = (key: string | Uint8Array): string => (typeof key === 'string' ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8'))

/** The channel over the change log. */
export function changeLogChannel(c: ChangeLogContext): InvalidationChannel & { check(): void; wrote(key: string): void } {
  let listener: InvalidationListener | undefined
  /** This process's single-key writes since the last look, by key: rows of the log that are its own. */
  const own = new Map<string, number>()
  let timer: NodeJS.Timeout | undefined
  let since: SqliteStatement | undefined
  let last = 0
  let lastLook = 0
  let up = false
  let looks = 0

  const open = (): void => {
    const db = c.connection()
    ensureChangeLog(db, c.table)
    const log = `"${changesTable(c.table)}"`
    since = db.prepare(`SELECT seq, ${c.wholeText ? 'key' : 'CAST(key AS BLOB) AS key'} FROM ${log} WHERE seq > ? ORDER BY seq LIMIT ${PAGE}`)
    last = db.prepare(`SELECT coalesce(max(seq), 0) FROM ${log}`, true).get() as number
  }

  const trim = (): void => {
    const db = c.connection()
    const log = `"${changesTable(c.table)}"`
    const newest = db.prepare(`SELECT coalesce(max(seq), 0) FROM ${log}`, true).get() as number
    if (newest < last) {
      // The log was emptied by hand (its numbers start again from 1): what it said is lost.
      listener?.flush()
      last = newest
    }
    trimChangeLog(db, c.table)
  }

  /** Read what changed since the last look; on an error, say the channel is down (the tier is bypassed). */
  const look = (): void => {
    if (listener === undefined || c.isClosed()) return
    lastLook = performance.now()
    try {
      if (since === undefined) {
        open()
        own.clear()
        if (up) listener.flush()
      }
      let keys: string[] = []
      for (;;) {
        const rows = (since as SqliteStatement).all(last) as { seq: number; key: string | Uint8Array }[]
        if (rows.length === 0) break
        if ((rows[0] as { seq: number }).seq !== last + 1) {
          // Rows this process had not read were trimmed away: what they said is lost.
          listener.flush()
          own.clear()
          keys = []
        } else {
          for (const row of rows) {
            const key = keyText(row.key)
            if (!key.startsWith(c.prefix)) continue
            const mine = own.get(key)
            if (mine === undefined) keys.push(key)
            else if (mine === 1) own.delete(key)
            else own.set(key, mine - 1)
          }
        }
        last = (rows[rows.length - 1] as { seq: number }).seq
        if (rows.length < PAGE) break
      }
      own.clear()
      if (keys.length > 0) listener.invalidate(keys)
      if (!up) {
        up = true
        listener.state(true, `${c.where}: reading its change log again`)
      }
    } catch (error) {
      own.clear()
      since = undefined
      up = false
      listener.state(false, `${c.where}: its change log cannot be read (${(error as Error)?.message ?? String(error)})`)
    }
  }

  /** The timer's look, and now and then a trim: never on a read's path, and a busy lock only skips it. */
  const tick = (): void => {
    look()
    if (!up || ++looks % 200 !== 0) return
    try {
      trim()
    } catch {
      // Another process holds the write lock: the next trim will do.
    }
  }

  return {
    kind: 'poll',
    start(l) {
      listener = l
      look()
      timer = setInterval(tick, c.staleness)
      timer.unref?.()
    },
    /** Called before the tier answers a read: look now if the last look is older than `staleness`. */
    check() {
      if (performance.now() - lastLook >= c.staleness) look()
    },
    /** This process's write of `key` changed one row (so added one row to the log): call right after the statement. */
    wrote(key) {
      if (listener !== undefined && key.startsWith(c.prefix)) own.set(key, (own.get(key) ?? 0) + 1)
    },
    close() {
      clearInterval(timer)
      listener = undefined
    },
  }
}
