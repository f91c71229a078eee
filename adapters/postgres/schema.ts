import { CacheConfigError } from '../../src/errors.js'
import { KEY_HEAD_BYTES } from '../sql/keys.js'
import type { TableName } from '../sql/options.js'
import type { PgQuery, PgResult } from './connection.js'

/** `"schema"."name"` or `"name"`: names are checked to be plain (letters, digits, `_`) before they get here. */
export function qualified(table: TableName): string {
  return table.schema === undefined ? `"${table.name}"` : `"${table.schema}"."${table.name}"`
}

/** The columns of a cachekit table, in order: name, type, NOT NULL, generated. */
const COLUMNS: readonly (readonly [string, string, boolean, boolean])[] = [
  ['key_hash', 'bytea', true, false],
  ['key_head', 'bytea', false, true],
  ['cache_key', 'bytea', true, false],
  ['value', 'bytea', true, false],
  ['is_text', 'boolean', true, false],
  ['expires_at', 'bigint', false, false],
]

const show = (c: readonly [string, string, boolean, boolean]) => `${c[0]} ${c[1]}${c[2] ? ' NOT NULL' : ''}${c[3] ? ' GENERATED' : ''}`
const EXPECTED = `${COLUMNS.map(show).join(', ')}, PRIMARY KEY (key_hash)`

/**
 * The table: the SHA-256 of the key is the primary key (so a key of any length fits), the full key is kept
 * beside it, and its first bytes (`key_head`, generated) are indexed for prefix ranges; `expires_at` is
 * absolute ms since the epoch, indexed for the purge (NULLs last: never-expiring rows are evicted last).
 */
function createStatements(table: TableName, unlogged: boolean): string[] {
  const q = qualified(table)
  return [
    `CREATE ${unlogged ? 'UNLOGGED ' : ''}TABLE ${q} (` +
      'key_hash bytea NOT NULL PRIMARY KEY, ' +
      `key_head bytea GENERATED ALWAYS AS (substr(cache_key, 1, ${KEY_HEAD_BYTES})) STORED, ` +
      'cache_key bytea NOT NULL, value bytea NOT NULL, is_text boolean NOT NULL, expires_at bigint)',
    `CREATE INDEX "${table.name}_expires_at" ON ${q} (expires_at)`,
    `CREATE INDEX "${table.name}_key_head" ON ${q} (key_head, key_hash)`,
  ]
}

type Query = (q: PgQuery) => Promise<PgResult>

/**
 * Create the table if it is missing, under an advisory lock so that processes starting together create it
 * once, in one transaction (so that nobody sees a table without its indexes).
 * @returns whether it was created.
 */
export async function createIfMissing(query: Query, table: TableName, unlogged: boolean): Promise<boolean> {
  await query({ text: 'SELECT pg_advisory_xact_lock(hashtext($1))', values: [`cachekit:${table.shown}`] })
  const found = await query({ text: 'SELECT to_regclass($1) IS NOT NULL', values: [qualified(table)], rowMode: 'array' })
  if (found.rows[0]?.[0] === true) return false
  for (const text of createStatements(table, unlogged)) await query({ text })
  return true
}

/** What {@link checkShape} found that is worth a warning rather than a refusal. */
export interface ShapeNotes {
  unlogged: boolean
}

/**
 * Check that the table has cachekit's shape.
 * @throws {CacheConfigError} naming the table and its columns when it is not cachekit's; nothing is changed.
 */
export async function checkShape(query: Query, table: TableName, where: string): Promise<ShapeNotes> {
  const rel = await query({
    text: 'SELECT c.relkind, c.relpersistence FROM pg_class c WHERE c.oid = to_regclass($1)',
    values: [qualified(table)],
    rowMode: 'array',
  })
  const [kind, persistence] = (rel.rows[0] ?? []) as [string?, string?]
  if (kind !== 'r') {
    throw new CacheConfigError(
      `${where}: ${table.shown} is ${kind === undefined ? 'not there after creating it' : 'not a plain table (a view, a partitioned table or another object)'}; choose another \`table\`.`,
      { option: 'table' },
    )
  }
  const cols = await query({
    text:
      'SELECT a.attname, format_type(a.atttypid, NULL), a.attnotnull, a.attgenerated <> \'\' FROM pg_attribute a ' +
      'WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum',
    values: [qualified(table)],
    rowMode: 'array',
  })
  const pk = await query({
    text:
      'SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) ' +
      'WHERE i.indrelid = to_regclass($1) AND i.indisprimary',
    values: [qualified(table)],
    rowMode: 'array',
  })
  const found = cols.rows.map((r) => [String(r[0]), String(r[1]), r[2] === true, r[3] === true] as const)
  const shape = `${found.map(show).join(', ')}${pk.rows.length > 0 ? `, PRIMARY KEY (${pk.rows.map((r) => String(r[0])).join(', ')})` : ''}`
  if (shape !== EXPECTED) {
    throw new CacheConfigError(
      `The table ${table.shown} of ${where} is not a cachekit table: its columns are ${shape === '' ? '(none)' : shape}; cachekit's are ${EXPECTED}. ` +
        'cachekit did not change it: choose another `table` (it is created as needed).',
      { option: 'table' },
    )
  }
  return { unlogged: persistence === 'u' }
}
