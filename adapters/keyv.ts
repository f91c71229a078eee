import type { KeyvStoreAdapter } from 'keyv'
import {
  addToPayload,
  samePayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../src/adapter.js'
import { CacheBackendError, CacheConfigError } from '../src/errors.js'

/**
 * A Keyv store described by plain data, for configs that cannot hold an object: a JSON file, or the child
 * processes of a multi-process test. The module's default export is constructed with `options`.
 *
 * @example { module: '@keyv/postgres', options: { uri: 'postgresql://127.0.0.1/app' } }
 */
export interface KeyvStoreSpec {
  /** The package (or path) to import, e.g. `'@keyv/sqlite'`. */
  module: string
  /** The argument its default export is constructed with, e.g. a URI or an options object. */
  options?: unknown
}

/**
 * The shape shared by every Keyv storage adapter and by Keyv itself. Structural on purpose: the published
 * types of some adapters (`@keyv/sqlite`, `@keyv/postgres`) do not satisfy keyv's own `KeyvStoreAdapter`.
 */
export interface KeyvStoreLike {
  get(key: string): unknown
  set(key: string, value: never, ttl?: number): unknown
  delete(key: string): unknown
  clear(): unknown
}

/** What the `store` option takes: a Keyv storage adapter, a Keyv instance, a `Map`, or a {@link KeyvStoreSpec}. */
export type KeyvStoreOption = KeyvStoreLike | KeyvStoreAdapter | Map<unknown, unknown> | KeyvStoreSpec

/** Options of the `keyv` backend. */
export interface KeyvAdapterOptions {
  /** The Keyv store to wrap. One store serves one cache. */
  store: KeyvStoreOption
  /**
   * Other processes use the same store (a database, not a `Map`). It changes what the capabilities say,
   * and `inc`/`add` then warn once that they are not atomic across processes on this backend.
   * @default false
   */
  shared?: boolean
}

/**
 * How often a store without its own expiry (`@keyv/sqlite`, `@keyv/postgres`, a `Map`) is swept of expired
 * entries. A sweep reads the whole store, so it is rare; reads never return an expired entry meanwhile.
 */
export const KEYV_PURGE_INTERVAL_MS = 10 * 60_000

/** How long `ready()` waits for the store's first answer: some stores (@keyv/redis) retry a refused connection forever. */
export const KEYV_READY_TIMEOUT_MS = 10_000


/** The part of a Keyv storage adapter the bridge uses. Every method may be sync (a `Map`) or async. */
interface RawStore {
  get(key: string): unknown
  set(key: string, value: string, ttl?: number): unknown
  delete(key: string): unknown
  getMany?(keys: string[]): Promise<unknown[]> | unknown[]
  setMany?(entries: { key: string; value: string; ttl?: number }[]): unknown
  deleteMany?(keys: string[]): unknown
  iterator?(namespace?: string): AsyncIterable<[string, unknown]> | Iterable<[string, unknown]>
  disconnect?(force?: boolean): unknown
  on?(event: string, listener: (error: unknown) => void): unknown
  off?(event: string, listener: (error: unknown) => void): unknown
  namespace?: string | undefined
  ttlSupport?: boolean
}

/** Stores (not Keyv instances, not specs) in use by an open cache: one store serves one cache. */
const inUse = new WeakSet<object>()

/**
 * @keyv/postgres keeps one pg pool per process, and any store's `disconnect()` ends it under every other
 * store (a second call throws "Called end on pool more than once"). So the bridge disconnects a postgres
 * store only when the last open postgres bridge of the process closes.
 */
let openPostgresBridges = 0
const isPostgres = (raw: object): boolean => (raw as { opts?: { dialect?: unknown } }).opts?.dialect === 'postgres'

function isSpec(value: object): value is KeyvStoreSpec {
  return typeof (value as { module?: unknown }).module === 'string' && typeof (value as { get?: unknown }).get !== 'function'
}

/** A Keyv instance (from any copy of the keyv package): it has a store and Keyv's own raw getter. */
function isKeyvInstance(value: object): value is { store: object } {
  const v = value as { getRaw?: unknown; store?: unknown; opts?: unknown }
  return typeof v.getRaw === 'function' && typeof v.store === 'object' && v.store !== null && typeof v.opts === 'object'
}

function isStore(value: unknown): value is RawStore {
  if (value instanceof Map) return true
  const v = value as Partial<Record<'get' | 'set' | 'delete' | 'clear', unknown>> | null
  return typeof v === 'object' && v !== null && ['get', 'set', 'delete', 'clear'].every((m) => typeof v[m as 'get'] === 'function')
}

async function storeFromSpec(spec: KeyvStoreSpec): Promise<object> {
  let mod: { default?: unknown }
  try {
    mod = (await import(spec.module)) as { default?: unknown }
  } catch (cause) {
    throw new CacheConfigError(
      `Cannot import \`${spec.module}\` named in option \`store.module\`. Make sure it is installed (npm install ${spec.module}).`,
      { option: 'store', cause },
    )
  }
  const Ctor = mod.default as (new (options?: unknown) => object) | undefined
  if (typeof Ctor !== 'function') {
    throw new CacheConfigError(`\`${spec.module}\` (option \`store.module\`) has no default export to construct a Keyv store with.`, { option: 'store' })
  }
  return new Ctor(spec.options)
}

/** The store itself: a Keyv instance is unwrapped, because the cache does its own keys, serialization and expiry. */
function unwrap(value: object): RawStore {
  const raw = isKeyvInstance(value) ? value.store : value
  if (!isStore(raw)) {
    throw new CacheConfigError(
      'Option `store` must be a Keyv storage adapter (e.g. new KeyvSqlite(...)), a Keyv instance, a Map, or { module, options }.',
      { option: 'store' },
    )
  }
  return raw
}

/**
 * Close a store, forcing it shut (`disconnect(true)`) if it never answered: @keyv/redis still trying its
 * first connection would otherwise wait for that connection forever.
 */
async function disconnect(store: RawStore, answered: boolean): Promise<void> {
  if (typeof store.disconnect !== 'function') return
  await (answered ? store.disconnect() : store.disconnect(true))
}

/** A `Map` seen through the Keyv store interface, with an iterator. */
function mapStore(map: Map<unknown, unknown>): RawStore {
  return {
    get: (key) => map.get(key),
    set: (key, value) => map.set(key, value),
    delete: (key) => map.delete(key),
    *iterator() {
      for (const [key, value] of map) if (typeof key === 'string') yield [key, value]
    },
  }
}

/**
 * Keys are stored as the cache gives them, except U+0000 and U+0001, which are escaped (PostgreSQL text
 * cannot hold U+0000). The code is prefix-free, so `escape(p)` is a prefix of `escape(k)` exactly when `p`
 * is a prefix of `k`, and prefix scans stay correct.
 */
// eslint-disable-next-line no-control-regex -- escaping these two control characters is the point
const ESCAPED = /[\u0000\u0001]/g
// eslint-disable-next-line no-control-regex -- see ESCAPED
const ESCAPE_SEQUENCE = /\u0001([01])/g
function escapeKey(key: string): string {
  return key.includes('\u0000') || key.includes('\u0001') ? key.replace(ESCAPED, (c) => (c === '\u0000' ? '\u00010' : '\u00011')) : key
}
function unescapeKey(key: string): string {
  return key.includes('\u0001') ? key.replace(ESCAPE_SEQUENCE, (_, d: string) => (d === '0' ? '\u0000' : '\u0001')) : key
}

interface Entry {
  value: Payload
  expiresAt: ExpiresAt
}

/**
 * Entries are stored in Keyv's own envelope, `{"value": ..., "expires": ms}`, with Keyv's conventions for
 * strings (a leading `:` is doubled) and bytes (`:base64:`), so a Keyv over the same store reads the same
 * expiry. The expiry is checked on every read: `@keyv/sqlite` and `@keyv/postgres` ignore the TTL argument.
 */
function encodeEntry(value: Payload, expiresAt: ExpiresAt): string {
  const text = typeof value === 'string' ? (value.startsWith(':') ? `:${value}` : value) : `:base64:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}`
  return expiresAt === null ? JSON.stringify({ value: text }) : JSON.stringify({ value: text, expires: expiresAt })
}

function decodeEntry(raw: unknown): Entry | undefined {
  if (typeof raw !== 'string') return undefined
  let data: unknown
  try {
    data = JSON.parse(raw)
  } catch {
    return undefined
  }
  const { value, expires } = (data ?? {}) as { value?: unknown; expires?: unknown }
  if (typeof value !== 'string' || (expires !== undefined && expires !== null && typeof expires !== 'number')) return undefined
  const payload = value.startsWith(':base64:') ? Buffer.from(value.slice(8), 'base64') : value.startsWith(':') ? value.slice(1) : value
  return { value: payload, expiresAt: typeof expires === 'number' ? expires : null }
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
 */
export function keyvAdapter(options: KeyvAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now } = context
  const option = options.store as unknown
  if (typeof option !== 'object' || option === null) {
    throw new CacheConfigError('The keyv backend needs option `store`: a Keyv storage adapter, a Keyv instance, a Map, or { module, options }.', { option: 'store' })
  }
  const shared = options.shared ?? false
  if (shared && (option instanceof Map || (isKeyvInstance(option) && option.store instanceof Map))) {
    throw new CacheConfigError('Option `shared: true` does not fit a Map: a Map lives in one process. Use a database store (e.g. @keyv/postgres) or drop `shared`.', { option: 'shared' })
  }

  let owner: object | undefined
  let store: RawStore | undefined
  let closed = false
  /** The store has answered at least once; one that never did is closed without waiting for it. */
  let answered = false
  let timer: NodeJS.Timeout | undefined
  const onError = (error: unknown): void => {
    context.emit({ type: 'error', error: error instanceof Error ? error : new Error(String(error)) })
  }

  const open = (given: object): void => {
    const raw = unwrap(given)
    if (inUse.has(raw)) {
      throw new CacheConfigError(
        'The Keyv store in option `store` is already used by another open cache. One store serves one cache ' +
          '(the bridge switches its namespace off and closes it with the cache): create a new store object for ' +
          'each cache, or use one cache with `cache.namespace(...)`.',
        { option: 'store' },
      )
    }
    inUse.add(raw)
    owner = raw
    const map = raw instanceof Map ? (raw as Map<unknown, unknown>) : undefined
    if (isPostgres(raw)) openPostgresBridges++
    const tuned = raw as { namespace?: string; throwOnErrors?: boolean; noNamespaceAffectsAll?: boolean }
    // No second prefix: the cache's keys (its keyPrefix included) are stored as they are.
    if (map === undefined) tuned.namespace = undefined
    // @keyv/redis swallows command errors unless told otherwise; a failed write must not look like a success.
    if ('throwOnErrors' in raw) tuned.throwOnErrors = true
    // @keyv/redis hides keys containing '::' from an un-namespaced iterator; the bridge filters by prefix itself.
    if ('noNamespaceAffectsAll' in raw) tuned.noNamespaceAffectsAll = true
    raw.on?.('error', onError)
    store = map === undefined ? raw : mapStore(map)
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

  const read = async (key: string): Promise<Entry | undefined> => {
    const raw = await s().get(escapeKey(key))
    answered = true
    if (raw === undefined || raw === null) return undefined
    const entry = decodeEntry(raw)
    if (entry === undefined) {
      context.emit({ type: 'corrupt', key, detail: 'the Keyv store holds a value that is not a cachekit entry; it is treated as a miss.' })
    }
    return entry
  }
  const write = async (key: string, value: Payload, expiresAt: ExpiresAt): Promise<void> => {
    await s().set(escapeKey(key), encodeEntry(value, expiresAt), ttlOf(expiresAt))
    answered = true
  }
  const remove = async (key: string): Promise<void> => {
    await s().delete(escapeKey(key))
  }

  // One promise chain per key: add, increment, touch, set and delete of a key run one after another.
  const chains = new Map<string, Promise<void>>()
  const exclusive = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (chains.get(key) ?? Promise.resolve()).then(fn)
    const tail = run.then(
      () => {},
      () => {},
    )
    chains.set(key, tail)
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key)
    })
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

  async function* entries(): AsyncGenerator<[string, Entry | undefined]> {
    const st = s()
    if (typeof st.iterator !== 'function') {
      throw new CacheBackendError('This Keyv store has no iterator, so the keyv backend cannot list or clear keys by prefix on it.')
    }
    for await (const [key, raw] of st.iterator(undefined)) {
      if (typeof key === 'string') yield [unescapeKey(key), decodeEntry(raw)]
    }
  }

  /** Keys first, deletes after: some iterators page by offset and would skip rows deleted under them. */
  const collect = async (match: (key: string, entry: Entry | undefined) => boolean): Promise<string[]> => {
    const found: string[] = []
    for await (const [key, entry] of entries()) if (match(key, entry)) found.push(key)
    return found
  }

  const deleteKeys = async (keys: string[]): Promise<void> => {
    const st = s()
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500).map(escapeKey)
      if (typeof st.deleteMany === 'function') await st.deleteMany(batch)
      else await Promise.all(batch.map((k) => st.delete(k)))
    }
  }

  async function release(): Promise<void> {
    if (closed) return
    closed = true
    if (timer !== undefined) clearInterval(timer)
    const raw = owner
    if (raw === undefined) return
    inUse.delete(raw)
    try {
      const lastOfPool = !isPostgres(raw) || --openPostgresBridges === 0
      if (!(raw instanceof Map) && lastOfPool) await disconnect(raw as RawStore, answered)
    } finally {
      ;(raw as RawStore).off?.('error', onError)
    }
  }

  async function purgeExpired(): Promise<number> {
    const t = now()
    const expired = await collect((_key, entry) => entry !== undefined && entry.expiresAt !== null && entry.expiresAt <= t)
    await deleteKeys(expired)
    return expired.length
  }

  return {
    name: 'keyv',
    capabilities: { shared, atomic: false, realClock: false },
    async ready() {
      if (store === undefined && isSpec(option)) open(await storeFromSpec(option))
      if (option instanceof Map) return
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${KEYV_READY_TIMEOUT_MS} ms`)), KEYV_READY_TIMEOUT_MS)
      })
      try {
        // A first read surfaces a store that cannot connect now rather than at the first real call.
        await Promise.race([s().get('cachekit:ready-probe'), timeout])
        answered = true
      } catch (cause) {
        // The store stays open: calls fail promptly until it answers, and close() releases it.
        throw new CacheBackendError(`The Keyv store cannot be reached: ${(cause as Error)?.message ?? String(cause)}`, { cause })
      } finally {
        clearTimeout(timer)
      }
    },
    async get(key) {
      const entry = await read(key)
      return isLive(entry) ? entry.value : undefined
    },
    async getMany(keys) {
      const st = s()
      const escaped = keys.map(escapeKey)
      const raws = typeof st.getMany === 'function' ? await st.getMany(escaped) : await Promise.all(escaped.map((k) => st.get(k)))
      return keys.map((_, i) => {
        const raw = raws[i]
        const entry = raw === undefined || raw === null ? undefined : decodeEntry(raw)
        return isLive(entry) ? entry.value : undefined
      })
    },
    set: (key, value, expiresAt) => exclusive(key, () => write(key, value, expiresAt)),
    async setMany(list: readonly AdapterEntry[]) {
      const st = s()
      if (typeof st.setMany === 'function' && !list.some((e) => chains.has(e.key))) {
        await st.setMany(list.map((e) => ({ key: escapeKey(e.key), value: encodeEntry(e.value, e.expiresAt), ttl: ttlOf(e.expiresAt) })))
        return
      }
      await Promise.all(list.map((e) => exclusive(e.key, () => write(e.key, e.value, e.expiresAt))))
    },
    add(key, value, expiresAt) {
      warnNotAtomic()
      return exclusive(key, async () => {
        if (isLive(await read(key))) return false
        await write(key, value, expiresAt)
        return true
      })
    },
    increment(key, delta, expiresAt) {
      warnNotAtomic()
      return exclusive(key, async () => {
        const entry = await read(key)
        const live = isLive(entry) ? entry : undefined
        const result = addToPayload(key, live?.value, delta)
        await write(key, String(result), live === undefined ? expiresAt : live.expiresAt)
        return result
      })
    },
    delete: (key) =>
      exclusive(key, async () => {
        const entry = await read(key)
        if (entry === undefined) return false
        await remove(key)
        return isLive(entry)
      }),
    async deleteMany(keys) {
      const st = s()
      const escaped = keys.map(escapeKey)
      const raws = typeof st.getMany === 'function' ? await st.getMany(escaped) : await Promise.all(escaped.map((k) => st.get(k)))
      const live = raws.filter((raw) => isLive(raw === undefined || raw === null ? undefined : decodeEntry(raw))).length
      await deleteKeys([...keys])
      return live
    },
    async has(key) {
      return isLive(await read(key))
    },
    deleteIfEquals: (key, value) =>
      exclusive(key, async () => {
        const entry = await read(key)
        if (!isLive(entry) || !samePayload(entry.value, value)) return false
        await remove(key)
        return true
      }),
    async expiresAt(key) {
      const entry = await read(key)
      return isLive(entry) ? entry.expiresAt : undefined
    },
    touch: (key, expiresAt) =>
      exclusive(key, async () => {
        const entry = await read(key)
        if (!isLive(entry)) return false
        await write(key, entry.value, expiresAt)
        return true
      }),
    async clear(prefix) {
      await deleteKeys(await collect((key) => key.startsWith(prefix)))
    },
    async *keys(prefix) {
      for await (const [key, entry] of entries()) if (key.startsWith(prefix) && isLive(entry)) yield key
    },
    purgeExpired,
    close: release,
  }
}

