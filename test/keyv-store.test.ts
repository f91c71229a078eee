/**
 * Keyv's own test suite (@keyv/test-suite: API, values, namespaces, iterator) against `toKeyvStore(...)`
 * for every adapter in the registry that can be loaded here.
 */
import { keyvApiTests, keyvIteratorTests, keyvNamespaceTest, keyvValueTests } from '@keyv/test-suite'
import Keyv from 'keyv'
import * as vitest from 'vitest'
import { afterAll, describe, expect, it } from 'vitest'
import { createCache, type Cache } from '../src/index.js'
import { toKeyvStore } from '../src/to-keyv-store.js'
import { ADAPTERS } from '../src/registry.js'
import { configFor, EXCLUDED, loadableBackends } from './support/keyv-backends.js'
import { uniquePrefix } from './support/prefix.js'
import { guardSharedRedis } from './support/redis.js'

it('every adapter of the registry is either covered here or excluded with a reason', () => {
  const uncovered = ADAPTERS.filter((d) => EXCLUDED[d.type] === undefined && configFor(d, '/tmp') === undefined).map((d) => d.type)
  expect(uncovered).toEqual([])
})

const backends = await loadableBackends('@keyv/test-suite')
if (backends.some((b) => b.type === 'redis')) guardSharedRedis('keyv-store')

for (const backend of backends) {
  describe(`@keyv/test-suite over toKeyvStore(${backend.type})`, () => {
    let cache: Cache | undefined
    const store = () => {
      cache ??= createCache({ ...backend.config(), keyPrefix: uniquePrefix('keyv-suite') })
      return toKeyvStore(cache)
    }
    afterAll(async () => {
      if (cache === undefined) return
      await cache.clear()
      await cache.close()
    })
    keyvApiTests(vitest, Keyv, store)
    keyvValueTests(vitest, Keyv, store)
    keyvNamespaceTest(vitest, Keyv, store)
    keyvIteratorTests(vitest, Keyv, store)
  })
}

describe('toKeyvStore', () => {
  it('takes an adapter too, and disconnect() closes only what it made', async () => {
    const { memoryAdapter } = await import('../adapters/memory/index.js')
    const adapter = memoryAdapter({}, { now: Date.now, threshold: 100, emit: () => {} })
    const owned = toKeyvStore(adapter)
    const keyv = new Keyv({ store: owned })
    await keyv.set('k', { a: 1 })
    expect(await keyv.get('k')).toEqual({ a: 1 })
    await keyv.disconnect()
    expect(owned.cache.initialized).toBe(false)

    const mine = createCache('memory:')
    await new Keyv({ store: toKeyvStore(mine) }).disconnect()
    expect(mine.initialized).toBe(true)
    await mine.close()
    expect(() => toKeyvStore({} as never)).toThrow(/takes a cachekit Cache/)
  })

  it('iterates past its batch size, within the namespace only', async () => {
    const cache = createCache('memory:')
    const keyv = new Keyv({ store: toKeyvStore(cache), namespace: 'many' })
    const other = new Keyv({ store: toKeyvStore(cache), namespace: 'other' })
    await other.set('x', 'not mine')
    await keyv.setMany(Array.from({ length: 250 }, (_, i) => ({ key: `k${i}`, value: i })))
    const seen = new Map<string, unknown>()
    for await (const [key, value] of keyv.iterator!(undefined)) seen.set(key as string, value)
    expect(seen.size).toBe(250)
    expect(seen.get('k249')).toBe(249)
    await cache.close()
  })

  it("a Keyv set without a TTL never expires, whatever the cache's defaultTtl", async () => {
    let t = Date.now()
    const cache = createCache({ type: 'memory', defaultTtl: '1s', now: () => t })
    const store = toKeyvStore(cache)
    await store.set('forever', 'f')
    await store.set('short', 's', 1_000)
    t += 10_000
    expect(await store.get('forever')).toBe('f')
    expect(await store.get('short')).toBeUndefined()
    expect(await store.has('short')).toBe(false)
    await cache.close()
  })
})
