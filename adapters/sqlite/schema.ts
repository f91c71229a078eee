/** What makes a file a cachekit cache: its header marks, and the shape of its table. */
import { CacheConfigError } from '../../src/errors.js'
import type { SqliteConnection } from './driver.js'
import type { SqliteSettings } from './options.js'

/** Written to the database header (`PRAGMA application_id`): 'ckit'. Tells a cachekit file from any other. */
export const SQLITE_APPLICATION_ID = 0x636b6974
/** The layout of a cachekit table, in `PRAGMA user_version`; a newer file is refused, not rewritten. */
export const SCHEMA_VERSION = 1
/** The columns of a cachekit table, as `PRAGMA table_info` shows them. */
const SHAPE = 'key TEXT PK, value BLOB, expires_at INTEGER'

/**
 * Check that the file is a cachekit database and the table has cachekit's shape; create what is missing.
 * One immediate transaction, so that processes opening a new file together create it once.
 * @throws {CacheConfigError} for a file or table of another program, which is left as it is.
 */
export function checkSchema(db: SqliteConnection, { file, table, where }: SqliteSettings): void {
  const q = `"${table}"`
  db.immediate(() => {
    const appId = db.prepare('PRAGMA application_id', true).get() as number
    const objects = db.prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all() as { type: string; name: string }[]
    if (appId !== SQLITE_APPLICATION_ID) {
      if (appId !== 0 || objects.length > 0) {
        const tables = objects.filter((o) => o.type === 'table').map((o) => o.name)
        const shown = tables.length === 0 ? 'other objects' : `tables ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? ', ...' : ''}`
        throw new CacheConfigError(
          `Option \`path\`: ${file} is a SQLite database of another program (it holds ${shown}), not a cachekit cache; ` +
            'cachekit did not change it. Point `path` to a file of its own, e.g. .cache/cachekit.sqlite.',
          { option: 'path' },
        )
      }
      db.exec(`PRAGMA application_id = ${SQLITE_APPLICATION_ID}`)
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
    }
    const version = db.prepare('PRAGMA user_version', true).get() as number
    if (version > SCHEMA_VERSION) {
      throw new CacheConfigError(`${where} was written by a newer cachekit (layout ${version}; this one reads ${SCHEMA_VERSION}): upgrade cachekit, or use another \`path\`.`, { option: 'path' })
    }
    const columns = db.prepare(`PRAGMA table_info(${q})`).all() as { name: string; type: string; pk: number }[]
    if (columns.length === 0) {
      if (objects.some((o) => o.name.toLowerCase() === table.toLowerCase())) {
        throw new CacheConfigError(`${where} already holds an object named ${table} that is not a table: choose another \`table\`.`, { option: 'table' })
      }
      // `value` has no text affinity, so a string comes back as TEXT and bytes as a BLOB, byte-exact.
      db.exec(
        `CREATE TABLE ${q} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires_at INTEGER);` +
          `CREATE INDEX "${table}_expires_at" ON ${q} (expires_at) WHERE expires_at IS NOT NULL;`,
      )
      return
    }
    const shape = columns.map((c) => `${c.name} ${c.type.toUpperCase()}${c.pk ? ' PK' : ''}`).join(', ')
    if (shape !== SHAPE) {
      throw new CacheConfigError(
        `The table ${table} in ${where} is not a cachekit table (its columns are ${shape}; cachekit's are ${SHAPE}). ` +
          'cachekit did not change it: choose another `table` or `path`.',
        { option: 'table' },
      )
    }
  })()
}
