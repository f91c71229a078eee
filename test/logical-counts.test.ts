/**
 * The user's numbers are the user's: after getOrSet (with a cross-process lease, and with `grace`) and
 * memoize, `stats()`, the `hit`/`miss`/`set`/`delete` events and `keys()` name only the user's keys, and count
 * each call once. Leases, freshness markers and memoize versions go through the engine, which counts nothing.
 * On SQLite, a shared and atomic backend, so that every getOrSet takes its lease.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { CacheArgumentError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { FakeClock } from '../src/testing/harness.js'

const dirs: string[] = []
const caches: Cache[] = []
afterEach(async () => {
  for (const c of caches.splice(0)) await c.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function open(clock: FakeClock): { cache: Cache; events: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-counts-'))
  dirs.push(dir)
  const cache = createCache({ type: 'sqlite', path: join(dir, 'cache.db'), now: clock.now, keyPrefix: 'app:' })
  caches.push(cache)
  const events: string[] = []
  for (const name of ['hit', 'miss', 'set', 'delete'] as const) cache.on(name, (key: string) => events.push(`${name} ${key}`))
  return { cache, events }
}

async function allKeys(cache: Cache): Promise<string[]> {
  const keys: string[] = []
  for await (const key of cache.keys()) keys.push(key)
  return keys.sort()
}

describe('logical operations only', () => {
  it('getOrSet with a lease: one miss and one set for a computed value, one hit for a stored one', async () => {
    const { cache, events } = open(new FakeClock())
    await cache.ready()
    expect(cache.stats().capabilities).toMatchObject({ shared: true, atomic: true })
    expect(await cache.getOrSet('report', () => 'r1', '1m')).toBe('r1')
    expect(await cache.getOrSet('report', () => 'r2', '1m')).toBe('r1')
    expect(events).toEqual(['miss report', 'set report', 'hit report'])
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, sets: 1, deletes: 0, errors: 0 })
    expect(await allKeys(cache)).toEqual(['report'])
  })

  it('concurrent callers of one key: the one that runs the factory is the miss, the ones it answers are hits', async () => {
    const { cache, events } = open(new FakeClock())
    let runs = 0
    const factory = async () => {
      runs++
      await new Promise((resolve) => setTimeout(resolve, 20))
      return 'v'
    }
    expect(await Promise.all([1, 2, 3].map(() => cache.getOrSet('hot', factory, '1m')))).toEqual(['v', 'v', 'v'])
    expect(runs).toBe(1)
    expect(events.filter((e) => e.startsWith('miss'))).toEqual(['miss hot'])
    expect(events.filter((e) => e.startsWith('set'))).toEqual(['set hot'])
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 1 })
  })

  it('getOrSet with grace: the freshness marker is never counted, listed or announced; a stale serve is a hit', async () => {
    const clock = new FakeClock()
    const { cache, events } = open(clock)
    const options = { ttl: '1m', grace: '10m', timeout: '5s' } as const
    expect(await cache.getOrSet('feed', () => 'f1', options)).toBe('f1')
    expect(await cache.getOrSet('feed', () => 'f2', options)).toBe('f1')
    clock.advance(61_000) // stale: served while one refresh runs (awaited here, by `timeout`)
    expect(await cache.getOrSet('feed', () => 'f3', options)).toBe('f3')
    // The refresh stores before the call that waited for it is answered.
    expect(events).toEqual(['miss feed', 'set feed', 'hit feed', 'set feed', 'hit feed'])
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 2, deletes: 0 })
    expect(await allKeys(cache)).toEqual(['feed'])
  })

  it('memoize: one miss and one set per computed call, one hit per cached call; its versions stay out of sight', async () => {
    const { cache, events } = open(new FakeClock())
    let runs = 0
    const load = cache.memoize(
      function load(n: number) {
        runs++
        return n * 2
      },
      { ttl: '1m' },
    )
    const entry = load.makeCacheKey(1)
    expect(await load(1)).toBe(2)
    expect(await load(1)).toBe(2)
    await cache.deleteMemoized(load) // a new version: bookkeeping, no event
    expect(await load(1)).toBe(2)
    expect(runs).toBe(2)
    expect(events).toEqual([`miss ${entry}`, `set ${entry}`, `hit ${entry}`, `miss ${entry}`, `set ${entry}`])
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 2, sets: 2, deletes: 0 })
    expect(await allKeys(cache)).toEqual([entry])
  })

  it('the marker of bookkeeping keys is refused in a key or a namespace, by name, and nothing is written', async () => {
    const { cache } = open(new FakeClock())
    await expect(cache.set('report|ck:lease', 'mine')).rejects.toThrow(CacheArgumentError)
    await expect(cache.set('report|ck:lease', 'mine')).rejects.toThrow(/The key "report\|ck:lease" contains "\|ck:"/)
    await expect(cache.get('x|ck:fresh')).rejects.toThrow(/"\|ck:"/)
    expect(() => cache.namespace('a|ck:')).toThrow(/namespace prefix "a\|ck:" contains "\|ck:"/)
    expect(() => cache.memoize(() => 1, { name: 'load|ck:x' })).toThrow(/the name "load\|ck:x" contains "\|ck:"/)
    expect(await allKeys(cache)).toEqual([])
    // One `|` or a `ck:` alone is the user's, as before.
    expect(await cache.set('a|b', 1)).toBe(true)
    expect(await cache.set('ck:x', 1)).toBe(true)
    expect(await allKeys(cache)).toEqual(['a|b', 'ck:x'])
  })
})
