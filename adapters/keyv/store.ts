/**
 * The Keyv store under the bridge: what the `store` option may be, how a store is loaded from a spec,
 * unwrapped from a Keyv instance, claimed by one cache, tuned for it, and closed.
 */
import { CacheConfigError } from '../../src/errors.js'
import { collectSecrets, redactError, redactText } from '../../src/redact.js'
import type { KeyvStoreSpec } from './definition.js'

/** The part of a Keyv storage adapter the bridge uses. Every method may be sync (a `Map`) or async. */
export interface RawStore {
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

const noop = (): void => {}

export function isSpec(value: object): value is KeyvStoreSpec {
  return typeof (value as { module?: unknown }).module === 'string' && typeof (value as { get?: unknown }).get !== 'function'
}

/** A Keyv instance (from any copy of the keyv package): it has a store and Keyv's own raw getter. */
export function isKeyvInstance(value: object): value is { store: object } {
  const v = value as { getRaw?: unknown; store?: unknown; opts?: unknown }
  return typeof v.getRaw === 'function' && typeof v.store === 'object' && v.store !== null && typeof v.opts === 'object'
}

function isStore(value: unknown): value is RawStore {
  if (value instanceof Map) return true
  const v = value as Partial<Record<'get' | 'set' | 'delete' | 'clear', unknown>> | null
  return typeof v === 'object' && v !== null && ['get', 'set', 'delete', 'clear'].every((m) => typeof v[m as 'get'] === 'function')
}

export async function storeFromSpec(spec: KeyvStoreSpec): Promise<object> {
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
export function unwrap(value: object): RawStore {
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
 * Take `raw` into use for one cache; {@link unclaim} gives it back.
 * @throws {CacheConfigError} if another open cache uses it.
 */
export function claim(raw: object): void {
  if (inUse.has(raw)) {
    throw new CacheConfigError(
      'The Keyv store in option `store` is already used by another open cache. One store serves one cache ' +
        '(the bridge switches its namespace off and closes it with the cache): create a new store object for ' +
        'each cache, or use one cache with `cache.namespace(...)`.',
      { option: 'store' },
    )
  }
  inUse.add(raw)
  if (isPostgres(raw)) openPostgresBridges++
}

/**
 * The cache is done with `raw`: true if the bridge should disconnect it now. Never a `Map`; a postgres
 * store only when it was the last one open in the process, since they share one pool.
 */
export function unclaim(raw: object): boolean {
  inUse.delete(raw)
  const lastOfPool = !isPostgres(raw) || --openPostgresBridges === 0
  return !(raw instanceof Map) && lastOfPool
}

/** Make a store keep the cache's keys as they are and report its failures; a `Map` needs nothing. */
export function tune(raw: object): void {
  const tuned = raw as { namespace?: string; throwOnErrors?: boolean; noNamespaceAffectsAll?: boolean }
  // No second prefix: the cache's keys (its keyPrefix included) are stored as they are.
  if (!(raw instanceof Map)) tuned.namespace = undefined
  // @keyv/redis swallows command errors unless told otherwise; a failed write must not look like a success.
  if ('throwOnErrors' in raw) tuned.throwOnErrors = true
  // @keyv/redis hides keys containing '::' from an un-namespaced iterator; the bridge filters by prefix itself.
  if ('noNamespaceAffectsAll' in raw) tuned.noNamespaceAffectsAll = true
}

/** A `Map` seen through the Keyv store interface, with an iterator. */
export function mapStore(map: Map<unknown, unknown>): RawStore {
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
 * Close a store, forcing it shut (`disconnect(true)`) if it never answered: @keyv/redis still trying its
 * first connection would otherwise wait for that connection forever. A store that does not close within
 * `ms` (a server that stopped answering) is forced shut and left behind.
 */
export async function disconnect(store: RawStore, answered: boolean, ms: number): Promise<void> {
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
