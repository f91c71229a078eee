import { addToPayload, type AdapterContext, type AdapterEntry, type CacheAdapter, type ExpiresAt, type Payload } from '../../src/adapter.js'
import { CacheBackendError, CacheConfigError } from '../../src/errors.js'
import { Housekeeping } from '../sql/housekeeping.js'
import { keyHash, prefixRange, storedKey } from '../sql/keys.js'
import { countOption, sqlDuration, SQL_DEFAULTS, tableOption } from '../sql/options.js'
import { payloadOf, storedPayload } from '../sql/payload.js'
import { reasonOf } from '../sql/secrets.js'
import { isConnectionError, PgConnection, type PgQuery, type PgResult } from './connection.js'
import type { PostgresAdapterOptions } from './definition.js'
import { checkShape, createIfMissing, qualified } from './schema.js'
import { KEYS_PAGE, statements } from './statements.js'

export type { PostgresAdapterOptions, PostgresPool } from './definition.js'

/** The defaults of {@link PostgresAdapterOptions}. */
export const POSTGRES_DEFAULTS = { ...SQL_DEFAULTS, unlogged: false, synchronousCommit: false } as const

/** Entries per statement of `setMany`. */
const SET_MANY_CHUNK = 500
/** After a failed set-up, calls fail at once for this long instead of each waiting for the server again. */
const DOWN_MS = 1_000

const isLive = (expiresAt: unknown, now: number) => expiresAt === null || Number(expiresAt) > now

/**
 * PostgreSQL: one table per config, shared by every process and machine that reaches the database. `add`,
 * `increment` and `deleteIfEquals` are single statements (`INSERT ... ON CONFLICT ... DO UPDATE ... WHERE
 * ... RETURNING`), atomic across sessions at PostgreSQL's default READ COMMITTED. Expiry is absolute ms by the
 * cache's clock, decided in the statements; expired rows are purged in batches.
 *
 * @throws {CacheConfigError} for an invalid option.
 */
