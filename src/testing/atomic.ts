import { expect, it } from 'vitest'
import { CacheTypeError } from '../errors.js'
import type { ConformanceOptions, Harness } from './harness.js'

export function atomicTests(h: () => Harness): void {
  it('add is true on an absent key and false on an existing one, leaving it unchanged', async () => {
    const c = await h().cache()
    expect(await c.add('k', 'first')).toBe(true)
    expect(await c.add('k', 'second')).toBe(false)
    expect(await c.get('k')).toBe('first')
  })

  it('add is true on an expired key', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 'old', hh.shortTtl)
    await hh.elapse(hh.shortTtl)
    expect(await c.add('k', 'new')).toBe(true)
    expect(await c.get('k')).toBe('new')
  })

  it('inc on a missing key returns the delta', async () => {
    const c = await h().cache()
    expect(await c.inc('n', 7)).toBe(7)
    expect(await c.inc('m')).toBe(1)
    expect(await c.dec('d')).toBe(-1)
  })

  it('inc and dec count from a stored integer: 10, +5 is 15, -3 is 12', async () => {
    const c = await h().cache()
    await c.set('n', 10)
    expect(await c.inc('n', 5)).toBe(15)
    expect(await c.dec('n', 3)).toBe(12)
    expect(await c.get('n')).toBe(12)
  })

  it('inc of a string value throws CacheTypeError and leaves it unchanged', async () => {
    const c = await h().cache()
    await c.set('s', 'spam')
    await expect(c.inc('s')).rejects.toBeInstanceOf(CacheTypeError)
    expect(await c.get('s')).toBe('spam')
    await c.set('digits', '42')
    await expect(c.inc('digits')).rejects.toBeInstanceOf(CacheTypeError)
    expect(await c.get('digits')).toBe('42')
    await c.set('float', 1.5)
    await expect(c.inc('float')).rejects.toBeInstanceOf(CacheTypeError)
    expect(await c.get('float')).toBe(1.5)
  })

  it('inc keeps the expiry of an existing key', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('n', 1, hh.shortTtl)
    expect(await c.inc('n', 1, 0)).toBe(2)
    await hh.elapse(hh.shortTtl)
    expect(await c.get('n')).toBeUndefined()
  })

  it('inc gives a new key its TTL', async () => {
    const hh = h()
    const c = await hh.cache()
    expect(await c.inc('fresh', 1, hh.shortTtl)).toBe(1)
    await hh.elapse(hh.shortTtl)
    expect(await c.get('fresh')).toBeUndefined()
  })

  it('200 concurrent inc return exactly 1..200, each once', async () => {
    const c = await h().cache()
    const results = await Promise.all(Array.from({ length: 200 }, () => c.inc('counter')))
    expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    expect(await c.get('counter')).toBe(200)
  })

  it('50 concurrent add of one key give exactly one true', async () => {
    const c = await h().cache()
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => c.add('once', i)))
    expect(results.filter(Boolean)).toHaveLength(1)
    expect(await c.get('once')).toBe(results.indexOf(true))
  })
}

/** The optional compare-and-delete leases are released with, on the adapter itself. */
export function deleteIfEqualsTests(options: ConformanceOptions): void {
  it('deleteIfEquals, where the adapter has it, deletes only a live entry holding exactly that value', async (ctx) => {
    const realClock = options.capabilities.realClock
    let t = Date.now()
    const now = realClock ? Date.now : () => t
    const adapter = await options.create({ now, threshold: options.threshold ?? 10_000, emit: () => {} })
    try {
      await adapter.ready?.()
      // Without it, leases fall back to read, compare, delete (src/lease.ts): nothing to check here.
      if (adapter.deleteIfEquals === undefined) return ctx.skip('the adapter has no deleteIfEquals')
      const key = `ck-test:die:${Math.random().toString(36).slice(2)}`
      await adapter.set(key, '"token-a"', null)
      expect(await adapter.deleteIfEquals(key, '"token-b"')).toBe(false)
      expect(await adapter.get(key)).toBeDefined()
      expect(await adapter.deleteIfEquals(key, '"token-a"')).toBe(true)
      expect(await adapter.get(key)).toBeUndefined()
      expect(await adapter.deleteIfEquals(key, '"token-a"')).toBe(false)
      if (!realClock) {
        await adapter.set(key, '"token-a"', t + 1000)
        t += 1000
        expect(await adapter.deleteIfEquals(key, '"token-a"')).toBe(false)
      }
    } finally {
      await adapter.close()
    }
  })
}
