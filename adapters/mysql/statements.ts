import type { PrefixRange } from '../sql/keys.js'
import { rangeCondition } from '../sql/ranges.js'
import type { ServerFacts } from './schema.js'

const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** Rows per page of `keys()`, so that no statement stays open across an `await`. */
export const KEYS_PAGE = 1_000
/** `increment` reports its result as LAST_INSERT_ID(result + OFFSET), always > 0 (unsigned). */
export const OFFSET = 2n ** 53n
/** ... or, when the value is not an integer or the result would leave the safe range, this. */
export const REFUSED = 2n ** 60n

/**
 * The statements of one table. `?` after `now` is the cache's clock: expiry is decided by it, as on every
 * backend. Each write is one autocommit statement: INSERT ... ON DUPLICATE KEY UPDATE takes an exclusive
 * lock on the existing row and evaluates its assignments against the row's current version (not a snapshot),
 * so concurrent sessions serialize on the row at REPEATABLE READ (InnoDB's default) and READ COMMITTED alike.
 * Assignments run left to right and see the columns already assigned: `expires_at` comes last, so the others
 * read the old expiry. Where a statement's outcome is not in its counts (FOUND_ROWS makes "unchanged" and
 * "inserted" look alike), it reports it with LAST_INSERT_ID(expr), which the server returns in the OK packet.
 */
