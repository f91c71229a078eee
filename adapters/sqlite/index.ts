/**
 * The SQLite backend: one database file shared by every process on the machine that opens it, in WAL mode
 * with a busy timeout; `add` and `increment` are single atomic statements. On better-sqlite3 or Node's
 * `node:sqlite`, which read and write the same files. See the README section "SQLite (the embedded default)".
 */
import type { AdapterContext, AdapterEntry, CacheAdapter, ExpiresAt, Payload } from '../../src/adapter.js'
import { CacheBackendError } from '../../src/errors.js'
import { busyRetry } from './busy.js'
import { changeLogChannel, trimChangeLog } from './changes.js'
import { loadSqliteDriver, type SqliteConnection, type SqliteDriverName } from './driver.js'
import { housekeeping } from './housekeeping.js'
import { openDatabase } from './open.js'
import { sqliteSettings, type SqliteAdapterOptions } from './options.js'
import { isLive, KEYS_PAGE, prefixEnd, prepareStatements, prepareTransactions, type Statements, type Transactions } from './statements.js'

export { loadSqliteDriver, SQLITE_DRIVERS, type SqliteDriverName } from './driver.js'
export { SQLITE_DEFAULTS, type SqliteAdapterOptions } from './options.js'
export { SQLITE_APPLICATION_ID } from './schema.js'
export { prefixEnd } from './statements.js'

/** A SQLite adapter, which says which binding it runs on. */
export interface SqliteAdapter extends CacheAdapter {
  /** The binding in use: better-sqlite3 or `node:sqlite`. */
  readonly driver: SqliteDriverName
}

/** Zero bytes with memory behind them: Node 22's node:sqlite binds an empty array that has none as NULL. */
const NO_BYTES = Buffer.alloc(1).subarray(0, 0)

function toBindable(value: Payload): string | Buffer {
  if (typeof value === 'string') return value
  return value.byteLength === 0 ? NO_BYTES : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/**
 * A SQLite database file shared by every process on the machine that opens it.
 * @throws {CacheConfigError} for a bad option, or when neither better-sqlite3 nor node:sqlite is there.
 */
export function sqliteAdapter(options: SqliteAdapterOptions, context: AdapterContext): SqliteAdapter {
  const { now, threshold, emit } = context
  const settings = sqliteSettings(options)
  const { memory, where, batchSize } = settings
  const driver = loadSqliteDriver(settings.driver)

  let db: SqliteConnection | undefined
  let st: Statements | undefined
  let tx: Transactions | undefined
  let closed = false
  /** Why the database could not be opened: every later call says so, not merely that it is not open. */
  let openError: unknown

  const notOpen = (): never => {
    if (closed) throw new CacheBackendError(`${where} is closed.`)
    if (openError !== undefined) throw openError
    throw new CacheBackendError(`The sqlite adapter was used before \`ready()\` resolved.`)
  }
  const statements = (): Statements => st ?? notOpen()
  const transactions = (): Transactions => tx ?? notOpen()
  const isClosed = () => closed
  const attempt = busyRetry(where, settings.busyTimeout, isClosed)
  // The memory tier's change log, if some process made one, is trimmed here too: a file whose processes all
  // run without the tier now would otherwise grow it with every write.
  const after = () => {
    if (db !== undefined) trimChangeLog(db, settings.table)
  }
  const chores = housekeeping({ statements, transactions, attempt, isClosed, now, emit, threshold, batchSize, after })
  const wrote = chores.wrote
  // The memory tier's channel, once asked for: told of each single-key write that changed a row (see changes.ts).
  // With a second channel (one adapter object behind two tiers) nobody is: a write cannot say whose it was.
  let log: ReturnType<typeof changeLogChannel> | undefined
  let channels = 0

  return {
    name: 'sqlite',
    driver: driver.name,
    capabilities: { shared: !memory, atomic: true, realClock: false },

    async ready() {
      if (db !== undefined) return
      try {
        const opened = await openDatabase(settings, driver, emit, (d) => {
          const s = prepareStatements(d, settings.table, driver.wholeText)
          return { s, t: prepareTransactions(d, s, now) }
        })
        st = opened.setup.s
        tx = opened.setup.t
        db = opened.db
        openError = undefined
      } catch (error) {
        openError = error
        throw error
      }
      chores.start(settings.purgeInterval)
    },

    get(key) {
      const s = statements()
      return attempt(() => s.get.get(key, now()) as Payload | undefined)
    },
    getEntry(key) {
      const s = statements()
      return attempt(() => s.getRow.get(key, now()) as { value: Payload; expiresAt: ExpiresAt } | undefined)
    },
    invalidations(prefix, { staleness }) {
      const channel = changeLogChannel({
        connection: () => db ?? notOpen(),
        table: settings.table,
        prefix,
        staleness,
        isClosed,
        where,
        wholeText: driver.wholeText,
      })
      log = ++channels === 1 ? channel : undefined
      return channel
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
        log?.wrote(key)
      })
      if (done instanceof Promise) return done.then(() => wrote(1))
      wrote(1)
    },
    setMany(entries: readonly AdapterEntry[]) {
      const t = transactions()
      const rows = entries.map((e) => [e.key, toBindable(e.value), e.expiresAt] as const)
      const done = attempt(() => t.setMany(rows))
      if (done instanceof Promise) return done.then(() => wrote(rows.length))
      wrote(rows.length)
    },
    add(key, value, expiresAt) {
      const s = statements()
      const params = { key, value: toBindable(value), expiresAt, now: 0 }
      const added = attempt(() => {
        params.now = now()
        const inserted = s.add.run(params).changes === 1
        if (inserted) log?.wrote(key)
        return inserted
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
        const n = text === undefined ? transactions().incrementSlow(key, delta, expiresAt) : Number(text)
        log?.wrote(key)
        return n
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
        const expiresAt = s.delete.get(key) as ExpiresAt | undefined
        if (expiresAt !== undefined) log?.wrote(key)
        return expiresAt !== undefined && isLive(expiresAt, now())
      })
    },
    deleteMany(keys) {
      const t = transactions()
      return attempt(() => t.deleteMany(keys))
    },
    has(key) {
      const s = statements()
      return attempt(() => s.has.get(key, now()) !== undefined)
    },
    touch(key, expiresAt) {
      const s = statements()
      return attempt(() => {
        const touched = s.touch.run({ key, expiresAt, now: now() }).changes === 1
        if (touched) log?.wrote(key)
        return touched
      })
    },
    expiresAt(key) {
      const s = statements()
      return attempt(() => s.expiresAt.get(key, now()) as ExpiresAt | undefined)
    },
    deleteIfEquals(key, value) {
      const s = statements()
      const v = toBindable(value)
      return attempt(() => {
        const deleted = s.deleteIfEquals.run({ key, value: v, now: now() }).changes === 1
        if (deleted) log?.wrote(key)
        return deleted
      })
    },
    inspect(prefix) {
      const s = statements()
      return attempt(() => {
        const row = s.inspect.get(now(), prefix, prefixEnd(prefix)) as { stored: number | bigint; bytes: number | bigint; expired: number | bigint }
        return { stored: Number(row.stored), bytes: Number(row.bytes), expired: Number(row.expired) }
      })
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
    purgeExpired: chores.purgeAll,
    async close() {
      if (closed) return
      closed = true
      await chores.stop()
      st = undefined
      tx = undefined
      db?.close()
      db = undefined
    },
  }
}