export function postgresAdapter(options: PostgresAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now, threshold, emit } = context
  const table = tableOption(options.table)
  if (options.unlogged !== undefined && typeof options.unlogged !== 'boolean') {
    throw new CacheConfigError(`Option \`unlogged\` must be true or false, not ${JSON.stringify(options.unlogged)}.`, { option: 'unlogged' })
  }
  const unlogged = options.unlogged ?? POSTGRES_DEFAULTS.unlogged
  if (options.synchronousCommit !== undefined && typeof options.synchronousCommit !== 'boolean') {
    throw new CacheConfigError(`Option \`synchronousCommit\` must be true or false, not ${JSON.stringify(options.synchronousCommit)}.`, {
      option: 'synchronousCommit',
    })
  }
  const synchronousCommit = options.synchronousCommit ?? POSTGRES_DEFAULTS.synchronousCommit
  const connectTimeout = sqlDuration(options.connectTimeout, SQL_DEFAULTS.connectTimeout, 'connectTimeout')
  // A call's deadline (`operationTimeout`) bounds each of its statements too.
  const ownTimeout = sqlDuration(options.commandTimeout, SQL_DEFAULTS.commandTimeout, 'commandTimeout')
  const commandTimeout = Math.min(ownTimeout, context.operationTimeout ?? Infinity)
  const timeoutName = commandTimeout < ownTimeout ? 'operationTimeout' : 'commandTimeout'
  const purgeInterval = sqlDuration(options.purgeInterval, SQL_DEFAULTS.purgeInterval, 'purgeInterval', 'no background purge')
  const batchSize = countOption(options.purgeBatchSize, SQL_DEFAULTS.purgeBatchSize, 'purgeBatchSize')
  const poolSize = countOption(options.poolSize, SQL_DEFAULTS.poolSize, 'poolSize')
  if (options.url !== undefined && typeof options.url !== 'string') {
    throw new CacheConfigError('Option `url` must be a string such as postgres://user@host:5432/database.', { option: 'url' })
  }

  const conn = new PgConnection({
    url: options.url,
    pool: options.pool,
    poolSize,
    connectTimeout,
    commandTimeout,
    timeoutName,
    synchronousCommit,
    onLost: (error) => emit({ type: 'error', error }),
  })
  const where = conn.where
  const st = statements(qualified(table))
  let closed = false
  let ready = false
  let setUp: Promise<void> | undefined
  let down: { until: number; error: Error } | undefined

  const run = (query: PgQuery, idempotent: boolean, timeout?: number, write = false): Promise<PgResult> => conn.run(query, idempotent, false, timeout, write)

  const housekeeping = new Housekeeping(
    {
      purge: async (t, limit) => (await run(st.purge([t, limit]), true)).rowCount ?? 0,
      countUpTo: async (limit) => Number((await run(st.countUpTo([limit]), true)).rows[0]?.[0] ?? 0),
      evict: async (limit) => (await run(st.evict([limit]), true)).rowCount ?? 0,
    },
    { now, threshold, batchSize, interval: purgeInterval, emit },
  )

  /** Why set-up failed, as `ready()` reports it. */
  const setUpError = (error: unknown): Error => {
    if (error instanceof CacheConfigError) return error
    const reason = reasonOf(error)
    if (isConnectionError((error as Error).cause ?? error) || /timeout|no connection|did not answer/i.test(reason)) {
      return new CacheBackendError(
        `${reason}: cannot reach the server (connectTimeout is ${connectTimeout} ms). ` +
          'Check that it is running and the URL is right; the cache tries again on the next call.',
        { cause: error },
      )
    }
    return new CacheBackendError(`${reason} (while setting up the table ${table.shown}).`, { cause: error })
  }

  /** Create the table if it is missing and check its shape, once; again after a failure. */
  const prepare = (): Promise<void> => {
    setUp ??= (async () => {
      const created = await conn.transaction((query) => createIfMissing(query, table, unlogged))
      const notes = await checkShape((query) => conn.run(query, true, true), table, where)
      if (!created && notes.unlogged !== unlogged) {
        emit({
          type: 'warning',
          message: `The table ${table.shown} of ${where} is ${notes.unlogged ? 'UNLOGGED' : 'logged'} although \`unlogged\` is ${unlogged}; cachekit left it as it is.`,
        })
      }
      ready = true
      down = undefined
      housekeeping.start()
    })().catch((error: unknown) => {
      setUp = undefined
      const e = setUpError(error)
      if (e instanceof CacheBackendError) down = { until: Date.now() + DOWN_MS, error: e }
      throw e
    })
    return setUp
  }

  /**
   * Run a statement once the table is there; while the server was just found down, fail at once. `timeout`:
   * what is left of its call's deadline, when less than `commandTimeout`; `write` if it changes the table.
   */
  const exec = (query: PgQuery, idempotent: boolean, timeout?: number, write = false): Promise<PgResult> => {
    if (ready) return run(query, idempotent, timeout, write)
    if (closed) return Promise.reject(new CacheBackendError(`${where}: the cache is closed.`))
    if (down !== undefined && Date.now() < down.until) return Promise.reject(down.error)
    if (timeout === undefined) return prepare().then(() => run(query, idempotent))
    // The set-up's own wait counts against the call's deadline too.
    const start = performance.now()
    return prepare().then(() => run(query, idempotent, Math.max(0, timeout - (performance.now() - start)), write))
  }

  const rowPayload = (row: unknown[] | undefined): Payload | undefined => (row === undefined ? undefined : payloadOf(row[0] as Buffer, row[1] as boolean))

  async function increment(key: string, delta: number, expiresAt: ExpiresAt): Promise<number> {
    const k = storedKey(key)
    // A refusal is explained from the value as it is; if that value could be incremented after all (another
    // session changed it meanwhile), the statement runs again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await exec(st.increment([k.hash, k.bytes, delta, expiresAt, now()]), false)
      const text = result.rows[0]?.[0]
      if (text !== undefined) return Number(text)
      const current = rowPayload((await exec(st.get([k.hash, now()]), true)).rows[0])
      addToPayload(key, current, delta)
    }
    throw new CacheBackendError(`${where}: the value at the key kept changing while \`inc\` ran; nothing was changed.`)
  }

  return {
    name: 'postgres',
    capabilities: { shared: true, atomic: true, realClock: false },
    commandTimeout,

    ready: prepare,

    async get(key, timeout) {
      return rowPayload((await exec(st.get([keyHash(key), now()]), true, timeout)).rows[0])
    },

    async getMany(keys, timeout) {
      if (keys.length === 0) return []
      const hashes = keys.map(keyHash)
      const found = new Map<string, Payload>()
      for (const row of (await exec(st.getMany([hashes, now()]), true, timeout)).rows) {
        found.set((row[0] as Buffer).toString('latin1'), payloadOf(row[1] as Buffer, row[2] as boolean))
      }
      return hashes.map((h) => found.get(h.toString('latin1')))
    },

    async set(key, value, expiresAt, timeout) {
      const k = storedKey(key)
      const p = storedPayload(value)
      await exec(st.set([k.hash, k.bytes, p.bytes, p.text, expiresAt]), true, timeout, true)
      housekeeping.wrote(1)
    },

    async setMany(entries: readonly AdapterEntry[]) {
      // The last write of a key wins, as with separate sets.
      const last = new Map<string, AdapterEntry>()
      for (const e of entries) {
        last.delete(e.key)
        last.set(e.key, e)
      }
      const unique = [...last.values()]
      for (let i = 0; i < unique.length; i += SET_MANY_CHUNK) {
        const chunk = unique.slice(i, i + SET_MANY_CHUNK)
        const keys = chunk.map((e) => storedKey(e.key))
        const payloads = chunk.map((e) => storedPayload(e.value))
        await exec(
          st.setMany([keys.map((k) => k.hash), keys.map((k) => k.bytes), payloads.map((p) => p.bytes), payloads.map((p) => p.text), chunk.map((e) => e.expiresAt)]),
          true,
        )
        housekeeping.wrote(chunk.length)
      }
    },

    async add(key, value, expiresAt, timeout) {
      const k = storedKey(key)
      const p = storedPayload(value)
      const added = (await exec(st.add([k.hash, k.bytes, p.bytes, p.text, expiresAt, now()]), false, timeout, true)).rowCount === 1
      if (added) housekeeping.wrote(1)
      return added
    },

    async increment(key, delta, expiresAt) {
      const result = await increment(key, delta, expiresAt)
      housekeeping.wrote(1)
      return result
    },

    async delete(key, timeout) {
      const t = now()
      return (await exec(st.delete([keyHash(key)]), true, timeout, true)).rows.some((r) => isLive(r[0], t))
    },

    async deleteMany(keys) {
      if (keys.length === 0) return 0
      const t = now()
      return (await exec(st.deleteMany([[...new Set(keys)].map(keyHash)]), true)).rows.filter((r) => isLive(r[0], t)).length
    },

    async has(key) {
      return (await exec(st.has([keyHash(key), now()]), true)).rows.length > 0
    },

    async touch(key, expiresAt) {
      return (await exec(st.touch([keyHash(key), expiresAt, now()]), true)).rowCount === 1
    },

    async expiresAt(key) {
      const row = (await exec(st.expiresAt([keyHash(key), now()]), true)).rows[0]
      return row === undefined ? undefined : row[0] === null ? null : Number(row[0])
    },

    async deleteIfEquals(key, value, timeout) {
      // Not retried on a lost connection: a second run would report false for a lease the first released.
      return (await exec(st.deleteIfEquals([keyHash(key), storedPayload(value).bytes, now()]), false, timeout, true)).rowCount === 1
    },

    async clear(prefix) {
      const range = prefixRange(prefix)
      while (!closed) {
        const found = Number((await exec(st.clearBatch(range, batchSize), true)).rows[0]?.[0] ?? 0)
        if (found < batchSize) return
        await new Promise((resolve) => setImmediate(resolve))
      }
    },

    async inspect(prefix) {
      const row = (await exec(st.inspect(prefixRange(prefix), now()), true)).rows[0]
      return { stored: Number(row?.[0] ?? 0), bytes: Number(row?.[1] ?? 0), expired: Number(row?.[2] ?? 0) }
    },

    async *keys(prefix) {
      const range = prefixRange(prefix)
      let after: [Buffer, Buffer] | undefined
      while (!closed) {
        const rows = (await exec(st.keysPage(range, now(), after), true)).rows
        for (const row of rows) yield (row[0] as Buffer).toString('utf8')
        const last = rows[rows.length - 1]
        if (rows.length < KEYS_PAGE || last === undefined) return
        after = [last[1] as Buffer, last[2] as Buffer]
      }
    },

    async purgeExpired() {
      if (!ready) await prepare()
      return housekeeping.purgeAll()
    },

    async close() {
      if (closed) return
      closed = true
      await housekeeping.close()
      await conn.close()
    },
  }
}
