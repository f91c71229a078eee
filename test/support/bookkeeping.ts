/**
 * cachekit's own keys (leases, freshness markers, memoize versions), as a test reads and plants them: through
 * the engine, since the public API refuses keys with `|ck:` (see `src/engine.ts`).
 */
import type { Cache } from '../../src/cache.js'
import type { Duration } from '../../src/duration.js'
import { ENGINE } from '../../src/engine.js'

export interface Bookkeeping {
  get(key: string): Promise<unknown>
  has(key: string): Promise<boolean>
  add(key: string, value: unknown, ttl?: Duration): Promise<boolean>
  delete(key: string): Promise<boolean>
}

/** The bookkeeping keys of `cache` (its prefix and namespaces apply, as to its own keys). */
export function bookkeeping(cache: Cache): Bookkeeping {
  const engine = () => cache[ENGINE]()
  return {
    get: async (key) => {
      const e = await engine()
      return e.get(key, e.budget())
    },
    has: async (key) => {
      const e = await engine()
      return (await e.get(key, e.budget())) !== undefined
    },
    add: async (key, value, ttl) => {
      const e = await engine()
      return e.add(key, value, ttl, e.budget())
    },
    delete: async (key) => {
      const e = await engine()
      return e.delete(key, e.budget())
    },
  }
}
