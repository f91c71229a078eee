/**
 * `cachekit/keyv`: any cachekit cache or adapter as a Keyv storage adapter, so that Keyv, cacheable and
 * cache-manager can use cachekit's process-safe filesystem and SQLite backends without changing their code.
 *
 * @example
 * import Keyv from 'keyv'
 * import { createCache } from 'cachekit'
 * import { toKeyvStore } from 'cachekit/keyv'
 * const keyv = new Keyv({ store: toKeyvStore(createCache('sqlite:./.cache/app.sqlite')) })
 */
import { EventEmitter } from 'node:events'
import type { KeyvStoreAdapter } from 'keyv'
import type { CacheAdapter } from './adapter.js'
import { Cache } from './cache.js'
import { CacheArgumentError, CacheBackendError } from './errors.js'
import { createCache } from './singleton.js'

/** How many values the iterator fetches at a time. */
const ITERATOR_BATCH = 100

/** A cachekit cache seen by Keyv: a `KeyvStoreAdapter` whose `namespace` Keyv sets. */
export class CachekitKeyvStore extends EventEmitter implements KeyvStoreAdapter {
  /**
   * What Keyv reads about a store. Keyv 5 enables `Keyv#iterator()` only for stores whose `opts.dialect` or
   * `opts.url` names one of its built-in iterable backends, so the URL carries one such name.
   */
  opts: { dialect: string; url: string; [option: string]: unknown }
  /** Set by Keyv: keys arrive as `namespace:key`, and `clear()` removes only this namespace. */
  namespace?: string | undefined
  /** Expiry is kept by the cache; a Keyv over this store passes the TTL in ms. */
  readonly ttlSupport = true
  /** The cache behind this store. */
  readonly cache: Cache
  readonly #owned: boolean

  /** @internal Use {@link toKeyvStore}. */
  constructor(cache: Cache, owned: boolean) {
    super()
    this.cache = cache
    this.#owned = owned
    const type = cache.initialized ? cache.stats().type : 'cache'
    this.opts = { dialect: 'cachekit', url: `cachekit://${type}?keyv-iterable=sqlite` }
  }

  /** The cache's view of this store's namespace. */
  #view(): Cache {
    return this.namespace ? this.cache.namespace(`${this.namespace}:`) : this.cache
  }

  async get<Value>(key: string): Promise<Value | undefined> {
    return this.cache.get<Value>(key)
  }

  async getMany<Value>(keys: string[]): Promise<(Value | undefined)[]> {
    return this.cache.getMany<Value>(keys)
  }

  /** Keyv's "no TTL" means never expire, whatever the cache's `defaultTtl`. */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    return this.cache.set(key, value, ttl ?? 0)
  }

  /**
   * Store entries, grouped by TTL. Like keyv's own stores it resolves to nothing; a write the backend
   * refused rejects, so that `Keyv#setMany` reports `false` for each entry instead of a silent success.
   */
  async setMany(entries: { key: string; value: unknown; ttl?: number }[]): Promise<void> {
    const byTtl = new Map<number, [string, unknown][]>()
    for (const { key, value, ttl } of entries) {
      const group = byTtl.get(ttl ?? 0) ?? []
      group.push([key, value])
      byTtl.set(ttl ?? 0, group)
    }
    const stored = await Promise.all([...byTtl].map(([ttl, group]) => this.cache.setMany(group, ttl)))
    if (stored.includes(false)) throw new CacheBackendError('setMany: the cache could not store every entry (see its error events).')
  }

  async delete(key: string): Promise<boolean> {
    return this.cache.delete(key)
  }

  /** True if any of the keys existed. */
  async deleteMany(keys: string[]): Promise<boolean> {
    return (await this.cache.deleteMany(keys)) > 0
  }

  /** Remove this namespace's keys (every key of the cache when Keyv has no namespace), nothing else. */
  async clear(): Promise<void> {
    await this.#view().clear()
  }

  /** True for a live key: an expired entry is absent, unlike keyv's own `has` on some stores. */
  async has(key: string): Promise<boolean> {
    return this.cache.has(key)
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return Promise.all(keys.map((key) => this.cache.has(key)))
  }

  /** Live `[key, value]` pairs of `namespace` (or of the whole cache), keys as Keyv stored them. */
  async *iterator<Value>(namespace?: string): AsyncGenerator<[string, Value], void> {
    const prefix = namespace ? `${namespace}:` : ''
    const view = namespace ? this.cache.namespace(prefix) : this.cache
    async function* withValues(keys: string[]): AsyncGenerator<[string, Value]> {
      const values = await view.getMany<Value>(keys)
      for (const [i, key] of keys.entries()) {
        const value = values[i]
        // A key that expired (or was deleted) since it was listed is skipped, as Keyv skips expired entries.
        if (value !== undefined) yield [prefix + key, value]
      }
    }
    let batch: string[] = []
    for await (const key of view.keys()) {
      batch.push(key)
      if (batch.length >= ITERATOR_BATCH) {
        yield* withValues(batch)
        batch = []
      }
    }
    if (batch.length > 0) yield* withValues(batch)
  }

  /** Close the cache if this store made it (from an adapter); a cache you passed in stays yours to close. */
  async disconnect(): Promise<void> {
    if (this.#owned) await this.cache.close()
  }
}

function isAdapter(value: unknown): value is CacheAdapter {
  const v = value as Partial<CacheAdapter> | null
  return typeof v === 'object' && v !== null && typeof v.increment === 'function' && typeof v.capabilities === 'object'
}

/**
 * A Keyv storage adapter over a cachekit `Cache` (from `createCache(...)`, or the `cache` singleton) or a
 * `CacheAdapter`. Values go through the cache's serializer, so everything Keyv hands over round-trips
 * exactly; expiry, `has` and `clear()` follow cachekit's rules (an expired entry is absent; `clear()`
 * removes only the Keyv namespace's keys). A Keyv `set` without a TTL never expires.
 *
 * @example
 * const cache = createCache({ type: 'sqlite', path: './.cache/app.sqlite' })
 * const keyv = new Keyv({ store: toKeyvStore(cache), namespace: 'sessions' })
 * @throws {CacheArgumentError} for anything that is neither a Cache nor a CacheAdapter.
 */
export function toKeyvStore(source: Cache | CacheAdapter): CachekitKeyvStore {
  if (source instanceof Cache) return new CachekitKeyvStore(source, false)
  if (isAdapter(source)) return new CachekitKeyvStore(createCache({ adapter: source, defaultTtl: 0 }), true)
  throw new CacheArgumentError('toKeyvStore takes a cachekit Cache (from createCache(...)) or a CacheAdapter.')
}
