import { addToPayload, type AdapterContext, type AdapterEntry, type CacheAdapter, type ExpiresAt, type Payload } from '../../src/adapter.js'
import { CacheBackendError, CacheConfigError, showKey } from '../../src/errors.js'
import { Housekeeping } from '../sql/housekeeping.js'
import { keyHash, prefixRange, storedKey } from '../sql/keys.js'
import { countOption, sqlDuration, SQL_DEFAULTS, tableOption } from '../sql/options.js'
import { payloadOf, storedPayload } from '../sql/payload.js'
import { reasonOf } from '../sql/secrets.js'
import { isConnectionError, MysqlConnection, mysqlSessionSetup, type MysqlResult } from './connection.js'
import type { MysqlAdapterOptions } from './definition.js'
import { checkShape, createStatement, qualified, serverFacts, type ServerFacts } from './schema.js'
import { KEYS_PAGE, OFFSET, REFUSED, statements, type Statements } from './statements.js'

export type { MysqlAdapterOptions, MysqlPool } from './definition.js'

/** The defaults of {@link MysqlAdapterOptions}. */
export const MYSQL_DEFAULTS = SQL_DEFAULTS

/** Entries per statement of `setMany` (fewer when they are large: see `packetRoom`). */
const SET_MANY_CHUNK = 500
/** After a failed set-up, calls fail at once for this long instead of each waiting for the server again. */
const DOWN_MS = 1_000
/** Room in a packet for the statement and the other parameters besides a value. */
const PACKET_SLACK = 64 * 1024

type Rows = unknown[][]
const rowsOf = (result: MysqlResult): Rows => result as unknown as Rows

/**
 * MySQL or MariaDB (InnoDB): one table per config, shared by every process and machine that reaches the
 * database. `add` and `increment` are single `INSERT ... ON DUPLICATE KEY UPDATE` statements, which lock
 * the row and read its current version, so they are atomic across sessions at REPEATABLE READ (the default)
 * and READ COMMITTED; `deleteIfEquals` is one `DELETE`. Expiry is absolute ms by the cache's clock, decided in
 * the statements; expired rows are purged in batches.
 *
 * @throws {CacheConfigError} for an invalid option.
 */
