import { expect, it } from 'vitest'
import type { AdapterCapabilities } from '../adapter.js'
import { CacheUnsupportedError } from '../errors.js'
import type { Harness } from './harness.js'

export function basicTests(h: () => Harness, caps: AdapterCapabilities): void {
  it('get misses on a key never set', async () => {
    const c = await h().cache()
    expect(await c.get('nope')).toBeUndefined()
  })

  it('set overwrites', async () => {
    const c = await h().cache()
    await c.set('k', 'one')
    await c.set('k', { two: 2 })
    expect(await c.get('k')).toEqual({ two: 2 })
  })

  it('getMany keeps the order of the keys and reports misses', async () => {
    const c = await h().cache()
    await c.setMany([['a', 1], ['c', 3]])
    expect(await c.getMany(['c', 'missing', 'a', 'a'])).toEqual([3, undefined, 1, 1])
    expect(await c.getMany([])).toEqual([])
  })

  it('setMany takes an object too', async () => {
    const c = await h().cache()
    expect(await c.setMany({ x: 'X', y: ['Y'] })).toBe(true)
    expect(await c.getMany(['x', 'y'])).toEqual(['X', ['Y']])
  })

  it('delete reports whether the key existed', async () => {
    const c = await h().cache()
    await c.set('k', 1)
    expect(await c.delete('k')).toBe(true)
    expect(await c.delete('k')).toBe(false)
    expect(await c.get('k')).toBeUndefined()
  })

  it('deleteMany reports how many keys existed', async () => {
    const c = await h().cache()
    await c.setMany([['a', 1], ['b', 2], ['c', 3]])
    expect(await c.deleteMany(['a', 'c', 'zzz'])).toBe(2)
    expect(await c.getMany(['a', 'b', 'c'])).toEqual([undefined, 2, undefined])
  })

  it('has tells live keys from missing ones, null included', async () => {
    const c = await h().cache()
    await c.set('n', null)
    expect(await c.has('n')).toBe(true)
    expect(await c.has('missing')).toBe(false)
  })

  it('touch sets a new TTL on a live key and is false on a missing one', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 'v', hh.shortTtl)
    expect(await c.touch('k', 0)).toBe(true)
    await hh.elapse(hh.shortTtl * 2)
    expect(await c.get('k')).toBe('v')
    expect(await c.touch('missing', 1000)).toBe(false)
  })

  it('ttl reports the time left, null for never, undefined for a miss', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('short', 1, hh.shortTtl)
    await c.set('forever', 1, 0)
    const left = await c.ttl('short')
    expect(left).toBeGreaterThan(0)
    expect(left).toBeLessThanOrEqual(hh.shortTtl)
    expect(await c.ttl('forever')).toBeNull()
    expect(await c.ttl('missing')).toBeUndefined()
    await hh.elapse(hh.shortTtl)
    expect(await c.ttl('short')).toBeUndefined()
  })

  if (caps.listKeys === false) {
    it('keys() throws CacheUnsupportedError (listing is skipped: the adapter declares listKeys: false, its backend cannot list keys)', async () => {
      const c = await h().cache()
      await c.set('a', 1)
      const listing = (async () => {
        for await (const _ of c.keys()) return
      })()
      await expect(listing).rejects.toBeInstanceOf(CacheUnsupportedError)
      await expect(listing).rejects.toThrow(/cannot list/)
    })
  } else it('keys lists the live keys under the prefix, without it', async () => {
    const c = await h().cache()
    await c.setMany([['a', 1], ['b:c', 2], ['d', 3]])
    await c.delete('d')
    const keys: string[] = []
    for await (const k of c.keys()) keys.push(k)
    expect(keys.sort()).toEqual(['a', 'b:c'])
  })

  it('clear removes every key of the cache', async () => {
    const c = await h().cache()
    await c.setMany([['a', 1], ['b', 2]])
    expect(await c.clear()).toBe(true)
    expect(await c.getMany(['a', 'b'])).toEqual([undefined, undefined])
  })

  it('getOrSet runs the factory on a miss only, and stores its result', async () => {
    const c = await h().cache()
    let runs = 0
    const factory = async () => ++runs
    expect(await c.getOrSet('g', factory)).toBe(1)
    expect(await c.getOrSet('g', factory)).toBe(1)
    expect(runs).toBe(1)
    expect(await c.get('g')).toBe(1)
  })
}
