/** Contestants shared by several backends: cachekit itself and the Keyv-based peers over a given store. */
import { Cacheable } from 'cacheable'
import { createCache as createCacheManager } from 'cache-manager'
import Keyv from 'keyv'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { createCache, type CacheConfig } from '../src/index.js'
import { findAdapter } from '../src/registry.js'
import type { Contestant } from './harness.js'

/** Every contestant writes with this TTL, so that all pay for expiry bookkeeping alike. */
export const TTL_MS = 3_600_000

/** cachekit over `config`, or nothing if this branch has no adapter of that type yet. */
export async function cachekit(type: string, config: Exclude<CacheConfig, string>, name = 'cachekit'): Promise<Contestant[]> {
  if (findAdapter(type) === undefined) return []
  const cache = createCache({ ...config, defaultTtl: TTL_MS })
  await cache.ready()
  return [
    {
      name,
      role: 'cachekit',
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      getOrSet: (k, f) => cache.getOrSet(k, f),
      inc: (k) => cache.inc(k),
      close: () => cache.close(),
    },
  ]
}

/**
 * keyv, cacheable and cache-manager, each over its own store from `store()` (a Keyv storage adapter, or
 * undefined for Keyv's in-memory Map). `label` names the adapter in the table, e.g. `@keyv/sqlite`.
 */
export function keyvPeers(label: string | undefined, store: (name: string) => Keyv['opts']['store'] | undefined): Contestant[] {
  const keyvOf = (name: string) => {
    const s = store(name)
    return s === undefined ? new Keyv({ namespace: name }) : new Keyv({ store: s, namespace: name })
  }
  const suffix = label === undefined ? '' : ` + ${label}`
  const keyv = keyvOf('bench-keyv')
  const cacheable = label === undefined ? new Cacheable({ ttl: TTL_MS }) : new Cacheable({ primary: keyvOf('bench-cacheable'), ttl: TTL_MS })
  const manager = createCacheManager({ stores: [keyvOf('bench-cache-manager')], ttl: TTL_MS })
  return [
    {
      name: `keyv${suffix}`,
      role: 'peer',
      get: (k) => keyv.get(k),
      set: (k, v) => keyv.set(k, v, TTL_MS),
      close: () => keyv.disconnect(),
    },
    {
      name: `cacheable${suffix}`,
      role: 'peer',
      get: (k) => cacheable.get(k),
      set: (k, v) => cacheable.set(k, v, TTL_MS),
      getOrSet: (k, f) => cacheable.getOrSet(k, f, { ttl: TTL_MS }),
      close: () => cacheable.disconnect(),
    },
    {
      name: `cache-manager${suffix}`,
      role: 'peer',
      get: (k) => manager.get(k),
      set: (k, v) => manager.set(k, v, TTL_MS),
      getOrSet: (k, f) => manager.wrap(k, f, TTL_MS),
      close: () => manager.disconnect(),
    },
  ]
}

/**
 * bentocache's memory tier alone (its L1, no L2): what a read of a value held in memory costs there, beside
 * cachekit's `l1` hit. Its Redis driver needs ioredis (not installed), so no L2 behind it.
 */
export function bentoL1(name = 'bentocache (L1)'): Contestant {
  const bento = new BentoCache({ default: 'm', stores: { m: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) } })
  return {
    name,
    role: 'peer',
    get: (k) => bento.get({ key: k }),
    set: (k, v) => bento.set({ key: k, value: v, ttl: TTL_MS }),
    getOrSet: (k, f) => bento.getOrSet({ key: k, factory: f, ttl: TTL_MS }),
    close: () => bento.disconnectAll(),
  }
}
