/**
 * The one place tests get a key prefix for a backend they share with other test files, other runs of the
 * suite and other users (the Redis at REDIS_URL, the PostgreSQL database `test`): each call gives a new
 * prefix, so that a `clear()` under it can only remove the caller's own keys. A test on a store of its own
 * (a temporary folder or file, a redis-server it started) may use any prefix.
 */
import { randomBytes } from 'node:crypto'

/** Characters that a glob (Redis SCAN MATCH) or a LIKE pattern would read as more than themselves. */
const PATTERN = /[*?[\]\\%_]/

/**
 * A prefix no other caller gets: `ck-<label>:<pid>-<random>:`, ending in `:`. The label says in a key
 * listing which test wrote the key; the process id and 48 random bits keep two runs apart.
 *
 * @example const cache = createCache({ url: REDIS_URL, keyPrefix: uniquePrefix('keyv-store') })
 * @throws {Error} for a label that is empty or holds a pattern character or `:`.
 */
export function uniquePrefix(label: string): string {
  if (label === '' || label.includes(':') || PATTERN.test(label)) {
    throw new Error(`uniquePrefix: the label ${JSON.stringify(label)} must be non-empty, without ':' or pattern characters (* ? [ ] \\ % _).`)
  }
  return `ck-${label}:${process.pid}-${randomBytes(6).toString('hex')}:`
}

/** A name for a table or schema of the caller's own on a shared database: `ck_<label>_<random>`. */
export function uniqueTableName(label: string): string {
  if (!/^[a-z][a-z0-9_]*$/.test(label)) throw new Error(`uniqueTableName: the label ${JSON.stringify(label)} must be lower-case letters, digits and _.`)
  return `ck_${label}_${process.pid}_${randomBytes(6).toString('hex')}`
}
