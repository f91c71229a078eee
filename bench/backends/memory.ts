import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { LRUCache } from 'lru-cache'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'

/** lru-cache, as cachekit's memory adapter uses it: values kept as they are, a TTL per entry. */
function raw(): Contestant {
  const lru = new LRUCache<string, object>({ max: 10_000, ttl: TTL_MS })
  return {
    name: 'raw lru-cache',
    role: 'raw',
    get: (k) => lru.get(k),
    set: (k, v) => lru.set(k, v as object),
    getOrSet(k, f) {
      const hit = lru.get(k)
      return hit !== undefined ? Promise.resolve(hit) : f().then((v) => (lru.set(k, v as object), v))
    },
    inc(k) {
      const n = ((lru.get(k) as unknown as number | undefined) ?? 0) + 1
      lru.set(k, n as unknown as object)
      return n
    },
    close: () => lru.clear(),
  }
}

function bento(): Contestant {
  const bento = new BentoCache({ default: 'm', stores: { m: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) } })
  return {
    name: 'bentocache',
    role: 'peer',
    get: (k) => bento.get({ key: k }),
    set: (k, v) => bento.set({ key: k, value: v, ttl: TTL_MS }),
    getOrSet: (k, f) => bento.getOrSet({ key: k, factory: f, ttl: TTL_MS }),
    close: () => bento.disconnectAll(),
  }
}

export const memory: BenchBackend = {
  name: 'memory',
  inflight: [1],
  batch: 200,
  async open() {
    return [...(await cachekit('memory', { type: 'memory' })), raw(), ...keyvPeers(undefined, () => undefined), bento()]
  },
  notes: ['memory: one process; cachekit and the peers copy values in and out (cachekit encodes them), raw lru-cache keeps references.'],
}
