/**
 * The keyv backend: any Keyv storage adapter as a cachekit backend (the factory is below).
 *
 * - definition.ts: its options, driver-free, for the registry.
 * - store.ts: what `store` may be (an adapter, a Keyv instance, a `Map`, a `{ module, options }` spec), and how
 *   a store is loaded, claimed by one cache, tuned (namespace off, errors thrown) and closed.
 * - envelope.ts: keys and entries as Keyv itself writes them, so a Keyv over the same store reads them.
 * - timeouts.ts: every call to the store within `commandTimeout`, on one timer, and writes that answered late.
 * - listing.ts: `keys`, `clear` and the purge, by the store's iterator, never `store.clear()`.
 */
import {
  addToPayload,
  samePayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../../src/adapter.js'
import { parseDuration, type Duration, type Milliseconds } from '../../src/duration.js'
import { CacheBackendError, CacheConfigError } from '../../src/errors.js'
import { collectSecrets, redactError, redactText } from '../../src/redact.js'
import type { KeyvAdapterOptions } from './definition.js'
import { decodeEntry, encodeEntry, escapeKey, type Entry } from './envelope.js'
import { collect, deleteKeys, entries } from './listing.js'
import { claim, disconnect, isKeyvInstance, isSpec, mapStore, storeFromSpec, tune, unclaim, unwrap, type RawStore } from './store.js'
import { BoundedCalls, type Op } from './timeouts.js'

export type { KeyvAdapterOptions, KeyvStoreLike, KeyvStoreOption, KeyvStoreSpec } from './definition.js'

const noop = (): void => {}

/** Defaults of the keyv options (also in their TSDoc): the same as the redis backend's. */
export const KEYV_DEFAULTS = {
  connectTimeout: 5_000,
  commandTimeout: 1_000,
} as const

/**
 * How often a store without its own expiry (`@keyv/sqlite`, `@keyv/postgres`, a `Map`) is swept of expired
 * entries. A sweep reads the whole store, so it is rare; reads never return an expired entry meanwhile.
 */
export const KEYV_PURGE_INTERVAL_MS = 10 * 60_000

function timeoutOption(value: unknown, name: keyof typeof KEYV_DEFAULTS): Milliseconds {
  if (value === undefined) return KEYV_DEFAULTS[name]
  // resolveConfig hands over milliseconds; a factory called directly may still get '2s'.
  let ms: Milliseconds
  try {
    ms = parseDuration(value as Duration, `\`${name}\``, { option: name })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option: name, cause: error })
  }
  if (ms === 0) throw new CacheConfigError(`Option \`${name}\` must be more than 0: a call to the Keyv store must never wait forever.`, { option: name })
  return ms
}

/**
 * A bridge to any Keyv storage adapter: `@keyv/postgres`, `@keyv/mysql`, `@keyv/mongo`, `@keyv/sqlite`,
 * `@keyv/redis`, a `Map`, ...
 *
 * Keyv has no atomic add or increment, so the bridge makes them atomic per key within this process (one
 * promise chain per key, which `set`, `delete` and `touch` join) and says plainly that it cannot across
 * processes: `capabilities.atomic` is false, and a bridge marked `shared` warns once on `inc`/`add`.
 *
 * The store's own namespace is switched off so that keys are stored exactly as the cache gives them (its
 * `keyPrefix` included, no second prefix), which is why one store object serves one cache. `clear(prefix)`
 * and `keys(prefix)` read the store's iterator and touch only keys under `prefix`, never `store.clear()`.
 * The store is closed (`disconnect()`) with the cache. `threshold` cannot bound a Keyv store and is ignored.
 *
 * Never hangs: each operation fails after `commandTimeout` and `ready()` after `connectTimeout`, with a
 * `CacheBackendError` naming the operation, the key and the timeout.
 *
 * @throws {CacheConfigError} for an invalid option.
 */
