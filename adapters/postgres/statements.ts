import type { PrefixRange } from '../sql/keys.js'
import { rangeCondition } from '../sql/ranges.js'
import { statementName, type PgQuery } from './connection.js'

const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** Rows per page of `keys()`, so that no statement stays open across an `await`. */
export const KEYS_PAGE = 1_000

/** A prepared statement: named once per text, so that each connection parses and plans it once. */
function prepared(text: string): (values: unknown[]) => PgQuery {
  const name = statementName(text)
  return (values) => ({ name, text, values, rowMode: 'array' })
}

/** The statements of one table. `$now` is the cache's clock: expiry is decided by it, as on every backend. */
export function statements(q: string) {
  const live = (n: number) => `(expires_at IS NULL OR expires_at > $${n})`
  const columns = '(key_hash, cache_key, value, is_text, expires_at)'
  const replace = 'value = excluded.value, is_text = excluded.is_text, expires_at = excluded.expires_at'
  // The stored value as integer text, or NULL: checked before the cast, so bytes never reach it.
  const integer = (col: string) =>
    `CASE WHEN length(${col}) BETWEEN 1 AND 17 AND encode(${col}, 'escape') ~ '^-?[0-9]+$' THEN encode(${col}, 'escape')::bigint END`
  return {
    get: prepared(`SELECT value, is_text FROM ${q} WHERE key_hash = $1 AND ${live(2)}`),
    getMany: prepared(`SELECT key_hash, value, is_text FROM ${q} WHERE key_hash = ANY($1::bytea[]) AND ${live(2)}`),
    has: prepared(`SELECT 1 FROM ${q} WHERE key_hash = $1 AND ${live(2)}`),
    expiresAt: prepared(`SELECT expires_at FROM ${q} WHERE key_hash = $1 AND ${live(2)}`),
    // An UPSERT rewrites the row in place; the key itself never changes for its hash.
    set: prepared(`INSERT INTO ${q} ${columns} VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_hash) DO UPDATE SET ${replace}`),
    // Duplicate keys are removed before (ON CONFLICT cannot touch one row twice in a statement).
    setMany: prepared(
      `INSERT INTO ${q} ${columns} SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::boolean[], $5::bigint[]) ` +
        `ON CONFLICT (key_hash) DO UPDATE SET ${replace}`,
    ),
    // One statement: it inserts, or overwrites a row that is expired; a live row is left as it is (no row counted).
    // ON CONFLICT locks the existing row and checks WHERE against its latest version, so concurrent sessions
    // (READ COMMITTED, PostgreSQL's default) see one winner.
    add: prepared(`INSERT INTO ${q} AS t ${columns} VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_hash) DO UPDATE SET ${replace} WHERE t.expires_at <= $6`),
    // Inserts delta (a missing key), restarts an expired one, or adds to integer text in the safe range,
    // keeping the row's expiry; anything else returns no row and is left as it is.
    increment: prepared(
      `INSERT INTO ${q} AS t ${columns} VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), true, $4) ` +
        'ON CONFLICT (key_hash) DO UPDATE SET ' +
        `value = CASE WHEN t.expires_at <= $5 THEN excluded.value ELSE convert_to((${integer('t.value')} + $3::bigint)::text, 'UTF8') END, ` +
        'is_text = true, ' +
        'expires_at = CASE WHEN t.expires_at <= $5 THEN excluded.expires_at ELSE t.expires_at END ' +
        `WHERE t.expires_at <= $5 OR (abs(${integer('t.value')}) <= ${MAX_SAFE} AND abs(${integer('t.value')} + $3::bigint) <= ${MAX_SAFE}) ` +
        "RETURNING encode(value, 'escape')",
    ),
    // Expired rows go too (they were absent already); only live ones count.
    delete: prepared(`DELETE FROM ${q} WHERE key_hash = $1 RETURNING expires_at`),
    deleteMany: prepared(`DELETE FROM ${q} WHERE key_hash = ANY($1::bytea[]) RETURNING expires_at`),
    touch: prepared(`UPDATE ${q} SET expires_at = $2 WHERE key_hash = $1 AND ${live(3)}`),
    deleteIfEquals: prepared(`DELETE FROM ${q} WHERE key_hash = $1 AND value = $2 AND ${live(3)}`),
    // Other sessions' purges skip the rows this one holds: several processes purge side by side.
    purge: prepared(
      `WITH doomed AS (SELECT key_hash FROM ${q} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) ` +
        `DELETE FROM ${q} t USING doomed WHERE t.key_hash = doomed.key_hash`,
    ),
    countUpTo: prepared(`SELECT count(*)::int FROM (SELECT 1 FROM ${q} LIMIT $1) s`),
    // Soonest expiry first (expired rows first of all), never-expiring rows last (NULLs sort last).
    evict: prepared(
      `WITH doomed AS (SELECT key_hash FROM ${q} ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) ` +
        `DELETE FROM ${q} t USING doomed WHERE t.key_hash = doomed.key_hash`,
    ),
    /** One batch of `clear(prefix)`: it reports how many rows it found, so the caller knows whether more are left. */
    clearBatch(range: PrefixRange | undefined, limit: number): PgQuery {
      const c = rangeCondition(range, (n) => `$${n}`, (len) => `substr(cache_key, 1, ${len})`, 2)
      return prepared(
        `WITH doomed AS (SELECT key_hash FROM ${q} WHERE ${c.sql} LIMIT $1), gone AS (DELETE FROM ${q} t USING doomed WHERE t.key_hash = doomed.key_hash RETURNING 1) ` +
          'SELECT (SELECT count(*)::int FROM doomed), (SELECT count(*)::int FROM gone)',
      )([limit, ...c.values])
    },
    /** `inspect(prefix)`: the rows of the range, their bytes, and how many are expired. */
    inspect(range: PrefixRange | undefined, now: number): PgQuery {
      const c = rangeCondition(range, (n) => `$${n}`, (len) => `substr(cache_key, 1, ${len})`, 2)
      return prepared(
        `SELECT count(*), coalesce(sum(octet_length(cache_key) + octet_length(value)), 0), count(*) FILTER (WHERE expires_at <= $1) FROM ${q} WHERE ${c.sql}`,
      )([now, ...c.values])
    },
    /** One page of `keys(prefix)`, after `(head, hash)` of the last key of the page before. */
    keysPage(range: PrefixRange | undefined, now: number, after: readonly [Buffer, Buffer] | undefined): PgQuery {
      const c = rangeCondition(range, (n) => `$${n}`, (len) => `substr(cache_key, 1, ${len})`, 2)
      const cursor = after === undefined ? '' : ` AND (key_head, key_hash) > ($${c.next}, $${c.next + 1})`
      return prepared(
        `SELECT cache_key, key_head, key_hash FROM ${q} WHERE ${c.sql}${cursor} AND ${live(1)} ORDER BY key_head, key_hash LIMIT ${KEYS_PAGE}`,
      )([now, ...c.values, ...(after ?? [])])
    },
  }
}

export type Statements = ReturnType<typeof statements>

