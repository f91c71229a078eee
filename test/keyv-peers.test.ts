/**
 * cacheable and cache-manager over `toKeyvStore(...)`, end to end, for every loadable registry backend.
 * Where a peer mishandles a value, the test asserts what it does (so a fix upstream shows up here) and
 * shows that cachekit's own API gets the same value right.
 */
import { createCache as createCacheManager } from 'cache-manager'
import { Cacheable } from 'cacheable'
import Keyv from 'keyv'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createCache, type Cache } from '../src/index.js'
import { toKeyvStore } from '../src/to-keyv-store.js'
import { loadableBackends } from './support/keyv-backends.js'
import { uniquePrefix } from './support/prefix.js'
import { guardSharedRedis } from './support/redis.js'

/** The values a cache must not mistake for a miss. */
const FALSY: readonly (readonly [string, unknown])[] = [
  ['zero', 0],
  ['false', false],
  ['empty string', ''],
  ['null', null],
]

const opened: Cache[] = []
afterEach(async () => {
  vi.useRealTimers()
  for (const c of opened.splice(0)) {
    if (!c.initialized) continue
    await c.clear()
    await c.close()
  }
})

const backends = await loadableBackends('the cacheable and cache-manager tests')
if (backends.some((b) => b.type === 'redis')) guardSharedRedis('keyv-peers')

for (const backend of backends) {
  /** A cachekit cache over the backend, on the (possibly faked) Date clock that Keyv and the peers use. */
  const cachekit = async (): Promise<Cache> => {
    const c = createCache({ ...backend.config(), keyPrefix: uniquePrefix('keyv-peers'), now: () => Date.now() })
    opened.push(c)
    await c.ready()
    return c
  }

  describe(`cacheable with secondary: new Keyv({ store: toKeyvStore(${backend.type}) })`, () => {
    it('sets, gets, expires and clears through the secondary', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      const ck = await cachekit()
      const cacheable = new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) })
      await cacheable.set('k', { a: 1 }, 1_000)
      await cacheable.set('other', 'o')
      // Keyv's default namespace "keyv" is the only prefix the key gets.
      expect(await ck.has('keyv:k')).toBe(true)
      // A new Cacheable has an empty primary: this read comes from cachekit.
      const fresh = new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) })
      expect(await fresh.get('k')).toEqual({ a: 1 })
      // Keyv keeps an entry live at its expiry instant (`now > expires`); cachekit does not (`expiresAt <= now`).
      vi.setSystemTime(Date.now() + 1_001)
      expect(await cacheable.get('k')).toBeUndefined()
      expect(await new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) }).get('k')).toBeUndefined()
      expect(await ck.has('keyv:k')).toBe(false)
      expect(await ck.has('keyv:other')).toBe(true)
      await cacheable.clear()
      expect(await ck.has('keyv:other')).toBe(false)
      expect(await new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) }).get('other')).toBeUndefined()
    })

    it('get() drops 0, false, "" and null found in the secondary (cacheable 2.5 checks `secondaryResult?.value`); cachekit does not', async () => {
      const ck = await cachekit()
      const writer = new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) })
      for (const [key, value] of FALSY) await writer.set(key, value)
      const keys = FALSY.map(([key]) => key)
      const values = FALSY.map(([, value]) => value)

      const reader = new Cacheable({ secondary: new Keyv({ store: toKeyvStore(ck) }) })
      for (const key of keys) {
        // Observed peer behaviour: a miss, though the value is there and has() says so ...
        expect(await reader.get(key)).toBeUndefined()
        expect(await reader.has(key)).toBe(true)
        // ... and the primary is not refilled.
        expect(await reader.primary.get(key)).toBeUndefined()
      }
      // Its getMany checks `!== undefined` and gets them right.
      expect(await reader.getMany(keys)).toEqual(values)
      // The store returns them: Keyv over toKeyvStore reads each value exactly.
      const keyv = new Keyv({ store: toKeyvStore(ck) })
      for (const [key, value] of FALSY) expect(await keyv.get(key)).toBe(value)

      // cachekit's own API: each falsy value is a hit, and getOrSet runs its factory once.
      for (const [key, value] of FALSY) {
        await ck.set(`own:${key}`, value)
        expect(await ck.get(`own:${key}`)).toBe(value)
        expect(await ck.has(`own:${key}`)).toBe(true)
        const factory = vi.fn(() => value)
        expect(await ck.getOrSet(`lazy:${key}`, factory)).toBe(value)
        expect(await ck.getOrSet(`lazy:${key}`, factory)).toBe(value)
        expect(factory).toHaveBeenCalledTimes(1)
      }
    })
  })

  describe(`cache-manager 7: createCache({ stores: [new Keyv({ store: toKeyvStore(${backend.type}) })] })`, () => {
    it('sets, gets, reports the TTL, expires, deletes and clears only its namespace', async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      const ck = await cachekit()
      await ck.set('mine', 'not cache-manager')
      const manager = createCacheManager({ stores: [new Keyv({ store: toKeyvStore(ck), namespace: 'cm' })] })
      await manager.set('k', { a: [1] }, 1_000)
      await manager.set('d', 'x')
      expect(await manager.get('k')).toEqual({ a: [1] })
      expect(await ck.has('cm:k')).toBe(true)
      expect(await manager.ttl('k')).toBe(Date.now() + 1_000)
      vi.setSystemTime(Date.now() + 1_001)
      expect(await manager.get('k')).toBeUndefined()
      expect(await ck.has('cm:k')).toBe(false)
      expect(await manager.del('d')).toBe(true)
      expect(await manager.get('d')).toBeUndefined()
      await manager.set('c', 1)
      await manager.clear()
      expect(await manager.get('c')).toBeUndefined()
      expect(await ck.get('mine')).toBe('not cache-manager')
    })

    it('round-trips 0, false, "" and null with get, mget and wrap', async () => {
      const ck = await cachekit()
      const manager = createCacheManager({ stores: [new Keyv({ store: toKeyvStore(ck) })] })
      for (const [key, value] of FALSY) {
        await manager.set(key, value)
        expect(await manager.get(key)).toBe(value)
        const factory = vi.fn(async () => value)
        expect(await manager.wrap(`w:${key}`, factory)).toBe(value)
        expect(await manager.wrap(`w:${key}`, factory)).toBe(value)
        expect(factory).toHaveBeenCalledTimes(1)
      }
      expect(await manager.mget(FALSY.map(([key]) => key))).toEqual(FALSY.map(([, value]) => value))
    })

    it('as a second tier: get() finds falsy values but does not refill the first tier; wrap() does', async () => {
      const ck = await cachekit()
      const writer = createCacheManager({ stores: [new Keyv(), new Keyv({ store: toKeyvStore(ck) })] })
      for (const [key, value] of FALSY) await writer.set(key, value)
      const first = new Keyv()
      const reader = createCacheManager({ stores: [first, new Keyv({ store: toKeyvStore(ck) })] })
      for (const [key, value] of FALSY) {
        expect(await reader.get(key)).toBe(value)
        // Observed: cache-manager 7's get() does not copy a lower-tier hit upwards.
        expect(await first.get(key)).toBeUndefined()
        expect(await reader.wrap(key, async () => 'factory ran')).toBe(value)
        expect(await first.get(key)).toBe(value)
      }
    })
  })
}