export function statements(q: string, server: ServerFacts) {
  const columns = '(key_hash, cache_key, value, is_text, expires_at)'
  const alias = server.rowAlias ? ' AS new' : ''
  const fresh = (col: string) => (server.rowAlias ? `new.${col}` : `VALUES(${col})`)
  const live = '(expires_at IS NULL OR expires_at > ?)'
  const expired = '(expires_at IS NOT NULL AND expires_at <= ?)'
  // Integer text of at most 17 characters: checked before any cast (strict mode turns a bad cast into an error).
  const isInteger = "(LENGTH(value) BETWEEN 1 AND 17 AND value REGEXP '^-?[0-9]+$')"
  const inRange = `(${isInteger} AND ABS(CAST(value AS SIGNED)) <= ${MAX_SAFE} AND ABS(CAST(value AS SIGNED) + CAST(? AS SIGNED)) <= ${MAX_SAFE})`
  const addSql =
    `INSERT INTO ${q} ${columns} VALUES (?, ?, ?, ?, ?)${alias} ON DUPLICATE KEY UPDATE ` +
    `value = IF(${expired}, ${fresh('value')}, IF(LAST_INSERT_ID(1), value, value)), ` +
    `is_text = IF(${expired}, ${fresh('is_text')}, is_text), ` +
    `expires_at = IF(${expired}, ${fresh('expires_at')}, expires_at)`
  const incrementSql =
    `INSERT INTO ${q} ${columns} VALUES (?, ?, CAST(CAST(? AS SIGNED) AS CHAR), LAST_INSERT_ID(CAST(? AS SIGNED) + ${OFFSET}) * 0 + 1, ?) ON DUPLICATE KEY UPDATE ` +
    `is_text = IF(${expired}, LAST_INSERT_ID(CAST(? AS SIGNED) + ${OFFSET}) * 0 + 1, ` +
    `IF(${inRange}, LAST_INSERT_ID(CAST(value AS SIGNED) + CAST(? AS SIGNED) + ${OFFSET}) * 0 + 1, LAST_INSERT_ID(${REFUSED}) * 0 + is_text)), ` +
    `value = IF(${expired}, CAST(CAST(? AS SIGNED) AS CHAR), IF(${inRange}, CAST(CAST(value AS SIGNED) + CAST(? AS SIGNED) AS CHAR), value)), ` +
    `expires_at = IF(${expired}, ?, expires_at)`
  const touchSql = `UPDATE ${q} SET expires_at = IF(LAST_INSERT_ID(1), ?, ?) WHERE key_hash = ? AND ${live}`
  return {
    get: `SELECT value, is_text FROM ${q} WHERE key_hash = ? AND ${live}`,
    has: `SELECT 1 FROM ${q} WHERE key_hash = ? AND ${live}`,
    expiresAt: `SELECT expires_at FROM ${q} WHERE key_hash = ? AND ${live}`,
    getMany: `SELECT key_hash, value, is_text FROM ${q} WHERE key_hash IN (?) AND ${live}`,
    set: `INSERT INTO ${q} ${columns} VALUES (?, ?, ?, ?, ?)${alias} ON DUPLICATE KEY UPDATE value = ${fresh('value')}, is_text = ${fresh('is_text')}, expires_at = ${fresh('expires_at')}`,
    setMany: `INSERT INTO ${q} ${columns} VALUES ?${alias} ON DUPLICATE KEY UPDATE value = ${fresh('value')}, is_text = ${fresh('is_text')}, expires_at = ${fresh('expires_at')}`,
    /** Inserts, or overwrites an expired row; LAST_INSERT_ID is 1 when a live row was kept. */
    add: (hash: Buffer, key: Buffer, value: Buffer, text: boolean, expiresAt: number | null, now: number) =>
      [addSql, [hash, key, value, text ? 1 : 0, expiresAt, now, now, now]] as const,
    /**
     * Inserts delta (a missing key), restarts an expired one, or adds to integer text in the safe range,
     * keeping the row's expiry. LAST_INSERT_ID is the result + OFFSET, or REFUSED (the row left as it was).
     */
    increment: (hash: Buffer, key: Buffer, delta: number, expiresAt: number | null, now: number) => {
      const d = String(delta)
      return [incrementSql, [hash, key, d, d, expiresAt, now, d, d, d, now, d, d, d, now, expiresAt]] as const
    },
    /** Expired rows stay for the purge: they were absent already. */
    delete: `DELETE FROM ${q} WHERE key_hash = ? AND ${live}`,
    deleteMany: `DELETE FROM ${q} WHERE key_hash IN (?) AND ${live}`,
    /** LAST_INSERT_ID is 1 when the row was there, changed or not (affectedRows would depend on FOUND_ROWS). */
    touch: (hash: Buffer, expiresAt: number | null, now: number) => [touchSql, [expiresAt, expiresAt, hash, now]] as const,
    deleteIfEquals: `DELETE FROM ${q} WHERE key_hash = ? AND value = ? AND ${live}`,
    purge: `DELETE FROM ${q} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`,
    countUpTo: `SELECT COUNT(*) FROM (SELECT 1 FROM ${q} LIMIT ?) s`,
    // Soonest expiry first (expired rows first of all), then rows that never expire.
    evictExpiring: `DELETE FROM ${q} WHERE expires_at IS NOT NULL ORDER BY expires_at LIMIT ?`,
    evictPermanent: `DELETE FROM ${q} WHERE expires_at IS NULL LIMIT ?`,
    /** One batch of `clear(prefix)` of at most `limit` rows. */
    clearBatch(range: PrefixRange | undefined, limit: number): readonly [string, unknown[]] {
      const c = rangeConditionFor(range)
      return [`DELETE FROM ${q} WHERE ${c.sql} LIMIT ?`, [...c.values, limit]]
    },
    /** `inspect(prefix)`: the rows of the range, their bytes, and how many are expired. */
    inspect(range: PrefixRange | undefined, now: number): readonly [string, unknown[]] {
      const c = rangeConditionFor(range)
      return [`SELECT count(*), coalesce(sum(length(cache_key) + length(value)), 0), coalesce(sum(expires_at <= ?), 0) FROM ${q} WHERE ${c.sql}`, [now, ...c.values]]
    },
    /** One page of `keys(prefix)`, after `(head, hash)` of the last key of the page before. */
    keysPage(range: PrefixRange | undefined, now: number, after: readonly [Buffer, Buffer] | undefined): readonly [string, unknown[]] {
      const c = rangeConditionFor(range)
      const cursor = after === undefined ? '' : ' AND (key_head > ? OR (key_head = ? AND key_hash > ?))'
      return [
        `SELECT cache_key, key_head, key_hash FROM ${q} WHERE ${c.sql}${cursor} AND ${live} ORDER BY key_head, key_hash LIMIT ${KEYS_PAGE}`,
        [...c.values, ...(after === undefined ? [] : [after[0], after[0], after[1]]), now],
      ]
    },
  }
}

function rangeConditionFor(range: PrefixRange | undefined) {
  return rangeCondition(range, () => '?', (len) => `LEFT(cache_key, ${len})`)
}

export type Statements = ReturnType<typeof statements>
