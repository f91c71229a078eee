import {
  addToPayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../../src/adapter.js'
import { CacheConfigError, CacheError } from '../../src/errors.js'
import { durationOption } from '../../src/duration.js'
import { trackingChannel } from './tracking.js'
import { Connection, type Commands } from './connection.js'
import type { RedisAdapterOptions } from './definition.js'
import { Deadlines } from './deadlines.js'
import { DELETE_IF_EQUALS, INCREMENT, PERSIST, type Script } from './scripts.js'

export type { RedisAdapterOptions, RedisNodeOption } from './definition.js'

/** Defaults of the redis options (also in their TSDoc in `definition.ts`). */
export const REDIS_DEFAULTS = {
  url: 'redis://127.0.0.1:6379',
  connectTimeout: 5_000,
  commandTimeout: 1_000,
  clearAll: false,
} as const

/** How many keys one SCAN step asks for, and so the most one UNLINK deletes. */
const SCAN_COUNT = 1000

/** The redis adapter, with the connection it uses. */
export interface RedisAdapter extends CacheAdapter {
  /**
   * The @redis/client client, cluster or sentinel cachekit sends its commands on, e.g. for commands cachekit
   * has no word for. Do not close it: `cache.close()` does.
   */
  readonly client: unknown
  /** Listener counts on the connection, for diagnostics (they stay flat across outages). */
  listenerCounts(): Record<string, number>
}

function timeoutOption(value: unknown, name: 'connectTimeout' | 'commandTimeout'): number {
  return durationOption(value, name, { fallback: REDIS_DEFAULTS[name], notZero: 'a Redis call must never wait forever' })
}

/** A SCAN pattern matching exactly the keys that start with `prefix`. */
export function scanPattern(prefix: string): string {
  return `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
}

function asArgument(value: Payload): string | Buffer {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

function orUndefined<T>(reply: T | null): T | undefined {
  return reply === null ? undefined : reply
}

// Reply maps, made once rather than as a closure per call on the hot path.
const nothing = (): undefined => undefined
const notNull = (reply: unknown): boolean => reply !== null
const positive = (n: number): boolean => n > 0
const isOne = (n: unknown): boolean => Number(n) === 1

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}

function evalScript(client: Commands, script: Script, key: string, args: (string | Buffer)[]): Promise<unknown> {
  const options = { keys: [key], arguments: args }
  return client.evalSha(script.sha, options).catch((error: unknown) => {
    if (isNoScript(error)) return client.eval(script.lua, options)
    throw error
  })
}

/** The CacheTypeError every adapter gives for `increment` on a non-integer or past the safe range, or `error`. */
function incrementError(key: string, delta: number, error: Error): Error {
  const reply = (error.cause as Error | undefined)?.message ?? ''
  const range = /CACHEKIT_RANGE (\S*)/.exec(reply)
  try {
    // addToPayload throws the exact CacheTypeError; Redis's own text never leaks.
    if (range !== null) addToPayload(key, range[1], delta)
    if (/not an integer|WRONGTYPE/.test(reply)) addToPayload(key, '', delta)
  } catch (typeError) {
    return typeError as Error
  }
  return error
}

/**
 * Redis (or Valkey): one server, a Cluster or Sentinel, through @keyv/redis and @redis/client. Shared by
 * every process and machine that reaches the same server; `add` and `increment` are atomic there; Redis
 * expires entries itself.
 *
 * Never hangs: every command has a timeout (`commandTimeout`), nothing queues while the server is down
 * (commands fail at once), and the connection comes back by itself when the server does.
 *
 * @throws {CacheConfigError} for an invalid option.
 */
export function redisAdapter(options: RedisAdapterOptions, context: AdapterContext): RedisAdapter {
  const connectTimeout = timeoutOption(options.connectTimeout, 'connectTimeout')
  // A call's deadline (`operationTimeout`) bounds each of its commands too.
  const ownTimeout = timeoutOption(options.commandTimeout, 'commandTimeout')
  const operationTimeout = context.operationTimeout ?? Infinity
  const commandTimeout = Math.min(ownTimeout, operationTimeout)
  const timeoutName = operationTimeout < ownTimeout ? 'operationTimeout' : 'commandTimeout'
  const clearAll = options.clearAll ?? REDIS_DEFAULTS.clearAll
  const { now } = context
  const conn = new Connection(options, connectTimeout, (error) => context.emit({ type: 'error', error }))
  const where = conn.where
  // Text replies decode faster than Buffers (measured ~10% more reads per second); bytes only when the
  // codec may produce them.
  const reader = context.bytes === true ? conn.bytes : conn.text
  const client = conn.text

  const translate = (error: unknown): Error => {
    if (error instanceof CacheError) return error
    const e = error as Error
    if (e?.name === 'ClientOfflineError' || e?.name === 'ClientClosedError') return conn.downError()
    return new Error(`${where}: ${e?.message ?? String(error)}`, { cause: error })
  }

  const deadlines = new Deadlines(commandTimeout, (short) =>
    short
      ? new Error(`${where} did not answer within what was left of its call's deadline (operationTimeout, else commandTimeout)`)
      : new Error(`${where} did not answer within ${commandTimeout} ms (${timeoutName})`),
  )

  /**
   * The command's reply through `map`, or its error translated; rejects when no reply comes within
   * `commandTimeout` (or `timeout`, the rest of its call's deadline, if less), even for a command already
   * written to a server that stopped answering.
   */
  const timed = <R, T = R>(command: Promise<R>, map?: (reply: R) => T, explain?: (error: Error) => Error, timeout?: number): Promise<T> =>
    // One wrapper promise, and no timer of its own (see Deadlines): this is every command's hot path.
    new Promise<T>((resolve, reject) => {
      const generation = deadlines.current(timeout)
      const slot = generation.add(reject)
      command.then(
        (reply) => {
          generation.settle(slot)
          resolve(map === undefined ? (reply as unknown as T) : map(reply))
        },
        (error: unknown) => {
          generation.settle(slot)
          reject(explain === undefined ? translate(error) : explain(translate(error)))
        },
      )
    })

  /**
   * Send a command: at once when connected; after the first connection attempt while starting (so nothing
   * sent during start-up is dropped); never while down, when it fails at once instead of queueing.
   */
  const send = <R, T = R>(command: () => Promise<R>, map?: (reply: R) => T, explain?: (error: Error) => Error, timeout?: number): Promise<T> => {
    if (conn.isUp()) return timed(command(), map, explain, timeout)
    if (!conn.started) {
      return conn.starting.then(() => {
        if (conn.isUp()) return timed(command(), map, explain, timeout)
        throw conn.downError()
      })
    }
    return Promise.reject(conn.downError())
  }

  /** Run a script by its SHA, sending it whole (EVAL) when the server does not have it (NOSCRIPT). */
  const script = <T>(s: Script, key: string, args: (string | Buffer)[], map: (reply: unknown) => T, explain?: (error: Error) => Error, timeout?: number): Promise<T> =>
    send(() => evalScript(client, s, key, args), map, explain, timeout)

  /** Milliseconds from now to `expiresAt`; at least 1, as Redis refuses a PX of 0. */
  const px = (expiresAt: number): number => Math.max(1, Math.ceil(expiresAt - now()))

  const setOptions = (expiresAt: ExpiresAt): object | undefined =>
    expiresAt === null ? undefined : { expiration: { type: 'PX', value: px(expiresAt) } }

  /** Run `command` on each slot group of `keys` (one group unless a cluster). */
  const perSlot = <R>(keys: string[], command: (group: string[]) => Promise<R>, timeout?: number): Promise<R[]> =>
    send(() => Promise.all(conn.slotGroups(keys).map(command)), undefined, undefined, timeout)

  async function clearMaster(master: Commands, prefix: string): Promise<void> {
    const match = scanPattern(prefix)
    let cursor = '0'
    do {
      const page = await timed(master.scan(cursor, { MATCH: match, COUNT: SCAN_COUNT }))
      cursor = String(page.cursor)
      const keys = page.keys.map(String).filter((k) => k.startsWith(prefix))
      if (keys.length > 0) await timed(Promise.all(conn.slotGroups(keys).map((group) => master.unlink(group))))
    } while (cursor !== '0')
  }

  return {
    name: 'redis',
    capabilities: { shared: true, atomic: true, realClock: true },
    commandTimeout,
    get client() {
      return client
    },
    listenerCounts: () => conn.listenerCounts(),
    ready: () => conn.ready(),

    get: (key, timeout) => send(() => reader.get(key), orUndefined, undefined, timeout),

    // GET and PTTL written together: one round trip. A change between them is reported by the channel.
    // The time is taken before sending: the expiry is never put later than the server's by the round trip.
    getEntry(key, timeout) {
      const sent = now()
      return send(
        () => Promise.all([reader.get(key), client.pTTL(key)]),
        ([value, ms]) => (value === null || ms === -2 ? undefined : { value, expiresAt: ms === -1 ? null : sent + ms }),
        undefined,
        timeout,
      )
    },

    invalidations(prefix) {
      if (conn.isCluster || conn.isSentinel) {
        throw new CacheConfigError(
          `Option \`l1\`: the memory tier is not available on ${conn.isCluster ? 'Redis Cluster' : 'Redis Sentinel'} yet (its invalidations would have to follow ` +
            `${conn.isCluster ? 'every master' : 'each failover'}). Leave \`l1\` out, or use it with a single Redis server.`,
          { option: 'l1' },
        )
      }
      return trackingChannel(conn, prefix)
    },

    async getMany(keys, timeout) {
      const all = [...keys]
      if (!conn.isCluster) return send(() => reader.mGet(all), (values) => values.map(orUndefined), undefined, timeout)
      const found = new Map<string, string | Buffer | null>()
      await perSlot(all, async (group) => {
        const values = await reader.mGet(group)
        group.forEach((k, i) => found.set(k, values[i] ?? null))
      }, timeout)
      return all.map((k) => orUndefined(found.get(k) ?? null))
    },

    set: (key, value, expiresAt, timeout) => send(() => client.set(key, asArgument(value), setOptions(expiresAt)), nothing, undefined, timeout),

    async setMany(entries: readonly AdapterEntry[]) {
      if (conn.isCluster) {
        // Each SET is sent at once; @redis/client writes them together, one round trip per master.
        await send(() => Promise.all(entries.map((e) => client.set(e.key, asArgument(e.value), setOptions(e.expiresAt)))))
        return
      }
      // One transaction: all or nothing, one round trip.
      await send(() => {
        const multi = client.multi()
        for (const e of entries) multi.set(e.key, asArgument(e.value), setOptions(e.expiresAt))
        return multi.exec()
      })
    },

    add: (key, value, expiresAt, timeout) =>
      send(
        () => client.set(key, asArgument(value), { ...setOptions(expiresAt), condition: 'NX' }),
        notNull,
        undefined,
        timeout,
      ),

    increment(key, delta, expiresAt) {
      const ttl = expiresAt === null ? '0' : String(px(expiresAt))
      return script(INCREMENT, key, [String(delta), ttl], Number, (error) => incrementError(key, delta, error))
    },

    delete: (key, timeout) => send(() => client.unlink(key), positive, undefined, timeout),

    deleteIfEquals: (key, value, timeout) => script(DELETE_IF_EQUALS, key, [asArgument(value)], isOne, undefined, timeout),

    async deleteMany(keys) {
      const counts = await perSlot([...keys], (group) => client.unlink(group))
      return counts.reduce((a, b) => a + b, 0)
    },

    has: (key) => send(() => client.exists(key), positive),

    // PTTL: -2 missing, -1 no expiry, else ms left by the server's clock.
    expiresAt: (key) => send(() => client.pTTL(key), (ms) => (ms === -2 ? undefined : ms === -1 ? null : Date.now() + ms)),

    touch(key, expiresAt) {
      if (expiresAt === null) return script(PERSIST, key, [], isOne)
      return send(() => client.pExpire(key, px(expiresAt)), isOne)
    },

    async clear(prefix) {
      if (prefix === '' && !clearAll) {
        throw new CacheConfigError(
          'clear() with an empty `keyPrefix` would delete every key in the Redis database, other applications\' too. ' +
            "Set `keyPrefix` (e.g. 'myapp:'), or set `clearAll: true` if the whole database is the cache's.",
          { option: 'clearAll' },
        )
      }
      const masters = await send(() => conn.masters())
      await Promise.all(masters.map((m) => clearMaster(m, prefix)))
    },

    async *keys(prefix) {
      const masters = await send(() => conn.masters())
      const match = scanPattern(prefix)
      for (const master of masters) {
        // SCAN may return a key twice (while the table grows): report each once.
        const seen = new Set<string>()
        let cursor = '0'
        do {
          const page = await timed(master.scan(cursor, { MATCH: match, COUNT: SCAN_COUNT }))
          cursor = String(page.cursor)
          for (const raw of page.keys) {
            const key = String(raw)
            if (!key.startsWith(prefix) || seen.has(key)) continue
            seen.add(key)
            yield key
          }
        } while (cursor !== '0')
      }
    },

    // Redis expires keys itself.
    purgeExpired: () => 0,

    async close() {
      await conn.close(commandTimeout)
      deadlines.stop()
    },
  }
}
