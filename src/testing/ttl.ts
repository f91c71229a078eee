import { expect, it } from 'vitest'
import type { AdapterCapabilities } from '../adapter.js'
import type { Harness } from './harness.js'

export function ttlTests(h: () => Harness, caps: AdapterCapabilities): void {
  const listKeys = caps.listKeys !== false
  it(`expired entries are never returned by get, getMany, has${listKeys ? ' or keys' : ' (keys not checked: the adapter declares listKeys: false)'}`, async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('short', 's', hh.shortTtl)
    await c.set('long', 'l', 0)
    expect(await c.get('short')).toBe('s')
    await hh.elapse(hh.shortTtl)
    expect(await c.get('short')).toBeUndefined()
    expect(await c.getMany(['short', 'long'])).toEqual([undefined, 'l'])
    expect(await c.has('short')).toBe(false)
    if (!listKeys) return
    const keys: string[] = []
    for await (const k of c.keys()) keys.push(k)
    expect(keys).toEqual(['long'])
  })

  it('a TTL of 0 never expires', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('forever', 1, 0)
    await hh.elapse(hh.caps.realClock ? hh.shortTtl : 10 * 365 * 86_400_000)
    expect(await c.get('forever')).toBe(1)
  })

  it('the default TTL applies when none is given', async () => {
    const hh = h()
    const c = await hh.cache({ defaultTtl: hh.shortTtl })
    await c.set('d', 1)
    await c.add('a', 1)
    await c.setMany([['m', 1]])
    expect(await c.getMany(['d', 'a', 'm'])).toEqual([1, 1, 1])
    await hh.elapse(hh.shortTtl)
    expect(await c.getMany(['d', 'a', 'm'])).toEqual([undefined, undefined, undefined])
  })

  it('an entry is live until its TTL has passed', async () => {
    const hh = h()
    if (hh.caps.realClock) {
      const c = await hh.cache()
      await c.set('k', 1, 5_000)
      await hh.elapse(100)
      expect(await c.get('k')).toBe(1)
      return
    }
    const c = await hh.cache()
    await c.set('k', 1, '10s')
    hh.clock.advance(9_999)
    expect(await c.get('k')).toBe(1)
    hh.clock.advance(1)
    expect(await c.get('k')).toBeUndefined()
  })

  it('purgeExpired removes expired entries and keeps live ones', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.setMany([['a', 1], ['b', 2]], hh.shortTtl)
    await c.set('live', 3, 0)
    await hh.elapse(hh.shortTtl)
    const removed = await c.purgeExpired()
    // A backend with its own clock (Redis) purges by itself and may find nothing left to remove; one that
    // cannot list its keys (memcached) cannot find expired ones either: its server drops them in time.
    if (!hh.caps.realClock && hh.caps.listKeys !== false) expect(removed).toBeGreaterThanOrEqual(2)
    expect(await c.get('live')).toBe(3)
    expect(await c.getMany(['a', 'b'])).toEqual([undefined, undefined])
  })
}
