/** Every statement and transaction of the adapter, prepared once per connection. */
import { addToPayload, type ExpiresAt, type Payload } from '../../src/adapter.js'
import type { SqliteConnection, SqliteStatement } from './driver.js'

/** Keys listed per query by `keys()`, so that no statement stays open across an `await`. */
export const KEYS_PAGE = 1_000
const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** Any BLOB sorts after every TEXT in SQLite: the upper bound of a key range that has none. */
const AFTER_ALL_TEXT = Buffer.from([0])

export interface Statements {
  get: SqliteStatement
  has: SqliteStatement
  set: SqliteStatement
  add: SqliteStatement
  incFast: SqliteStatement
  getRow: SqliteStatement
  setKeepExpiry: SqliteStatement
  delete: SqliteStatement
  touch: SqliteStatement
  expiresAt: SqliteStatement
  deleteIfEquals: SqliteStatement
  clearBatch: SqliteStatement
  inspect: SqliteStatement
  keysFirst: SqliteStatement
  keysNext: SqliteStatement
  purgeBatch: SqliteStatement
  rowidSpan: SqliteStatement
  count: SqliteStatement
  evictSoonest: SqliteStatement
  evictOldest: SqliteStatement
}

/** One row for `setMany`: key, value, expiry. */
export type Row = readonly [string, string | Buffer, ExpiresAt]

/** Transactions built once per connection, each run as BEGIN IMMEDIATE ... COMMIT. */
export interface Transactions {
  setMany: (rows: readonly Row[]) => void
  deleteMany: (keys: readonly string[]) => number
  incrementSlow: (key: string, delta: number, expiresAt: ExpiresAt) => number
  evict: (step: number) => number
}

/**
 * The statements over `table`. `wholeText` false (Node 22's node:sqlite, which reads TEXT only up to a
 * U+0000) reads the key and value columns as their bytes and decodes them here; the SQL is otherwise the same.
 */
export function prepareStatements(db: SqliteConnection, table: string, wholeText: boolean): Statements {
  const q = `"${table}"`
  const live = '(expires_at IS NULL OR expires_at > @now)'
  const value = (sql: (columns: string) => string) => (wholeText ? db.prepare(sql('value'), true) : decodedValue(db.prepare(sql(VALUE_AS_BYTES))))
  const keys = (sql: (column: string) => string) => (wholeText ? db.prepare(sql('key'), true) : decodedKeys(db.prepare(sql('CAST(key AS BLOB)'), true)))
  return {
    get: value((v) => `SELECT ${v} FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`),
    has: db.prepare(`SELECT 1 FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`, true),
    expiresAt: db.prepare(`SELECT expires_at FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`, true),
    // An UPSERT rewrites the row in place: fewer pages touched than REPLACE's delete and insert.
    set: db.prepare(`INSERT INTO ${q} (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`),
    // One statement, so atomic across processes: it overwrites an existing row only if that row is expired.
    add: db.prepare(
      `INSERT INTO ${q} (key, value, expires_at) VALUES (@key, @value, @expiresAt) ` +
        `ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at WHERE expires_at <= @now`,
    ),
    // Canonical integer text in the safe range is incremented in SQL; anything else (no row returned)
    // goes through `incrementSlow`, which gives the exact error or handles leading zeros.
    incFast: db.prepare(
      `INSERT INTO ${q} (key, value, expires_at) VALUES (@key, CAST(CAST(@delta AS INTEGER) AS TEXT), @expiresAt) ` +
        `ON CONFLICT (key) DO UPDATE SET ` +
        `value = CASE WHEN expires_at <= @now THEN excluded.value ELSE CAST(CAST(value AS INTEGER) + CAST(@delta AS INTEGER) AS TEXT) END, ` +
        `expires_at = CASE WHEN expires_at <= @now THEN excluded.expires_at ELSE expires_at END ` +
        `WHERE expires_at <= @now OR (typeof(value) = 'text' AND CAST(CAST(value AS INTEGER) AS TEXT) = value ` +
        `AND CAST(value AS INTEGER) BETWEEN -${MAX_SAFE} AND ${MAX_SAFE} ` +
        `AND CAST(value AS INTEGER) + CAST(@delta AS INTEGER) BETWEEN -${MAX_SAFE} AND ${MAX_SAFE}) ` +
        `RETURNING value`,
      true,
    ),
    getRow: wholeText
      ? db.prepare(`SELECT value, expires_at AS expiresAt FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`)
      : decodedRow(db.prepare(`SELECT ${VALUE_AS_BYTES}, expires_at AS expiresAt FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`)),
    setKeepExpiry: db.prepare(`UPDATE ${q} SET value = ? WHERE key = ?`),
    delete: db.prepare(`DELETE FROM ${q} WHERE key = ? RETURNING expires_at`, true),
    touch: db.prepare(`UPDATE ${q} SET expires_at = @expiresAt WHERE key = @key AND ${live}`),
    deleteIfEquals: db.prepare(`DELETE FROM ${q} WHERE key = @key AND value = @value AND ${live}`),
    clearBatch: db.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE key >= ? AND key < ? LIMIT ?)`),
    // The bytes as stored: a TEXT key or value counts its UTF-8 bytes once cast to a BLOB.
    inspect: db.prepare(
      `SELECT count(*) AS stored, coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) AS bytes, ` +
        `coalesce(sum(expires_at IS NOT NULL AND expires_at <= ?), 0) AS expired FROM ${q} WHERE key >= ? AND key < ?`,
    ),
    keysFirst: keys((k) => `SELECT ${k} FROM ${q} WHERE key >= @from AND key < @to AND ${live} ORDER BY key LIMIT ${KEYS_PAGE}`),
    keysNext: keys((k) => `SELECT ${k} FROM ${q} WHERE key > @from AND key < @to AND ${live} ORDER BY key LIMIT ${KEYS_PAGE}`),
    purgeBatch: db.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at <= ? LIMIT ?)`),
    rowidSpan: db.prepare(`SELECT coalesce(max(rowid) - min(rowid) + 1, 0) FROM ${q}`, true),
    count: db.prepare(`SELECT count(*) FROM ${q}`, true),
    // Expired rows come first in this order; with one TTL for all, the soonest to expire is the least recently written.
    evictSoonest: db.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at IS NOT NULL ORDER BY expires_at LIMIT ?)`),
    evictOldest: db.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at IS NULL ORDER BY rowid LIMIT ?)`),
  }
}