export function mysqlAdapter(options: MysqlAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now, threshold, emit } = context
  const table = tableOption(options.table)
  const connectTimeout = sqlDuration(options.connectTimeout, SQL_DEFAULTS.connectTimeout, 'connectTimeout')
  // A call's deadline (`operationTimeout`) bounds each of its statements too.
  const ownTimeout = sqlDuration(options.commandTimeout, SQL_DEFAULTS.commandTimeout, 'commandTimeout')
  const commandTimeout = Math.min(ownTimeout, context.operationTimeout ?? Infinity)
  const timeoutName = commandTimeout < ownTimeout ? 'operationTimeout' : 'commandTimeout'
  const purgeInterval = sqlDuration(options.purgeInterval, SQL_DEFAULTS.purgeInterval, 'purgeInterval', 'no background purge')
  const batchSize = countOption(options.purgeBatchSize, SQL_DEFAULTS.purgeBatchSize, 'purgeBatchSize')
  const poolSize = countOption(options.poolSize, SQL_DEFAULTS.poolSize, 'poolSize')

  const conn = new MysqlConnection({ url: options.url, pool: options.pool, poolSize, connectTimeout, commandTimeout, timeoutName })
  const where = conn.where
  const q = qualified(table)
  let st: Statements | undefined
  let server: ServerFacts | undefined
  let closed = false
  let setUp: Promise<void> | undefined
  let down: { until: number; error: Error } | undefined

  const housekeeping = new Housekeeping(
    {
      purge: async (t, limit) => (await conn.run('query', statementsNow().purge, [t, limit], true)).affectedRows ?? 0,
      countUpTo: async (limit) => Number(rowsOf(await conn.run('query', statementsNow().countUpTo, [limit], true))[0]?.[0] ?? 0),
      async evict(limit) {
        const s = statementsNow()
        const expiring = (await conn.run('query', s.evictExpiring, [limit], true)).affectedRows ?? 0
        return expiring < limit ? expiring + ((await conn.run('query', s.evictPermanent, [limit - expiring], true)).affectedRows ?? 0) : expiring
      },
    },
    { now, threshold, batchSize, interval: purgeInterval, emit },
  )

  function statementsNow(): Statements {
    if (st === undefined) throw new CacheBackendError(`${where}: the table is not set up yet.`)
    return st
  }

  const setUpError = (error: unknown): Error => {
    if (error instanceof CacheConfigError || !(error instanceof Error)) return error as Error
    const reason = reasonOf(error)
    if (isConnectionError(error.cause ?? error) || /timeout|no connection|did not answer/i.test(reason)) {
      return new CacheBackendError(
        `${reason}: cannot reach the server (connectTimeout is ${connectTimeout} ms). ` +
          'Check that it is running and the URL is right; the cache tries again on the next call.',
        { cause: error },
      )
    }
    return new CacheBackendError(`${reason} (while setting up the table ${table.shown}).`, { cause: error })
  }

  /** Learn what the server is, create the table if it is missing and check its shape; again after a failure. */
  const prepare = (): Promise<void> => {
    setUp ??= (async () => {
      const query = (sql: string, values: unknown[]) => conn.run('query', sql, values, true, true)
      const facts = await serverFacts(query)
      if (conn.owned) {
        conn.sessionSetup = mysqlSessionSetup(facts.mariadb, commandTimeout)
        conn.mariadb = facts.mariadb
      }
      await query(createStatement(table), [])
      await checkShape(query, table, where)
      server = facts
      st = statements(q, facts)
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

  /** Set up the table unless it is; while the server was just found down, fail at once. */
  const ensure = (): Promise<void> => {
    if (closed) return Promise.reject(new CacheBackendError(`${where}: the cache is closed.`))
    if (down !== undefined && Date.now() < down.until) return Promise.reject(down.error)
    return prepare()
  }

  /**
   * Run a statement once the table is there. `timeout`: what is left of its call's deadline, when less than
   * `commandTimeout`; `write` if it changes the table.
   */
  const exec = (
    kind: 'execute' | 'query',
    pick: (s: Statements) => string | readonly [string, readonly unknown[]],
    values: unknown[],
    idempotent: boolean,
    timeout?: number,
    write = false,
  ): Promise<MysqlResult> => {
    const go = (s: Statements, left = timeout) => {
      const picked = pick(s)
      return typeof picked === 'string'
        ? conn.run(kind, picked, values, idempotent, false, left, write)
        : conn.run(kind, picked[0], [...picked[1]], idempotent, false, left, write)
    }
    if (st !== undefined) return go(st)
    if (timeout === undefined) return ensure().then(() => go(statementsNow()))
    // The set-up's own wait counts against the call's deadline too.
    const start = performance.now()
    return ensure().then(() => go(statementsNow(), Math.max(0, timeout - (performance.now() - start))))
  }

  /** What is left of `timeout` (a call's deadline) since `start`, or `undefined` for a whole command timeout. */
  const rest = (timeout: number | undefined, start: number): number | undefined =>
    timeout === undefined ? undefined : Math.max(0, timeout - (performance.now() - start))

  /** A payload larger than the server takes in one packet would drop the connection: refuse it first. */
  const checkSize = (key: string, bytes: number, factor = 1) => {
    const max = server?.maxAllowedPacket ?? 0
    if (max > 0 && bytes * factor + PACKET_SLACK > max) {
      throw new CacheBackendError(
        `The value at ${showKey(key)} is ${bytes} bytes: more than the server's max_allowed_packet (${max} bytes) takes in one statement; nothing was written. ` +
          'Raise max_allowed_packet on the server (e.g. SET GLOBAL max_allowed_packet = 1073741824), or store smaller values.',
        { key },
      )
    }
  }

  const rowPayload = (row: unknown[] | undefined): Payload | undefined => (row === undefined ? undefined : payloadOf(row[0] as Buffer, Number(row[1])))

  async function increment(key: string, delta: number, expiresAt: ExpiresAt): Promise<number> {
    const k = storedKey(key)
    // A refusal is explained from the value as it is; if that value could be incremented after all (another
    // session changed it meanwhile), the statement runs again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await exec('execute', (s) => s.increment(k.hash, k.bytes, delta, expiresAt, now()), [], false)
      const reported = BigInt(String(result.insertId ?? 0))
      if (reported !== REFUSED) {
        if (reported === 0n) throw new CacheBackendError(`${where} did not report the result of \`inc\` (LAST_INSERT_ID); the value may have changed.`)
        return Number(reported - OFFSET)
      }
      const current = rowPayload(rowsOf(await exec('execute', (s) => s.get, [k.hash, now()], true))[0])
      addToPayload(key, current, delta)
    }
    throw new CacheBackendError(`${where}: the value at the key kept changing while \`inc\` ran; nothing was changed.`)
  }

  return {
    name: 'mysql',
    capabilities: { shared: true, atomic: true, realClock: false },
    commandTimeout,

    ready: prepare,

    async get(key, timeout) {
      return rowPayload(rowsOf(await exec('execute', (s) => s.get, [keyHash(key), now()], true, timeout))[0])
    },

    async getMany(keys, timeout) {
      if (keys.length === 0) return []
      const hashes = keys.map(keyHash)
      const found = new Map<string, Payload>()
      for (const row of rowsOf(await exec('query', (s) => s.getMany, [hashes, now()], true, timeout))) {
        found.set((row[0] as Buffer).toString('latin1'), payloadOf(row[1] as Buffer, Number(row[2])))
      }
      return hashes.map((h) => found.get(h.toString('latin1')))
    },

    async set(key, value, expiresAt, timeout) {
      const k = storedKey(key)
      const p = storedPayload(value)
      const start = performance.now()
      if (server === undefined) await ensure()
      checkSize(key, p.bytes.length + k.bytes.length)
      await exec('execute', (s) => s.set, [k.hash, k.bytes, p.bytes, p.text ? 1 : 0, expiresAt], true, rest(timeout, start), true)
      housekeeping.wrote(1)
    },

    async setMany(entries: readonly AdapterEntry[]) {
      const last = new Map<string, AdapterEntry>()
      for (const e of entries) {
        last.delete(e.key)
        last.set(e.key, e)
      }
      const rows = [...last.values()].map((e) => {
        const k = storedKey(e.key)
        const p = storedPayload(e.value)
        return { key: e.key, size: k.bytes.length + p.bytes.length, row: [k.hash, k.bytes, p.bytes, p.text ? 1 : 0, e.expiresAt] }
      })
      if (server === undefined) await ensure()
      const room = Math.max(1, (server?.maxAllowedPacket ?? 16 * 2 ** 20) - PACKET_SLACK)
      // The text protocol sends bytes as hex: twice their size.
      let chunk: unknown[][] = []
      let size = 0
      const flush = async () => {
        if (chunk.length === 0) return
        await exec('query', (s) => s.setMany, [chunk], true)
        housekeeping.wrote(chunk.length)
        chunk = []
        size = 0
      }
      for (const r of rows) {
        checkSize(r.key, r.size, 2)
        if (chunk.length >= SET_MANY_CHUNK || size + r.size * 2 > room) await flush()
        chunk.push(r.row)
        size += r.size * 2 + 100
      }
      await flush()
    },

    async add(key, value, expiresAt, timeout) {
      const k = storedKey(key)
      const p = storedPayload(value)
      const start = performance.now()
      if (server === undefined) await ensure()
      checkSize(key, p.bytes.length + k.bytes.length)
      const result = await exec('execute', (s) => s.add(k.hash, k.bytes, p.bytes, p.text, expiresAt, now()), [], false, rest(timeout, start), true)
      const added = Number(result.insertId ?? 0) !== 1
      if (added) housekeeping.wrote(1)
      return added
    },

    async increment(key, delta, expiresAt) {
      const result = await increment(key, delta, expiresAt)
      housekeeping.wrote(1)
      return result
    },

    async delete(key, timeout) {
      return ((await exec('execute', (s) => s.delete, [keyHash(key), now()], true, timeout, true)).affectedRows ?? 0) > 0
    },

    async deleteMany(keys) {
      if (keys.length === 0) return 0
      return (await exec('query', (s) => s.deleteMany, [[...new Set(keys)].map(keyHash), now()], true)).affectedRows ?? 0
    },

    async has(key) {
      return rowsOf(await exec('execute', (s) => s.has, [keyHash(key), now()], true)).length > 0
    },

    async touch(key, expiresAt) {
      return Number((await exec('execute', (s) => s.touch(keyHash(key), expiresAt, now()), [], true)).insertId ?? 0) === 1
    },

    async expiresAt(key) {
      const row = rowsOf(await exec('execute', (s) => s.expiresAt, [keyHash(key), now()], true))[0]
      return row === undefined ? undefined : row[0] === null ? null : Number(row[0])
    },

    async deleteIfEquals(key, value, timeout) {
      // Not retried on a lost connection: a second run would report false for a lease the first released.
      return ((await exec('execute', (s) => s.deleteIfEquals, [keyHash(key), storedPayload(value).bytes, now()], false, timeout, true)).affectedRows ?? 0) === 1
    },

    async clear(prefix) {
      const range = prefixRange(prefix)
      while (!closed) {
        const deleted = (await exec('query', (s) => s.clearBatch(range, batchSize), [], true)).affectedRows ?? 0
        if (deleted < batchSize) return
        await new Promise((resolve) => setImmediate(resolve))
      }
    },

    async inspect(prefix) {
      const row = rowsOf(await exec('query', (s) => s.inspect(prefixRange(prefix), now()), [], true))[0]
      return { stored: Number(row?.[0] ?? 0), bytes: Number(row?.[1] ?? 0), expired: Number(row?.[2] ?? 0) }
    },

    async *keys(prefix) {
      const range = prefixRange(prefix)
      let after: [Buffer, Buffer] | undefined
      while (!closed) {
        const rows = rowsOf(await exec('query', (s) => s.keysPage(range, now(), after), [], true))
        for (const row of rows) yield (row[0] as Buffer).toString('utf8')
        const last = rows[rows.length - 1]
        if (rows.length < KEYS_PAGE || last === undefined) return
        after = [last[1] as Buffer, last[2] as Buffer]
      }
    },

    async purgeExpired() {
      if (st === undefined) await ensure()
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
