import { LRUCache } from 'lru-cache'
import type { BenchBackend, Contestant } from '../harness.js'
import { bentoL1, cachekit, keyvPeers, TTL_MS } from '../peers.js'

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

export const memory: BenchBackend = {
  name: 'memory',
  inflight: [1],
  batch: 200,
  async open() {
    return [...(await cachekit('memory', { type: 'memory' })), raw(), ...keyvPeers(undefined, () => undefined), bentoL1('bentocache')]
  },
  notes: ['memory: one process; cachekit and the peers copy values in and out (cachekit encodes them), raw lru-cache keeps references.'],
}
