import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import {
  addToPayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../src/adapter.js'
import { parseDuration, type Duration } from '../src/duration.js'
import { CacheBackendError, CacheConfigError, CacheError } from '../src/errors.js'

/** Options of the SQLite backend. */
export interface SqliteAdapterOptions {
  /**
   * The database file, relative to the working directory or absolute; parent folders are created as
   * needed. `':memory:'` is a private in-memory database (one process, gone on close).
   * @default '.cache/cachekit.sqlite'
   */
  path?: string
  /**
   * The table that holds the entries (letters, digits and `_`). Several caches may share one file with
   * different tables, or one table with different `keyPrefix`es.
   * @default 'cachekit'
   */
  table?: string
  /**
   * How long a write waits for another process's lock before it gives up with a `CacheBackendError`.
   * @default '5s'
   */
  busyTimeout?: Duration
  /** How often expired rows are deleted in the background; `0` turns the timer off. @default '1m' */
  purgeInterval?: Duration
  /**
   * The most rows one purge or eviction step deletes before it yields to the event loop, so that purging a
   * large table never stalls a server.
   * @default 500
   */
  purgeBatchSize?: number
}

/** The defaults of {@link SqliteAdapterOptions}. */
export const SQLITE_DEFAULTS = {
  path: '.cache/cachekit.sqlite',
  table: 'cachekit',
  busyTimeout: 5_000,
  purgeInterval: 60_000,
  purgeBatchSize: 500,
} as const

/** Written to the database header (`PRAGMA application_id`): 'ckit'. Tells a cachekit file from any other. */
export const SQLITE_APPLICATION_ID = 0x636b6974
/** The layout of a cachekit table, in `PRAGMA user_version`; a newer file is refused, not rewritten. */
const SCHEMA_VERSION = 1
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1')
const MAX_SAFE = Number.MAX_SAFE_INTEGER
/** Any BLOB sorts after every TEXT in SQLite: the upper bound of a key range that has none. */
const AFTER_ALL_TEXT = Buffer.alloc(0)
/** Keys listed per query by `keys()`, so that no statement stays open across an `await`. */
const KEYS_PAGE = 1_000

type Driver = typeof BetterSqlite3
type Database = BetterSqlite3.Database
type Statement = BetterSqlite3.Statement<unknown[], unknown>

const requireFromHere = createRequire(import.meta.url)

/**
 * Load better-sqlite3 (a native module) only when a SQLite cache is built.
 * @internal `specifier` exists so a test can ask for a module that is not installed.
 * @throws {CacheConfigError} saying to run `npm install better-sqlite3` when it is missing.
 */
export function loadSqliteDriver(specifier = 'better-sqlite3'): Driver {
  try {
    return requireFromHere(specifier) as Driver
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
    throw new CacheConfigError(
      missing
        ? `The sqlite backend needs the \`${specifier}\` package, which is not installed: run \`npm install ${specifier}\`.`
        : `The \`${specifier}\` package could not be loaded (${(cause as Error).message}): run \`npm rebuild ${specifier}\`.`,
      { option: 'type', cause },
    )
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED')
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

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

function positiveInteger(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new CacheConfigError(`Option \`${option}\` must be an integer >= 1, not ${JSON.stringify(value)}.`, { option })
  }
  return value
}

function duration(value: Duration | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback
  try {
    return parseDuration(value, `\`${option}\``, { option })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
}

function toBindable(value: Payload): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

interface Statements {
  get: Statement
  has: Statement
  set: Statement
  add: Statement
  incFast: Statement
  getRow: Statement
  setKeepExpiry: Statement
  delete: Statement
  touch: Statement
  expiresAt: Statement
  deleteIfEquals: Statement
  clearBatch: Statement
  keysFirst: Statement
  keysNext: Statement
  purgeBatch: Statement
  rowidSpan: Statement
  count: Statement
  evictSoonest: Statement
  evictOldest: Statement
}

/** Transactions built once per connection (better-sqlite3 caches their BEGIN/COMMIT). */
interface Transactions {
  setMany: BetterSqlite3.Transaction<(rows: readonly (readonly [string, string | Buffer, ExpiresAt])[]) => void>
  deleteMany: BetterSqlite3.Transaction<(keys: readonly string[]) => number>
  incrementSlow: BetterSqlite3.Transaction<(key: string, delta: number, expiresAt: ExpiresAt) => number>
  evict: BetterSqlite3.Transaction<(step: number) => number>
}

/**
 * A SQLite database file shared by every process on the machine that opens it: better-sqlite3 in WAL mode
 * with a busy timeout; `add` and `increment` are single atomic statements. See the README section
 * "SQLite (the embedded default)".
 */
export function sqliteAdapter(options: SqliteAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now, threshold, emit } = context
  const rawPath = options.path ?? SQLITE_DEFAULTS.path
  if (typeof rawPath !== 'string' || rawPath.trim() === '') {
    throw new CacheConfigError(`Option \`path\` must be a file path or ':memory:', not ${JSON.stringify(rawPath)}.`, { option: 'path' })
  }
  const memory = rawPath === ':memory:'
  const file = memory ? ':memory:' : resolve(rawPath)
  const table = options.table ?? SQLITE_DEFAULTS.table
  if (typeof table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table) || /^sqlite_/i.test(table)) {
    throw new CacheConfigError(
      `Option \`table\` must be a plain SQL name (letters, digits and _, not starting with a digit or sqlite_), not ${JSON.stringify(table)}.`,
      { option: 'table' },
    )
  }
  const busyTimeout = duration(options.busyTimeout, SQLITE_DEFAULTS.busyTimeout, 'busyTimeout')
  const purgeInterval = duration(options.purgeInterval, SQLITE_DEFAULTS.purgeInterval, 'purgeInterval')
  const batchSize = positiveInteger(options.purgeBatchSize ?? SQLITE_DEFAULTS.purgeBatchSize, 'purgeBatchSize')
  // Counting rows costs a scan, so the bound is checked every 1% of `threshold` writes by this process.
  const checkEvery = Math.min(1_000, Math.max(1, Math.floor(threshold / 100)))
  const Driver = loadSqliteDriver()

  const where = memory ? 'an in-memory SQLite database' : `the SQLite file ${file}`
  let db: Database | undefined
  let st: Statements | undefined
  let tx: Transactions | undefined
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let writesSinceCheck = 0
  let background: Promise<unknown> | undefined
  /** Why the database could not be opened: every later call says so, not merely that it is not open. */
  let openError: unknown

  const notOpen = (): never => {
    if (closed) throw new CacheBackendError(`${where} is closed.`)
    if (openError !== undefined) throw openError
    throw new CacheBackendError(`The sqlite adapter was used before \`ready()\` resolved.`)
  }
  const statements = (): Statements => st ?? notOpen()
  const transactions = (): Transactions => tx ?? notOpen()

  /** Wait out SQLITE_BUSY a second time, without blocking the event loop, before calling it a failure. */
  async function retryBusy<T>(op: () => T, first: unknown): Promise<T> {
    const deadline = Date.now() + busyTimeout
    let delay = 2
    let last = first
    while (Date.now() < deadline && !closed) {
      await sleep(delay)
      delay = Math.min(delay * 2, 100)
      try {
        return op()
      } catch (error) {
        if (!isBusy(error)) throw error
        last = error
      }
    }
    if (closed) throw new CacheBackendError(`${where} was closed while a write waited for its lock; nothing was written.`, { cause: last })
    throw new CacheBackendError(
      `${where} stayed locked by another connection through two waits of \`busyTimeout\` (${busyTimeout} ms); nothing was written. ` +
        'Another process may hold a long transaction on it; raise `busyTimeout` if that is expected.',
      { cause: last },
    )
  }

  /** Run `op` now; on SQLITE_BUSY, retry it later. Synchronous on the fast path: no promise per call. */
  function attempt<T>(op: () => T): T | Promise<T> {
    try {
      return op()
    } catch (error) {
      if (isBusy(error)) return retryBusy(op, error)
      throw error
    }
  }

  function open(): Database {
    try {
      return openUnchecked()
    } catch (cause) {
      if (cause instanceof CacheError) throw cause
      throw new CacheBackendError(`Cannot open ${where}: ${(cause as Error).message}.`, { cause })
    }
  }

  function openUnchecked(): Database {
    if (!memory) {
      const stat = statSync(file, { throwIfNoEntry: false })
      if (stat?.isDirectory()) {
        throw new CacheConfigError(`Option \`path\`: ${file} is a folder; give the path of a database file inside it, e.g. ${resolve(file, 'cachekit.sqlite')}.`, { option: 'path' })
      }
      // A zero-length file is an empty database to SQLite; anything else must start with its header.
      if (stat !== undefined && stat.size > 0) {
        const head = Buffer.alloc(SQLITE_HEADER.length)
        const fd = openSync(file, 'r')
        try {
          readSync(fd, head, 0, head.length, 0)
        } finally {
          closeSync(fd)
        }
        if (!head.equals(SQLITE_HEADER)) {
          throw new CacheConfigError(
            `Option \`path\`: ${file} is not a SQLite database, so it is not a cachekit cache; it was left as it is. ` +
              'Point `path` to a file of its own (it is created as needed), or remove this one if it is yours to remove.',
            { option: 'path' },
          )
        }
      }
      try {
        // Cached data may be private: folders cachekit creates are 0700 and a new file 0600 (SQLite gives
        // its -wal and -shm files the mode of the database). An existing file keeps its mode.
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
        if (stat === undefined) closeSync(openSync(file, 'a', 0o600))
      } catch (cause) {
        throw new CacheBackendError(`Cannot create ${where}: ${(cause as Error).message}.`, { cause })
      }
    }
    try {
      return new Driver(file, { timeout: busyTimeout })
    } catch (cause) {
      if (/better_sqlite3\.node|NODE_MODULE_VERSION/.test((cause as Error).message)) {
        throw new CacheConfigError(`better-sqlite3 could not load its native part (${(cause as Error).message}): run \`npm rebuild better-sqlite3\`.`, { option: 'type', cause })
      }
      throw new CacheBackendError(`Cannot open ${where}: ${(cause as Error).message}.`, { cause })
    }
  }

  const q = `"${table}"`

  /** Check that the file is a cachekit database and the table has cachekit's shape; create what is missing. */
  function checkSchema(d: Database): void {
    d.transaction(() => {
      const appId = d.pragma('application_id', { simple: true }) as number
      const objects = d.prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all() as { type: string; name: string }[]
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
        d.pragma(`application_id = ${SQLITE_APPLICATION_ID}`)
        d.pragma(`user_version = ${SCHEMA_VERSION}`)
      }
      const version = d.pragma('user_version', { simple: true }) as number
      if (version > SCHEMA_VERSION) {
        throw new CacheConfigError(`${where} was written by a newer cachekit (layout ${version}; this one reads ${SCHEMA_VERSION}): upgrade cachekit, or use another \`path\`.`, { option: 'path' })
      }
      const columns = d.pragma(`table_info(${q})`) as { name: string; type: string; pk: number }[]
      if (columns.length === 0) {
        if (objects.some((o) => o.name.toLowerCase() === table.toLowerCase())) {
          throw new CacheConfigError(`${where} already holds an object named ${table} that is not a table: choose another \`table\`.`, { option: 'table' })
        }
        // `value` has no text affinity, so a string comes back as TEXT and bytes as a BLOB, byte-exact.
        d.exec(
          `CREATE TABLE ${q} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires_at INTEGER);` +
            `CREATE INDEX "${table}_expires_at" ON ${q} (expires_at) WHERE expires_at IS NOT NULL;`,
        )
        return
      }
      const shape = columns.map((c) => `${c.name} ${c.type.toUpperCase()}${c.pk ? ' PK' : ''}`).join(', ')
      if (shape !== 'key TEXT PK, value BLOB, expires_at INTEGER') {
        throw new CacheConfigError(
          `The table ${table} in ${where} is not a cachekit table (its columns are ${shape}; cachekit's are key TEXT PK, value BLOB, expires_at INTEGER). ` +
            'cachekit did not change it: choose another `table` or `path`.',
          { option: 'table' },
        )
      }
    }).immediate()
  }

  function prepare(d: Database): Statements {
    const live = '(expires_at IS NULL OR expires_at > @now)'
    return {
      get: d.prepare(`SELECT value FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`).pluck(),
      has: d.prepare(`SELECT 1 FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`).pluck(),
      expiresAt: d.prepare(`SELECT expires_at FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`).pluck(),
      // An UPSERT rewrites the row in place: fewer pages touched than REPLACE's delete and insert.
      set: d.prepare(
        `INSERT INTO ${q} (key, value, expires_at) VALUES (?, ?, ?) ` +
          `ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      ),
      // One statement, so atomic across processes: it overwrites an existing row only if that row is expired.
      add: d.prepare(
        `INSERT INTO ${q} (key, value, expires_at) VALUES (@key, @value, @expiresAt) ` +
          `ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at WHERE expires_at <= @now`,
      ),
      // Canonical integer text in the safe range is incremented in SQL; anything else (no row returned)
      // goes through `incrementSlow`, which gives the exact error or handles leading zeros.
      incFast: d.prepare(
        `INSERT INTO ${q} (key, value, expires_at) VALUES (@key, CAST(CAST(@delta AS INTEGER) AS TEXT), @expiresAt) ` +
          `ON CONFLICT (key) DO UPDATE SET ` +
          `value = CASE WHEN expires_at <= @now THEN excluded.value ELSE CAST(CAST(value AS INTEGER) + CAST(@delta AS INTEGER) AS TEXT) END, ` +
          `expires_at = CASE WHEN expires_at <= @now THEN excluded.expires_at ELSE expires_at END ` +
          `WHERE expires_at <= @now OR (typeof(value) = 'text' AND CAST(CAST(value AS INTEGER) AS TEXT) = value ` +
          `AND CAST(value AS INTEGER) BETWEEN -${MAX_SAFE} AND ${MAX_SAFE} ` +
          `AND CAST(value AS INTEGER) + CAST(@delta AS INTEGER) BETWEEN -${MAX_SAFE} AND ${MAX_SAFE}) ` +
          `RETURNING value`,
      ).pluck(),
      getRow: d.prepare(`SELECT value, expires_at AS expiresAt FROM ${q} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)`),
      setKeepExpiry: d.prepare(`UPDATE ${q} SET value = ? WHERE key = ?`),
      delete: d.prepare(`DELETE FROM ${q} WHERE key = ? RETURNING expires_at`).pluck(),
      touch: d.prepare(`UPDATE ${q} SET expires_at = @expiresAt WHERE key = @key AND ${live}`),
      deleteIfEquals: d.prepare(`DELETE FROM ${q} WHERE key = @key AND value = @value AND ${live}`),
      clearBatch: d.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE key >= ? AND key < ? LIMIT ?)`),
      keysFirst: d.prepare(`SELECT key FROM ${q} WHERE key >= @from AND key < @to AND ${live} ORDER BY key LIMIT ${KEYS_PAGE}`).pluck(),
      keysNext: d.prepare(`SELECT key FROM ${q} WHERE key > @from AND key < @to AND ${live} ORDER BY key LIMIT ${KEYS_PAGE}`).pluck(),
      purgeBatch: d.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at <= ? LIMIT ?)`),
      rowidSpan: d.prepare(`SELECT coalesce(max(rowid) - min(rowid) + 1, 0) FROM ${q}`).pluck(),
      count: d.prepare(`SELECT count(*) FROM ${q}`).pluck(),
      // Expired rows come first in this order; with one TTL for all, the soonest to expire is the least recently written.
      evictSoonest: d.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at IS NOT NULL ORDER BY expires_at LIMIT ?)`),
      evictOldest: d.prepare(`DELETE FROM ${q} WHERE rowid IN (SELECT rowid FROM ${q} WHERE expires_at IS NULL ORDER BY rowid LIMIT ?)`),
    }
  }

  const isLive = (expiresAt: unknown, t: number) => expiresAt === null || (expiresAt as number) > t

  /**
   * Keep the table at `threshold` rows. Rows leave in order of expiry (expired ones first; with one TTL for
   * all, the least recently written), then rows that never expire, the first inserted first. Runs every
   * `checkEvery` writes of this process and on the purge timer, deleting at most `purgeBatchSize` rows per
   * step. The rowid span is an upper bound of the row count that costs one index lookup, so the count
   * itself (a scan) is only taken when the table may be over.
   */
  function enforceBound(): number {
    const s = statements()
    if (threshold === 0 || (s.rowidSpan.get() as number) <= threshold) return 0
    const excess = (s.count.get() as number) - threshold
    if (excess <= 0) return 0
    const removed = transactions().evict.immediate(Math.min(excess, batchSize))
    // More to remove than one step (a large setMany, a lowered threshold): go on in the background.
    if (removed < excess) scheduleBackground()
    return removed
  }

  /** Purge, then trim to `threshold`, step by step, unless a pass is already under way. */
  function scheduleBackground(): void {
    if (background !== undefined || closed) return
    background = backgroundPass()
      .catch((error: unknown) => emit({ type: 'error', error: error as Error }))
      .finally(() => (background = undefined))
  }

  function wrote(n: number): void {
    if (threshold === 0) return
    writesSinceCheck += n
    if (writesSinceCheck < checkEvery) return
    writesSinceCheck = 0
    try {
      enforceBound()
    } catch (error) {
      // The write itself succeeded; a failed eviction is retried at the next check.
      writesSinceCheck = checkEvery
      if (!isBusy(error)) emit({ type: 'error', error: error as Error })
    }
  }

  function transact(d: Database, s: Statements): Transactions {
    return {
      setMany: d.transaction((rows) => {
        for (const row of rows) s.set.run(...row)
      }),
      deleteMany: d.transaction((keys) => {
        const t = now()
        let n = 0
        for (const key of keys) {
          const expiresAt = s.delete.get(key)
          if (expiresAt !== undefined && isLive(expiresAt, t)) n++
        }
        return n
      }),
      // The general case of increment, in JS with the shared wording of its errors (rolled back on throw).
      incrementSlow: d.transaction((key, delta, expiresAt) => {
        const row = s.getRow.get(key, now()) as { value: Payload; expiresAt: ExpiresAt } | undefined
        const result = addToPayload(key, row?.value, delta)
        if (row === undefined) s.set.run(key, String(result), expiresAt)
        else s.setKeepExpiry.run(String(result), key)
        return result
      }),
      evict: d.transaction((step) => {
        const expiring = s.evictSoonest.run(step).changes
        return expiring + (expiring < step ? s.evictOldest.run(step - expiring).changes : 0)
      }),
    }
  }

  /** Delete expired rows in batches, yielding to the event loop between them. */
  async function purgeAll(): Promise<number> {
    let total = 0
    while (!closed) {
      const n = await attempt(() => statements().purgeBatch.run(now(), batchSize).changes)
      total += n
      if (n < batchSize) break
      await new Promise((r) => setImmediate(r))
    }
    return total
  }

  async function backgroundPass(): Promise<void> {
    await purgeAll()
    while (!closed && threshold > 0 && (await attempt(enforceBound)) > 0) await new Promise((r) => setImmediate(r))
  }

  /** Open the file, check it is cachekit's (or new), and prepare the statements. */
  const openDatabase = async (): Promise<void> => {
    const opened = open()
    try {
      const deadline = Date.now() + busyTimeout
      for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
        try {
          checkSchema(opened)
          if (!memory) {
            // Persistent in the file; every process then reads while one writes.
            const mode = opened.pragma('journal_mode = WAL', { simple: true })
            if (mode !== 'wal') emit({ type: 'warning', message: `${where} could not use WAL (journal mode is ${String(mode)}): readers and writers will block each other.` })
          }
          break
        } catch (error) {
          if (!isBusy(error) || Date.now() > deadline) throw error
          await sleep(delay)
        }
      }
      // Durable across a process crash; a power loss may lose the last commits, which a cache can afford.
      opened.pragma('synchronous = NORMAL')
      st = prepare(opened)
      tx = transact(opened, st)
    } catch (error) {
      opened.close()
      if (error instanceof CacheError) throw error
      const code = (error as { code?: string }).code
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new CacheConfigError(`Option \`path\`: ${file} is not a usable SQLite database (${(error as Error).message}); it was left as it is. Point \`path\` to a file of its own.`, { option: 'path', cause: error })
      }
      throw new CacheBackendError(`Cannot use ${where}: ${(error as Error).message}.`, { cause: error })
    }
    db = opened
    if (purgeInterval > 0) {
      timer = setInterval(scheduleBackground, purgeInterval)
      timer.unref()
    }
  }

  return {
    name: 'sqlite',
    capabilities: { shared: !memory, atomic: true, realClock: false },

    async ready() {
      if (db !== undefined) return
      try {
        await openDatabase()
        openError = undefined
      } catch (error) {
        openError = error
        throw error
      }
    },

    get(key) {
      const s = statements()
      return attempt(() => s.get.get(key, now()) as Payload | undefined)
    },
    getMany(keys) {
      const s = statements()
      return attempt(() => {
        const t = now()
        return keys.map((key) => s.get.get(key, t) as Payload | undefined)
      })
    },
    set(key, value, expiresAt) {
      const s = statements()
      const v = toBindable(value)
      const done = attempt(() => {
        s.set.run(key, v, expiresAt)
      })
      if (done instanceof Promise) return done.then(() => wrote(1))
      wrote(1)
    },
    setMany(entries: readonly AdapterEntry[]) {
      const t = transactions()
      const rows = entries.map((e) => [e.key, toBindable(e.value), e.expiresAt] as const)
      const done = attempt(() => t.setMany.immediate(rows))
      if (done instanceof Promise) return done.then(() => wrote(rows.length))
      wrote(rows.length)
    },
    add(key, value, expiresAt) {
      const s = statements()
      const params = { key, value: toBindable(value), expiresAt, now: 0 }
      const added = attempt(() => {
        params.now = now()
        return s.add.run(params).changes === 1
      })
      if (added instanceof Promise) {
        return added.then((a) => {
          if (a) wrote(1)
          return a
        })
      }
      if (added) wrote(1)
      return added
    },
    increment(key, delta, expiresAt) {
      const s = statements()
      const params = { key, delta, expiresAt, now: 0 }
      const result = attempt(() => {
        params.now = now()
        const text = s.incFast.get(params) as string | undefined
        return text === undefined ? transactions().incrementSlow.immediate(key, delta, expiresAt) : Number(text)
      })
      if (result instanceof Promise) {
        return result.then((r) => {
          wrote(1)
          return r
        })
      }
      wrote(1)
      return result
    },
    delete(key) {
      const s = statements()
      return attempt(() => {
        const expiresAt = s.delete.get(key)
        return expiresAt !== undefined && isLive(expiresAt, now())
      })
    },
    deleteMany(keys) {
      const t = transactions()
      return attempt(() => t.deleteMany.immediate(keys))
    },
    has(key) {
      const s = statements()
      return attempt(() => s.has.get(key, now()) !== undefined)
    },
    touch(key, expiresAt) {
      const s = statements()
      return attempt(() => s.touch.run({ key, expiresAt, now: now() }).changes === 1)
    },
    expiresAt(key) {
      const s = statements()
      return attempt(() => s.expiresAt.get(key, now()) as ExpiresAt | undefined)
    },
    deleteIfEquals(key, value) {
      const s = statements()
      return attempt(() => s.deleteIfEquals.run({ key, value, now: now() }).changes === 1)
    },
    async clear(prefix) {
      const s = statements()
      const end = prefixEnd(prefix)
      while (!closed && (await attempt(() => s.clearBatch.run(prefix, end, batchSize).changes)) === batchSize) {
        await new Promise((r) => setImmediate(r))
      }
    },
    async *keys(prefix) {
      const s = statements()
      const to = prefixEnd(prefix)
      let page = (await attempt(() => s.keysFirst.all({ from: prefix, to, now: now() }))) as string[]
      while (page.length > 0) {
        yield* page
        const from = page[page.length - 1]
        if (page.length < KEYS_PAGE || closed) return
        page = (await attempt(() => s.keysNext.all({ from, to, now: now() }))) as string[]
      }
    },
    purgeExpired: purgeAll,
    async close() {
      if (closed) return
      closed = true
      clearInterval(timer)
      await background
      st = undefined
      tx = undefined
      db?.close()
      db = undefined
    },
  }
}
