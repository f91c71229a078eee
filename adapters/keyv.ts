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
import { Deadlines, type Watch } from '../src/deadlines.js'
import { parseDuration, type Duration, type Milliseconds } from '../src/duration.js'
import { CacheBackendError, CacheConfigError, CacheError, showKey } from '../src/errors.js'
import { collectSecrets, redactError, redactText } from '../src/redact.js'

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
  /**
   * How long `ready()` waits for the store's first answer before it rejects with a `CacheBackendError`.
   * The store stays open, and later calls work once it answers.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * The longest any one call to the store may take. A call that times out fails with a `CacheBackendError`
   * naming the operation and the key (a miss or `false` with `failOpen`; an error for `inc`, `dec` and `add`).
   * @default '1s'
   */
  commandTimeout?: Duration
}

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
  try {
    return new Ctor(spec.options)
  } catch (error) {
    // The options are often a URL with a password, which a store's error may quote (a TypeError from `new URL` keeps it whole).
    const secrets = collectSecrets(spec.options)
    const safe = redactError(error instanceof Error ? error : new Error(String(error)), secrets)
    throw new CacheConfigError(`\`${spec.module}\` (option \`store.module\`) refused \`store.options\`: ${redactText(safe.message, secrets)}`, { option: 'store', cause: safe })
  }
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
 * first connection would otherwise wait for that connection forever. A store that does not close within
 * `ms` (a server that stopped answering) is forced shut and left behind.
 */
async function disconnect(store: RawStore, answered: boolean, ms: number): Promise<void> {
  if (typeof store.disconnect !== 'function') return
  const closing = Promise.resolve(answered ? store.disconnect() : store.disconnect(true))
  let timer: NodeJS.Timeout | undefined
  const gaveUp = await Promise.race([closing.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, true)))]).finally(() => clearTimeout(timer))
  if (gaveUp) {
    closing.catch(noop)
    if (answered) {
      try {
        await Promise.resolve(store.disconnect(true)).catch(noop)
      } catch {
        // A store whose disconnect throws synchronously is as closed as it will get.
      }
    }
  }
}

const noop = (): void => {}
const isThenable = (value: unknown): value is PromiseLike<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function'

/** One operation's deadline (none on a `Map`) and the write it is waiting for, if any. */
interface Op {
  watch: Watch | undefined
  write: { keys: readonly string[]; answer: PromiseLike<unknown> } | undefined
}