export function keyvAdapter(options: KeyvAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now } = context
  const option = options.store as unknown
  if (typeof option !== 'object' || option === null) {
    throw new CacheConfigError('The keyv backend needs option `store`: a Keyv storage adapter, a Keyv instance, a Map, or { module, options }.', { option: 'store' })
  }
  const shared = options.shared ?? false
  const connectTimeout = timeoutOption(options.connectTimeout, 'connectTimeout')
  // A call's deadline (`operationTimeout`) bounds each of its operations too.
  const ownTimeout = timeoutOption(options.commandTimeout, 'commandTimeout')
  const commandTimeout = Math.min(ownTimeout, context.operationTimeout ?? Infinity)
  const timeoutName = commandTimeout < ownTimeout ? 'operationTimeout' : 'commandTimeout'
  if (shared && (option instanceof Map || (isKeyvInstance(option) && option.store instanceof Map))) {
    throw new CacheConfigError('Option `shared: true` does not fit a Map: a Map lives in one process. Use a database store (e.g. @keyv/postgres) or drop `shared`.', { option: 'shared' })
  }

  let owner: RawStore | undefined
  let store: RawStore | undefined
  let closed = false
  /** The store has answered at least once; one that never did is closed without waiting for it. */
  let answered = false
  let timer: NodeJS.Timeout | undefined
  /** Credentials in the store's options: hidden in every error of the store before it is passed on. */
  let secrets = collectSecrets(isSpec(option) ? option.options : undefined)
  const redact = (error: unknown): Error =>
    error instanceof Error ? redactError(error, secrets) : new Error(redactText(String(error), secrets))
  const onError = (error: unknown): void => {
    context.emit({ type: 'error', error: redact(error) })
  }
  // Every call to the store is bounded by `commandTimeout` (timeouts.ts), except on a `Map` (`untimed`).
  const calls = new BoundedCalls(commandTimeout, timeoutName, redact)

  const open = (given: object): void => {
    const raw = unwrap(given)
    claim(raw)
    owner = raw
    secrets = [...new Set([...secrets, ...collectSecrets((raw as { opts?: unknown }).opts)])]
    const map = raw instanceof Map ? (raw as Map<unknown, unknown>) : undefined
    tune(raw)
    raw.on?.('error', onError)
    store = map === undefined ? raw : mapStore(map)
    calls.untimed = map !== undefined
    if (typeof store.iterator === 'function' && (map !== undefined || raw.ttlSupport === false)) {
      timer = setInterval(() => {
        purgeExpired().catch(onError)
      }, KEYV_PURGE_INTERVAL_MS)
      timer.unref()
    }
  }

  if (!isSpec(option)) open(option)

  const s = (): RawStore => {
    // A call that was in flight when the cache closed must not touch the store: @keyv/redis would reconnect.
    if (closed) throw new CacheBackendError('The keyv backend is closed.')
    if (store === undefined) throw new CacheBackendError('The keyv backend is not ready: its store is still being loaded.')
    return store
  }

  const ttlOf = (expiresAt: ExpiresAt): number | undefined => (expiresAt === null ? undefined : Math.max(1, Math.ceil(expiresAt - now())))
  const isLive = (entry: Entry | undefined): entry is Entry => entry !== undefined && (entry.expiresAt === null || entry.expiresAt > now())

  const read = async (o: Op, key: string): Promise<Entry | undefined> => {
    const raw = await calls.send(o, () => s().get(escapeKey(key)))
    answered = true
    if (raw === undefined || raw === null) return undefined
    const entry = decodeEntry(raw)
    if (entry === undefined) {
      context.emit({ type: 'corrupt', key, detail: 'the Keyv store holds a value that is not a cachekit entry; it is treated as a miss.' })
    }
    return entry
  }
  const write = async (o: Op, key: string, value: Payload, expiresAt: ExpiresAt): Promise<void> => {
    await calls.sendWrite(o, [key], () => s().set(escapeKey(key), encodeEntry(value, expiresAt), ttlOf(expiresAt)))
    answered = true
  }
  const remove = (o: Op, key: string): Promise<void> => calls.sendWrite(o, [key], () => s().delete(escapeKey(key)))
  const readMany = async (o: Op, keys: readonly string[]): Promise<unknown[]> => {
    const st = s()
    const escaped = keys.map(escapeKey)
    return calls.send(o, () => (typeof st.getMany === 'function' ? st.getMany(escaped) : Promise.all(escaped.map((k) => st.get(k)))))
  }

  // One promise chain per key: add, increment, touch, set and delete of a key run one after another. The
  // chain moves on when an operation ends or times out, never later.
  const chains = new Map<string, Promise<void>>()
  const hold = (keys: readonly string[], run: Promise<unknown>): void => {
    const tail = run.then(noop, noop)
    for (const key of keys) {
      chains.set(key, tail)
      void tail.then(() => {
        if (chains.get(key) === tail) chains.delete(key)
      })
    }
  }
  const exclusive = <T>(op: string, key: string, fn: (o: Op) => Promise<T>): Promise<T> => {
    const before = chains.get(key)
    const run = calls.run(op, key, async (o) => {
      if (before !== undefined) await before
      const pending = calls.lateWrite(key)
      if (pending !== undefined) await pending
      return fn(o)
    })
    hold([key], run)
    return run
  }

  let warned = !shared
  const warnNotAtomic = (): void => {
    if (!warned) {
      warned = true
      context.emit({
        type: 'warning',
        message:
          'inc/dec and add on the keyv backend are atomic within one process only: Keyv stores have no atomic increment or set-if-absent, so two processes sharing this store can lose counts or both win an add. Use the sqlite, filesystem or redis backend for counters and locks across processes.',
      })
    }
  }

  async function release(): Promise<void> {
    if (closed) return
    closed = true
    if (timer !== undefined) clearInterval(timer)
    const raw = owner
    if (raw === undefined) return
    try {
      if (unclaim(raw)) await disconnect(raw, answered, commandTimeout)
    } finally {
      raw.off?.('error', onError)
    }
  }

  async function purgeExpired(): Promise<number> {
    const t = now()
    const expired = await collect(s, calls, 'purgeExpired', (_key, entry) => entry !== undefined && entry.expiresAt !== null && entry.expiresAt <= t)
    await deleteKeys(s, calls, 'purgeExpired', expired)
    return expired.length
  }

  const write1 = (op: string, key: string, value: Payload, expiresAt: ExpiresAt): Promise<void> => exclusive(op, key, (o) => write(o, key, value, expiresAt))

  return {
    name: 'keyv',
    capabilities: { shared, atomic: false, realClock: false },
    commandTimeout,
    async ready() {
      if (store === undefined && isSpec(option)) open(await storeFromSpec(option))
      if (option instanceof Map) return
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeout} ms (connectTimeout)`)), connectTimeout)
      })
      try {
        // A first read surfaces a store that cannot connect now rather than at the first real call.
        await Promise.race([s().get('cachekit:ready-probe'), timeout])
        answered = true
      } catch (error) {
        // The store stays open: calls fail promptly until it answers, and close() releases it.
        const cause = redact(error)
        throw new CacheBackendError(`The Keyv store cannot be reached: ${cause.message}`, { cause })
      } finally {
        clearTimeout(timer)
      }
    },
    get: (key) =>
      calls.run('get', key, async (o) => {
        const entry = await read(o, key)
        return isLive(entry) ? entry.value : undefined
      }),
    getMany: (keys) =>
      calls.run('getMany', keys, async (o) => {
        const raws = await readMany(o, keys)
        return keys.map((_, i) => {
          const raw = raws[i]
          const entry = raw === undefined || raw === null ? undefined : decodeEntry(raw)
          return isLive(entry) ? entry.value : undefined
        })
      }),
    set: (key, value, expiresAt) => write1('set', key, value, expiresAt),
    async setMany(list: readonly AdapterEntry[]) {
      const st = s()
      if (typeof st.setMany === 'function' && !list.some((e) => chains.has(e.key) || calls.lateWrite(e.key) !== undefined)) {
        const keys = list.map((e) => e.key)
        const rows = list.map((e) => ({ key: escapeKey(e.key), value: encodeEntry(e.value, e.expiresAt), ttl: ttlOf(e.expiresAt) }))
        // The batch holds its keys' chains like any write, so a set of one of them waits for it.
        const run = calls.run('setMany', keys, (o) => calls.sendWrite(o, keys, () => st.setMany?.(rows)))
        hold(keys, run)
        await run
        return
      }
      await Promise.all(list.map((e) => write1('setMany', e.key, e.value, e.expiresAt)))
    },
    add(key, value, expiresAt) {
      warnNotAtomic()
      return exclusive('add', key, async (o) => {
        if (isLive(await read(o, key))) return false
        await write(o, key, value, expiresAt)
        return true
      })
    },
    increment(key, delta, expiresAt) {
      warnNotAtomic()
      return exclusive('increment', key, async (o) => {
        const entry = await read(o, key)
        const live = isLive(entry) ? entry : undefined
        const result = addToPayload(key, live?.value, delta)
        await write(o, key, String(result), live === undefined ? expiresAt : live.expiresAt)
        return result
      })
    },
    delete: (key) =>
      exclusive('delete', key, async (o) => {
        const entry = await read(o, key)
        if (entry === undefined) return false
        await remove(o, key)
        return isLive(entry)
      }),
    async deleteMany(keys) {
      const raws = await calls.run('deleteMany', keys, (o) => readMany(o, keys))
      const live = raws.filter((raw) => isLive(raw === undefined || raw === null ? undefined : decodeEntry(raw))).length
      await deleteKeys(s, calls, 'deleteMany', keys)
      return live
    },
    has: (key) => calls.run('has', key, async (o) => isLive(await read(o, key))),
    deleteIfEquals: (key, value) =>
      exclusive('deleteIfEquals', key, async (o) => {
        const entry = await read(o, key)
        if (!isLive(entry) || !samePayload(entry.value, value)) return false
        await remove(o, key)
        return true
      }),
    expiresAt: (key) =>
      calls.run('expiresAt', key, async (o) => {
        const entry = await read(o, key)
        return isLive(entry) ? entry.expiresAt : undefined
      }),
    touch: (key, expiresAt) =>
      exclusive('touch', key, async (o) => {
        const entry = await read(o, key)
        if (!isLive(entry)) return false
        await write(o, key, entry.value, expiresAt)
        return true
      }),
    async clear(prefix) {
      await deleteKeys(s, calls, 'clear', await collect(s, calls, 'clear', (key) => key.startsWith(prefix)))
    },
    async *keys(prefix) {
      for await (const [key, entry] of entries(s, calls, 'keys')) if (key.startsWith(prefix) && isLive(entry)) yield key
    },
    purgeExpired,
    close: release,
  }
}
