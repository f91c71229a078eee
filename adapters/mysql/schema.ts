import { CacheConfigError } from '../../src/errors.js'
import { KEY_HEAD_BYTES } from '../sql/keys.js'
import type { TableName } from '../sql/options.js'
import type { MysqlResult } from './connection.js'

/** `` `schema`.`name` `` or `` `name` ``: names are checked to be plain (letters, digits, `_`) before they get here. */
export function qualified(table: TableName): string {
  return table.schema === undefined ? `\`${table.name}\`` : `\`${table.schema}\`.\`${table.name}\``
}

/** The columns of a cachekit table, in order: name, data type, NOT NULL, generated, primary key. */
const COLUMNS: readonly (readonly [string, string, boolean, boolean, boolean])[] = [
  ['key_hash', 'binary', true, false, true],
  ['key_head', 'varbinary', false, true, false],
  ['cache_key', 'longblob', true, false, false],
  ['value', 'longblob', true, false, false],
  ['is_text', 'tinyint', true, false, false],
  ['expires_at', 'bigint', false, false, false],
]

const show = (c: readonly [string, string, boolean, boolean, boolean]) =>
  `${c[0]} ${c[1]}${c[2] ? ' NOT NULL' : ''}${c[3] ? ' GENERATED' : ''}${c[4] ? ' PRIMARY KEY' : ''}`
const EXPECTED = COLUMNS.map(show).join(', ')

/**
 * The table, InnoDB for its row locks: the SHA-256 of the key is the primary key (so a key of any length
 * fits), the full key is kept beside it, and its first bytes (`key_head`, generated) are indexed for prefix
 * ranges; `expires_at` is absolute ms since the epoch, indexed for the purge. `IF NOT EXISTS`: processes
 * starting together create it once, and an existing table is never altered.
 */
export function createStatement(table: TableName): string {
  return (
    `CREATE TABLE IF NOT EXISTS ${qualified(table)} (` +
    'key_hash BINARY(32) NOT NULL PRIMARY KEY, ' +
    `key_head VARBINARY(${KEY_HEAD_BYTES}) AS (LEFT(cache_key, ${KEY_HEAD_BYTES})) STORED, ` +
    'cache_key LONGBLOB NOT NULL, value LONGBLOB NOT NULL, is_text TINYINT(1) NOT NULL, expires_at BIGINT NULL, ' +
    `INDEX \`${table.name}_expires_at\` (expires_at), INDEX \`${table.name}_key_head\` (key_head, key_hash)` +
    ') ENGINE=InnoDB'
  )
}

type Query = (sql: string, values: unknown[]) => Promise<MysqlResult>

/** What the server is, as the statements and the size check need to know. */
export interface ServerFacts {
  mariadb: boolean
  /** MySQL 8.0.19 and later write the new row of ON DUPLICATE KEY UPDATE as an alias (VALUES() is deprecated there). */
  rowAlias: boolean
  maxAllowedPacket: number
}

/** The server's kind, version and `max_allowed_packet`. */
export async function serverFacts(query: Query): Promise<ServerFacts> {
  const row = ((await query('SELECT VERSION(), @@max_allowed_packet', [])) as unknown as unknown[][])[0] ?? []
  const version = String(row[0] ?? '')
  const mariadb = /mariadb/i.test(version)
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map(Number)
  const rowAlias = !mariadb && (major > 8 || (major === 8 && (minor > 0 || patch >= 19)))
  return { mariadb, rowAlias, maxAllowedPacket: Number(row[1] ?? 0) }
}

/**
 * Check that the table has cachekit's shape.
 * @throws {CacheConfigError} naming the table and its columns when it is not cachekit's; nothing is changed.
 */
export async function checkShape(query: Query, table: TableName, where: string): Promise<void> {
  const rows = (await query(
    'SELECT column_name, data_type, is_nullable, COALESCE(generation_expression, \'\') <> \'\', column_key FROM information_schema.columns ' +
      'WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? ORDER BY ordinal_position',
    [table.schema ?? null, table.name],
  )) as unknown as unknown[][]
  const found = rows.map((r) => [String(r[0]), String(r[1]).toLowerCase(), r[2] === 'NO', Number(r[3]) === 1, r[4] === 'PRI'] as const)
  const shape = found.map(show).join(', ')
  if (shape !== EXPECTED) {
    throw new CacheConfigError(
      `The table ${table.shown} of ${where} is not a cachekit table: its columns are ${shape === '' ? '(none: it is not a table)' : shape}; cachekit's are ${EXPECTED}. ` +
        'cachekit did not change it: choose another `table` (it is created as needed).',
      { option: 'table' },
    )
  }
}