/** Thrown inside an operation that timed out when it would go on to call the store; nobody awaits it. */
const ABANDONED = new CacheBackendError('The operation timed out before this call to the Keyv store, which was not sent.')

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

  let owner: object | undefined
  let store: RawStore | undefined
  let closed = false
  /** The store has answered at least once; one that never did is closed without waiting for it. */
  let answered = false
  let timer: NodeJS.Timeout | undefined
  /** The store is a `Map`, which answers at once: no timeouts to watch. */
  let untimed = false
  /** Credentials in the store's options: hidden in every error of the store before it is passed on. */
  let secrets = collectSecrets(isSpec(option) ? option.options : undefined)
  const redact = (error: unknown): Error =>
    error instanceof Error ? redactError(error, secrets) : new Error(redactText(String(error), secrets))
  const onError = (error: unknown): void => {
    context.emit({ type: 'error', error: redact(error) })
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
    secrets = [...new Set([...secrets, ...collectSecrets((raw as { opts?: unknown }).opts)])]
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
    untimed = map !== undefined
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

  // Timeouts. Each operation (its wait for the key's turn included) and each step of a scan gets
  // `commandTimeout`, watched by one shared timer. An operation that timed out sends nothing more, and a
  // write it had sent holds its keys (`late`) until the store answers it, so that a late answer cannot land
  // after a newer write: later operations on those keys wait for it, within their own timeout.
  const deadlines = new Deadlines(commandTimeout)
  const late = new Map<string, Promise<void>>()

  const timeoutError = (op: string, keys: string | readonly string[] | undefined): CacheBackendError => {
    const key = typeof keys === 'string' ? keys : keys?.[0]
    const what = typeof keys === 'string' || keys?.length === 1 ? ` of key ${showKey(key)}` : key === undefined ? '' : ` of ${keys?.length} keys (the first ${showKey(key)})`
    return new CacheBackendError(
      `The Keyv store did not answer ${op}${what} within ${commandTimeout} ms (${timeoutName}). Check that the store's server is up and not blocked (a lock, a full disk), or raise \`${timeoutName}\`.`,
      key === undefined ? {} : { key },
    )
  }

  const markLate = (keys: readonly string[], answer: PromiseLike<unknown>): void => {
    const settled = Promise.resolve(answer).then(noop, noop)
    for (const key of keys) {
      const before = late.get(key)
      const mark = before === undefined ? settled : Promise.all([before, settled]).then(noop)
      late.set(key, mark)
      void mark.then(() => {
        if (late.get(key) === mark) late.delete(key)
      })
    }
  }

  /** Run one operation within `commandTimeout`. A `Map` answers at once and is not timed. */
  const bounded = <T>(op: string, keys: string | readonly string[] | undefined, work: (o: Op) => Promise<T>): Promise<T> => {
    if (untimed) return work({ watch: undefined, write: undefined })
    return new Promise<T>((resolve, reject) => {
      const o: Op = { watch: undefined, write: undefined }
      const watch = deadlines.start(() => {
        if (o.write !== undefined) markLate(o.write.keys, o.write.answer)
        reject(timeoutError(op, keys))
      })
      o.watch = watch
      work(o).then(
        (value) => {
          if (deadlines.end(watch)) resolve(value)
        },
        (error: unknown) => {
          if (deadlines.end(watch)) reject(error instanceof CacheError ? error : redact(error))
        },
      )
    })
  }

  /** Send a call of `o` to the store, unless `o` has timed out: then nobody waits for it, and the store is left alone. */
  const send = <T>(o: Op, call: () => T): T => {
    if (o.watch?.done === true) throw ABANDONED
    return call()
  }
  const sendWrite = async (o: Op, keys: readonly string[], call: () => unknown): Promise<void> => {
    const answer = send(o, call)
    if (!isThenable(answer)) return
    if (o.watch === undefined) return void (await answer)
    o.write = { keys, answer }
    try {
      await answer
    } finally {
      o.write = undefined
    }
  }

  const read = async (o: Op, key: string): Promise<Entry | undefined> => {
    const raw = await send(o, () => s().get(escapeKey(key)))
    answered = true
    if (raw === undefined || raw === null) return undefined
    const entry = decodeEntry(raw)
    if (entry === undefined) {
      context.emit({ type: 'corrupt', key, detail: 'the Keyv store holds a value that is not a cachekit entry; it is treated as a miss.' })
    }
    return entry
  }
  const write = async (o: Op, key: string, value: Payload, expiresAt: ExpiresAt): Promise<void> => {
    await sendWrite(o, [key], () => s().set(escapeKey(key), encodeEntry(value, expiresAt), ttlOf(expiresAt)))
    answered = true
  }
  const remove = (o: Op, key: string): Promise<void> => sendWrite(o, [key], () => s().delete(escapeKey(key)))
  const readMany = async (o: Op, keys: readonly string[]): Promise<unknown[]> => {
    const st = s()
    const escaped = keys.map(escapeKey)
    return send(o, () => (typeof st.getMany === 'function' ? st.getMany(escaped) : Promise.all(escaped.map((k) => st.get(k)))))
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
    const run = bounded(op, key, async (o) => {
      if (before !== undefined) await before
      const pending = late.size === 0 ? undefined : late.get(key)
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

  /** Every entry of the store; each step of its iterator gets `commandTimeout`. */
  async function* entries(op: string): AsyncGenerator<[string, Entry | undefined]> {
    const st = s()
    if (typeof st.iterator !== 'function') {
      throw new CacheBackendError('This Keyv store has no iterator, so the keyv backend cannot list or clear keys by prefix on it.')
    }
    const source = st.iterator(undefined)
    if (!(Symbol.asyncIterator in source)) {
      for (const [key, raw] of source) if (typeof key === 'string') yield [unescapeKey(key), decodeEntry(raw)]
      return
    }
    const it = source[Symbol.asyncIterator]()
    let finished = false
    try {
      for (;;) {
        const step = await bounded(op, undefined, async (o) => send(o, () => it.next()))
        if (step.done === true) {
          finished = true
          return
        }
        const [key, raw] = step.value
        if (typeof key === 'string') yield [unescapeKey(key), decodeEntry(raw)]
      }
    } finally {
      // Not awaited: after a timeout the iterator is still waiting for the store.
      if (!finished) void Promise.resolve(it.return?.()).catch(noop)
    }
  }

  /** Keys first, deletes after: some iterators page by offset and would skip rows deleted under them. */
  const collect = async (op: string, match: (key: string, entry: Entry | undefined) => boolean): Promise<string[]> => {
    const found: string[] = []
    for await (const [key, entry] of entries(op)) if (match(key, entry)) found.push(key)
    return found
  }

  /** Deletes in batches of 500, each within `commandTimeout`. */
  const deleteKeys = async (op: string, keys: readonly string[]): Promise<void> => {
    const st = s()
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500)
      const escaped = batch.map(escapeKey)
      await bounded(op, batch, (o) =>
        sendWrite(o, batch, () => (typeof st.deleteMany === 'function' ? st.deleteMany(escaped) : Promise.all(escaped.map((k) => st.delete(k))))),
      )
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
      if (!(raw instanceof Map) && lastOfPool) await disconnect(raw as RawStore, answered, commandTimeout)
    } finally {
      ;(raw as RawStore).off?.('error', onError)
    }
  }

  async function purgeExpired(): Promise<number> {
    const t = now()
    const expired = await collect('purgeExpired', (_key, entry) => entry !== undefined && entry.expiresAt !== null && entry.expiresAt <= t)
    await deleteKeys('purgeExpired', expired)
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
      bounded('get', key, async (o) => {
        const entry = await read(o, key)
        return isLive(entry) ? entry.value : undefined
      }),
    getMany: (keys) =>
      bounded('getMany', keys, async (o) => {
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
      if (typeof st.setMany === 'function' && !list.some((e) => chains.has(e.key) || late.has(e.key))) {
        const keys = list.map((e) => e.key)
        const entries = list.map((e) => ({ key: escapeKey(e.key), value: encodeEntry(e.value, e.expiresAt), ttl: ttlOf(e.expiresAt) }))
        // The batch holds its keys' chains like any write, so a set of one of them waits for it.
        const run = bounded('setMany', keys, (o) => sendWrite(o, keys, () => st.setMany?.(entries)))
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
      const raws = await bounded('deleteMany', keys, (o) => readMany(o, keys))
      const live = raws.filter((raw) => isLive(raw === undefined || raw === null ? undefined : decodeEntry(raw))).length
      await deleteKeys('deleteMany', keys)
      return live
    },
    has: (key) => bounded('has', key, async (o) => isLive(await read(o, key))),
    deleteIfEquals: (key, value) =>
      exclusive('deleteIfEquals', key, async (o) => {
        const entry = await read(o, key)
        if (!isLive(entry) || !samePayload(entry.value, value)) return false
        await remove(o, key)
        return true
      }),
    expiresAt: (key) =>
      bounded('expiresAt', key, async (o) => {
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
      await deleteKeys('clear', await collect('clear', (key) => key.startsWith(prefix)))
    },
    async *keys(prefix) {
      for await (const [key, entry] of entries('keys')) if (key.startsWith(prefix) && isLive(entry)) yield key
    },
    purgeExpired,
    close: release,
  }
}