/** An `expires_at` read back means a live entry at `t`. */
export const isLive = (expiresAt: unknown, t: number): boolean => expiresAt === null || (expiresAt as number) > t

/** The transactions over the statements; `now` is read inside each, under the lock. */
export function prepareTransactions(db: SqliteConnection, s: Statements, now: () => number): Transactions {
  return {
    setMany: db.immediate((rows: readonly Row[]) => {
      for (const row of rows) s.set.run(...row)
    }),
    deleteMany: db.immediate((keys: readonly string[]) => {
      const t = now()
      let n = 0
      for (const key of keys) {
        const expiresAt = s.delete.get(key)
        if (expiresAt !== undefined && isLive(expiresAt, t)) n++
      }
      return n
    }),
    // The general case of increment, in JS with the shared wording of its errors (rolled back on throw).
    incrementSlow: db.immediate((key: string, delta: number, expiresAt: ExpiresAt) => {
      const row = s.getRow.get(key, now()) as { value: Payload; expiresAt: ExpiresAt } | undefined
      const result = addToPayload(key, row?.value, delta)
      if (row === undefined) s.set.run(key, String(result), expiresAt)
      else s.setKeepExpiry.run(String(result), key)
      return result
    }),
    evict: db.immediate((step: number) => {
      const expiring = s.evictSoonest.run(step).changes
      return expiring + (expiring < step ? s.evictOldest.run(step - expiring).changes : 0)
    }),
  }
}

/**
 * The smallest string greater than every string that starts with `prefix`, in SQLite's BINARY order (UTF-8
 * bytes, which is code point order); a BLOB when there is none.
 */
export function prefixEnd(prefix: string): string | Buffer {
  const points = Array.from(prefix, (c) => {
    const cp = c.codePointAt(0) ?? 0
    // A lone surrogate reaches SQLite as U+FFFD.
    return cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp
  })
  while (points.length > 0) {
    const last = points.pop() ?? 0
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1
      return String.fromCodePoint(...points, next)
    }
  }
  return AFTER_ALL_TEXT
}

// Reading whole text where the driver cuts TEXT at U+0000: the bytes, and whether they were TEXT.
const VALUE_AS_BYTES = "CAST(value AS BLOB) AS bytes, typeof(value) = 'text' AS text"
// A leading U+FEFF is part of the value, not a byte order mark.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true })

interface ValueBytes {
  bytes: Uint8Array
  text: number
}

const decode = (row: ValueBytes): Payload => (row.text === 1 ? utf8.decode(row.bytes) : row.bytes)

function decodedValue(statement: SqliteStatement): SqliteStatement {
  return {
    get: (...params) => {
      const row = statement.get(...params) as ValueBytes | undefined
      return row === undefined ? undefined : decode(row)
    },
    all: (...params) => (statement.all(...params) as ValueBytes[]).map(decode),
    run: (...params) => statement.run(...params),
  }
}

function decodedRow(statement: SqliteStatement): SqliteStatement {
  const row = (r: ValueBytes & { expiresAt: ExpiresAt }) => ({ value: decode(r), expiresAt: r.expiresAt })
  return {
    get: (...params) => {
      const r = statement.get(...params) as (ValueBytes & { expiresAt: ExpiresAt }) | undefined
      return r === undefined ? undefined : row(r)
    },
    all: (...params) => (statement.all(...params) as (ValueBytes & { expiresAt: ExpiresAt })[]).map(row),
    run: (...params) => statement.run(...params),
  }
}

function decodedKeys(statement: SqliteStatement): SqliteStatement {
  return {
    get: (...params) => {
      const bytes = statement.get(...params) as Uint8Array | undefined
      return bytes === undefined ? undefined : utf8.decode(bytes)
    },
    all: (...params) => (statement.all(...params) as Uint8Array[]).map((b) => utf8.decode(b)),
    run: (...params) => statement.run(...params),
  }
}
