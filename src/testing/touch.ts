/**
 * `touch` changes an entry's expiry and never its value. A backend that implements it as "read the entry,
 * write it back with the new expiry" loses updates: a `set` that lands between the read and the write is
 * overwritten by the value read before it. These cases catch that on any backend whose calls can
 * interleave (a network round trip, a store behind promises, or other processes).
 */
import { expect, it } from 'vitest'
import type { Cache } from '../cache.js'
import type { Harness } from './harness.js'

/**
 * Race `touch` against `set` for `rounds` rounds: each round sends a touch, then (after a varying number of
 * microtask turns, so that the set lands at different points of the touch) a set of a new version, then
 * reads the key back. Returns how many rounds read back something other than the
 * version just set: 0 on a correct backend, and not 0 on one whose touch reads, then writes back.
 */
export async function staleAfterTouchRace(cache: Cache, key: string, rounds: number, ttl: number): Promise<number> {
  let stale = 0
  await cache.set(key, { v: -1 }, ttl)
  for (let v = 0; v < rounds; v++) {
    const first = cache.touch(key, ttl)
    for (let turn = 0; turn < v % 12; turn++) await Promise.resolve()
    // Whatever order the backend runs them in, a touch leaves the value alone: the last write is the set.
    await Promise.all([first, cache.set(key, { v }, ttl)])
    if ((await cache.get<{ v: number }>(key))?.v !== v) stale++
  }
  return stale
}

export function touchTests(h: () => Harness): void {
  it('touch never rewrites a value: set v1, touch, set v2, touch reads back v2 with the last expiry', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 'v1', hh.shortTtl)
    expect(await c.touch('k', hh.shortTtl)).toBe(true)
    await c.set('k', 'v2', hh.shortTtl)
    expect(await c.touch('k', 0)).toBe(true)
    expect(await c.get('k')).toBe('v2')
    await hh.elapse(hh.shortTtl)
    expect(await c.get('k')).toBe('v2')
  })

  it('a touch in flight with a set never brings back the value it read before the set', async () => {
    const hh = h()
    const c = await hh.cache()
    expect(await staleAfterTouchRace(c, 'race', 24, hh.shortTtl * 10)).toBe(0)
    // The touches did their job too: the entry is live.
    expect(await c.has('race')).toBe(true)
  })

  it('a touch in flight with a delete never brings the entry back', async () => {
    const hh = h()
    const c = await hh.cache()
    for (let i = 0; i < 12; i++) {
      await c.set('gone', i, hh.shortTtl)
      const first = c.touch('gone', hh.shortTtl * 10)
      for (let turn = 0; turn < i; turn++) await Promise.resolve()
      const [, deleted] = await Promise.all([first, c.delete('gone')])
      expect(deleted).toBe(true)
      expect(await c.get('gone')).toBeUndefined()
    }
  })
}
