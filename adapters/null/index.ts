import type { AdapterContext, CacheAdapter } from '../../src/adapter.js'
import type { NullAdapterOptions } from './definition.js'

export type { NullAdapterOptions } from './definition.js'

/**
 * Flask-Caching's NullCache: stores nothing. `get` always misses, `set` reports success, `add` succeeds
 * (nothing was there), `inc` returns the delta as if the key were new. For tests, and for switching
 * caching off by config (`CACHE_TYPE=null`) without touching code.
 */
export function nullAdapter(_options: NullAdapterOptions, _context: AdapterContext): CacheAdapter {
  return {
    name: 'null',
    capabilities: { shared: false, atomic: true, realClock: false },
    get: () => undefined,
    getMany: (keys) => keys.map(() => undefined),
    set: () => {},
    setMany: () => {},
    add: () => true,
    increment: (_key, delta) => delta,
    delete: () => false,
    deleteMany: () => 0,
    has: () => false,
    touch: () => false,
    expiresAt: () => undefined,
    deleteIfEquals: () => false,
    clear: () => {},
    keys: () => [],
    purgeExpired: () => 0,
    close: () => {},
  }
}
