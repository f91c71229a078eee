import {
  addToPayload,
  parseIntegerPayload,
  samePayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../../src/adapter.js'
import { durationOption } from '../../src/duration.js'
import { CacheBackendError, CacheConfigError, CacheError, CacheUnsupportedError } from '../../src/errors.js'
import { Clears, type Registry } from './clears.js'
import { Pool, type Reply } from './connection.js'
import type { MemcachedOptions } from './definition.js'
import { MEMCACHED_DEFAULTS, parseServers } from './options.js'
import type { MemjsModule } from './driver.js'
import { decodeEntry, encodeEntry, withExpiry, type Entry } from './entry.js'
import { Counters, type CounterOp } from './increment.js'
import { itemName, type ItemName } from './keys.js'
import { exptimeFor, OP, STATUS, storeExtras } from './protocol.js'

export type { MemcachedOptions } from './definition.js'

/** How often a compare-and-set step may lose to another writer before the call gives up. */
const MAX_CAS_ATTEMPTS = 1_000

/** The memcached adapter, with what it adds for diagnostics. */
export interface MemcachedAdapter extends CacheAdapter {
  /** The servers, e.g. `memcached at 127.0.0.1:11211` (never a user or password). */
  readonly where: string
}

/** An item read: its reply (for the CAS) and its entry, `undefined` if not cachekit's or another key's. */
interface Read {
  reply: Reply
  entry: Entry | undefined
}

function duration(value: unknown, name: keyof typeof MEMCACHED_DEFAULTS, positive: boolean): number {
  return durationOption(value, name, { fallback: MEMCACHED_DEFAULTS[name] as number, ...(positive ? { notZero: 'a memcached call must never wait forever' } : {}) })
}

function credential(value: unknown, name: 'username' | 'password'): string | undefined {
  if (value === undefined) return undefined
  // The value itself is never shown: it may be a password.
  if (typeof value !== 'string' || value === '') throw new CacheConfigError(`Option \`${name}\` must be a non-empty string.`, { option: name })
  return value
}

function statusError(where: string, op: string, status: number, size?: number): Error {
  if (status === STATUS.tooLarge) {
    return new Error(`${where}: ${op} refused: the entry (${size ?? '?'} bytes) is larger than the server's item size limit (memcached -I, 1 MB by default)`)
  }
  return new Error(`${where}: ${op} failed with status 0x${status.toString(16).padStart(4, '0')}`)
}

/** A command whose caller stopped waiting (the rest of its call's deadline passed): its loop sends nothing more. */
interface Abandon {
  abandoned: boolean
}

const gone = (call: Abandon | undefined): boolean => call?.abandoned === true

const abandonedError = (): Error => new Error('the call stopped waiting for this command')

const lostRace = (status: number): boolean => status === STATUS.exists || status === STATUS.notStored || status === STATUS.notFound

/**
 * memcached (1.4 and later, binary protocol), through memjs: one server or several, keys spread by
 * consistent hashing, SASL PLAIN if a user is given. Shared by every process and machine that lists the
 * same servers; `add` is memcached's own, `inc`/`dec`, `touch` and `deleteIfEquals` are compare-and-set
 * loops, so all of them are atomic across processes.
 *
 * What memcached lacks is handled here: long or unusual keys are stored under a hash (see `keys.ts`),
 * expiry is exact to the millisecond (see `entry.ts`) and beyond 30 days is sent as an absolute time,
 * `clear()` bumps a generation instead of flushing (see `clears.ts`). It cannot list keys: `keys()` throws
 * `CacheUnsupportedError`, and `capabilities.listKeys` is false.
 *
 * @throws {CacheConfigError} for an invalid option.
 */
export function memcachedAdapter(options: MemcachedOptions, context: AdapterContext, driver: MemjsModule): MemcachedAdapter {
  const servers = parseServers(options.servers ?? MEMCACHED_DEFAULTS.servers)
  const username = credential(options.username, 'username')
  const password = credential(options.password, 'password')
  if (password !== undefined && username === undefined) {
    throw new CacheConfigError('Option `password` is set but `username` is not: SASL needs both (memcached://user:password@host:11211).', { option: 'username' })
  }
  const connectTimeout = duration(options.connectTimeout, 'connectTimeout', true)
  // A call's deadline (`operationTimeout`) bounds each of its requests too.
  const ownTimeout = duration(options.commandTimeout, 'commandTimeout', true)
  const commandTimeout = Math.min(ownTimeout, context.operationTimeout ?? Infinity)
  const timeoutName = commandTimeout < ownTimeout ? 'operationTimeout' : 'commandTimeout'
  const clearCheckInterval = duration(options.clearCheckInterval, 'clearCheckInterval', false)
  const clearAll = options.clearAll ?? MEMCACHED_DEFAULTS.clearAll
  const { now } = context
  const pool = new Pool(driver, {
    servers,
    username,
    password,
    connectTimeout,
    commandTimeout,
    timeoutName,
    onLost: (error) => context.emit({ type: 'error', error }),
  })
  const where = pool.where
  const clears = new Clears(pool, clearCheckInterval, (reason) => context.emit({ type: 'warning', message: `${where}: ${reason}.` }))

  const live = (entry: Entry | undefined): entry is Entry => entry !== undefined && (entry.expiresAt === null || entry.expiresAt > now())
  const exptime = (expiresAt: ExpiresAt): number => exptimeFor(expiresAt === null ? null : expiresAt - now())
  const out = (payload: Buffer): Payload => (context.bytes === true ? payload : payload.toString('utf8'))
  const item = (name: ItemName, fullKey: string, value: Payload, expiresAt: ExpiresAt): Buffer =>
    encodeEntry(value, expiresAt, name.hashed ? fullKey : undefined)

  /**
   * Run `op` on the item names of `fullKeys` under the registry as known, reading the registry alongside;
   * if that read shows another generation for any of them, run it again under the new one (its first run
   * went to items nobody reads any more).
   */
  async function inGeneration<T>(fullKeys: readonly string[], op: (names: ItemName[]) => Promise<T>): Promise<T> {
    let registry: Registry = clears.known ?? (await clears.current())
    for (let attempt = 0; ; attempt++) {
      const names = fullKeys.map((k) => itemName(registry.token(k), k))
      const [result, fresh] = await Promise.all([
        op(names).then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
        clears.current(),
      ])
      const same = fresh === registry || fullKeys.every((k, i) => itemName(fresh.token(k), k).name === names[i]!.name)
      if (same || attempt >= 10) {
        if (!same) throw new Error(`${where}: the keys were cleared again and again during the call; try again`)
        if (result.ok) return result.value
        throw result.error
      }
      registry = fresh
    }
  }

  async function read(name: ItemName, fullKey: string): Promise<Read | undefined> {
    const reply = await pool.send(name.name, OP.get)
    if (reply.status === STATUS.notFound) return undefined
    if (reply.status !== STATUS.ok) throw statusError(where, 'get', reply.status)
    const entry = decodeEntry(reply.value)
    if (entry === undefined) {
      context.emit({ type: 'corrupt', key: fullKey, detail: `${where}: the item is not one cachekit wrote; it is treated as missing` })
      return { reply, entry: undefined }
    }
    // Another key with the same SHA-256 (never seen, but a hashed name is checked all the same).
    if (name.hashed && entry.key !== fullKey) return { reply, entry: undefined }
    return { reply, entry }
  }

  async function store(name: ItemName, fullKey: string, value: Payload, expiresAt: ExpiresAt): Promise<void> {
    const body = item(name, fullKey, value, expiresAt)
    const reply = await pool.send(name.name, OP.set, storeExtras(exptime(expiresAt)), body)
    if (reply.status !== STATUS.ok) throw statusError(where, 'set', reply.status, body.length)
  }

  async function getOne(name: ItemName, fullKey: string): Promise<Payload | undefined> {
    const r = await read(name, fullKey)
    return live(r?.entry) ? out(r.entry.payload) : undefined
  }

  async function add(name: ItemName, fullKey: string, value: Payload, expiresAt: ExpiresAt, call?: Abandon): Promise<boolean> {
    const body = item(name, fullKey, value, expiresAt)
    const extras = storeExtras(exptime(expiresAt))
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      if (gone(call)) throw abandonedError()
      const added = await pool.send(name.name, OP.add, extras, body)
      if (added.status === STATUS.ok) return true
      if (!lostRace(added.status)) throw statusError(where, 'add', added.status, body.length)
      // Present on the server: absent for the cache if it has expired (memcached counts whole seconds).
      const r = await read(name, fullKey)
      if (r === undefined) continue
      if (live(r.entry)) return false
      if (gone(call)) throw abandonedError()
      const replaced = await pool.send(name.name, OP.set, extras, body, r.reply.cas)
      if (replaced.status === STATUS.ok) return true
      if (!lostRace(replaced.status)) throw statusError(where, 'add', replaced.status, body.length)
    }
    throw new Error(`${where}: add kept losing to concurrent writers of the key; try again`)
  }

  /** One compare-and-set step per attempt, for the whole batch of `inc`s waiting on one key. */
  async function applyBatch(name: ItemName, fullKey: string, ops: readonly CounterOp[]): Promise<(number | Error)[]> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const r = await read(name, fullKey)
      const entry = r?.entry
      let value = 0
      let expiresAt: ExpiresAt | undefined
      if (live(entry)) {
        const stored = parseIntegerPayload(entry.payload)
        if (stored === undefined) {
          return ops.map((op) => {
            try {
              addToPayload(fullKey, entry.payload, op.delta)
              return new Error('unreachable')
            } catch (error) {
              return error as Error
            }
          })
        }
        value = stored
        expiresAt = entry.expiresAt
      }
      const outcomes = ops.map((op): number | Error => {
        try {
          value = addToPayload(fullKey, String(value), op.delta)
        } catch (error) {
          return error as Error
        }
        // A new key gets the TTL of the first call that counted; an existing key keeps its expiry.
        if (expiresAt === undefined) expiresAt = op.expiresAt
        return value
      })
      if (expiresAt === undefined) return outcomes
      const body = item(name, fullKey, String(value), expiresAt)
      const extras = storeExtras(exptime(expiresAt))
      const reply = r === undefined ? await pool.send(name.name, OP.add, extras, body) : await pool.send(name.name, OP.set, extras, body, r.reply.cas)
      if (reply.status === STATUS.ok) return outcomes
      if (!lostRace(reply.status)) throw statusError(where, 'inc', reply.status)
    }
    throw new Error(`${where}: inc kept losing to concurrent writers of the key; try again`)
  }

  const counters = new Counters((fullKey, ops) => inGeneration([fullKey], ([name]) => applyBatch(name!, fullKey, ops)))

  /** Delete the item if it is still as read; whether a live entry was deleted. */
  async function remove(name: ItemName, fullKey: string, only?: Payload, call?: Abandon): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const r = await read(name, fullKey)
      if (r === undefined) return false
      if (only !== undefined && !(live(r.entry) && samePayload(r.entry.payload, only))) return false
      if (gone(call)) throw abandonedError()
      const reply = await pool.send(name.name, OP.delete, undefined, undefined, r.reply.cas)
      if (reply.status === STATUS.ok) return live(r.entry)
      if (reply.status === STATUS.notFound) return false
      if (reply.status !== STATUS.exists) throw statusError(where, 'delete', reply.status)
    }
    throw new Error(`${where}: delete kept losing to concurrent writers of the key; try again`)
  }

  async function touch(name: ItemName, fullKey: string, expiresAt: ExpiresAt): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const r = await read(name, fullKey)
      if (r === undefined || !live(r.entry)) return false
      const reply = await pool.send(name.name, OP.set, storeExtras(exptime(expiresAt)), withExpiry(r.entry, expiresAt), r.reply.cas)
      if (reply.status === STATUS.ok) return true
      if (!lostRace(reply.status)) throw statusError(where, 'touch', reply.status)
    }
    throw new Error(`${where}: touch kept losing to concurrent writers of the key; try again`)
  }

  const one = <T>(fullKey: string, op: (name: ItemName) => Promise<T>): Promise<T> => inGeneration([fullKey], ([name]) => op(name!))

  /**
   * `work` (one command of a call: its requests, a compare-and-set loop's included), failed after `timeout`
   * when that is less than `commandTimeout`: what is left of its call's deadline (src/budget.ts). The requests
   * already sent stay pending until their own `commandTimeout`, as memcached has no way to cancel one; like
   * any request that timed out, a write among them may still land if the server answers late; but the next
   * step of a compare-and-set loop (`add` over an expired item, `delete`) is not sent after the timeout.
   */
  function within<T>(timeout: number | undefined, work: (call?: Abandon) => Promise<T>): Promise<T> {
    if (timeout === undefined || timeout >= commandTimeout) return work()
    const call: Abandon = { abandoned: false }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A compare-and-set loop sends nothing more once its caller was told it failed.
        call.abandoned = true
        reject(new Error(`${where} did not answer within the ${Math.max(0, Math.round(timeout))} ms left of its call's deadline (operationTimeout, else commandTimeout)`))
      }, Math.max(0, timeout))
      timer.unref()
      work(call).then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error as Error)
        },
      )
    })
  }

  return {
    name: 'memcached',
    capabilities: { shared: true, atomic: true, realClock: false, listKeys: false },
    commandTimeout,
    where,

    async ready() {
      await pool.ready()
      try {
        await clears.current()
      } catch (error) {
        if (error instanceof CacheError) throw error
        throw new CacheBackendError(`${where}: ${(error as Error).message}`)
      }
    },

    get: (key, timeout) => within(timeout, () => one(key, (name) => getOne(name, key))),
    getMany: (keys, timeout) => within(timeout, () => inGeneration(keys, (names) => Promise.all(names.map((name, i) => getOne(name, keys[i]!))))),
    set: (key, value, expiresAt, timeout) => within(timeout, () => one(key, (name) => store(name, key, value, expiresAt))),
    async setMany(entries: readonly AdapterEntry[]) {
      await inGeneration(
        entries.map((e) => e.key),
        (names) => Promise.all(names.map((name, i) => store(name, entries[i]!.key, entries[i]!.value, entries[i]!.expiresAt))),
      )
    },
    add: (key, value, expiresAt, timeout) => within(timeout, (call) => one(key, (name) => add(name, key, value, expiresAt, call))),
    increment: (key, delta, expiresAt) => counters.increment(key, delta, expiresAt),
    delete: (key, timeout) => within(timeout, (call) => one(key, (name) => remove(name, key, undefined, call))),
    async deleteMany(keys) {
      const deleted = await Promise.all(keys.map((key) => one(key, (name) => remove(name, key))))
      return deleted.filter(Boolean).length
    },
    deleteIfEquals: (key, value, timeout) => within(timeout, (call) => one(key, (name) => remove(name, key, value, call))),
    has: (key) => one(key, async (name) => live((await read(name, key))?.entry)),
    touch: (key, expiresAt) => one(key, (name) => touch(name, key, expiresAt)),
    expiresAt: (key) =>
      one(key, async (name) => {
        const entry = (await read(name, key))?.entry
        return live(entry) ? entry.expiresAt : undefined
      }),

    async clear(prefix) {
      if (prefix === '' && !clearAll) {
        throw new CacheConfigError(
          'clear() with an empty `keyPrefix` would clear every cachekit entry in the memcached pool, other caches\' too. ' +
            "Set `keyPrefix` (e.g. 'myapp:'), or set `clearAll: true` if the whole pool is this cache's.",
          { option: 'clearAll' },
        )
      }
      await clears.clear(prefix)
    },

    keys() {
      throw new CacheUnsupportedError(
        'memcached cannot list its keys (it has no SCAN; its debugging dumps are partial and unsafe under load), so keys() is not ' +
          'available on the memcached backend. Keep an index of the keys you need under a key of your own, or use a backend that lists keys (Redis, SQLite).',
      )
    },

    // memcached drops expired items itself; reads never return one (the exact expiry is in each entry).
    purgeExpired: () => 0,

    close: () => pool.close(),
  }
}
