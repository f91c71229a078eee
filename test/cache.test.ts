import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  Cache,
  cache,
  CacheArgumentError,
  CacheBackendError,
  CacheConfigError,
  CacheNotInitializedError,
  CacheSerializationError,
  CacheTypeError,
  createCache,
  MAX_KEY_LENGTH,
} from '../src/index.js'
import { FakeClock } from '../src/testing/index.js'

const open: Cache[] = []
function memory(options: Record<string, unknown> = {}): Cache {
  const c = createCache({ type: 'memory', ...options })
  open.push(c)
  return c
}
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

describe('bad input leaves the cache as it was', () => {
  it('empty, non-string and oversized keys are refused with the key named', async () => {
    const c = memory()
    await expect(c.get('')).rejects.toThrow(CacheArgumentError)
    await expect(c.get('')).rejects.toThrow(/non-empty/)
    await expect(c.set(42 as never, 1)).rejects.toThrow(/must be a string, not number/)
    await expect(c.get(undefined as never)).rejects.toThrow(CacheArgumentError)
    await expect(c.set('x'.repeat(MAX_KEY_LENGTH + 1), 1)).rejects.toThrow(/limited to/)
    await expect(c.getMany(['ok', ''])).rejects.toThrow(CacheArgumentError)
    await expect(c.setMany([['ok', 1], ['', 2]])).rejects.toThrow(CacheArgumentError)
    expect(await c.get('ok')).toBeUndefined()
  })

  it('set(k, undefined) is refused and says to use delete', async () => {
    const c = memory()
    await c.set('k', 'before')
    const e = await c.set('k', undefined).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CacheArgumentError)
    expect((e as Error).message).toMatch(/delete/)
    expect((e as CacheArgumentError).key).toBe('k')
    expect(await c.get('k')).toBe('before')
  })

  it('a function, a cycle, a symbol or a typed array other than bytes is refused and nothing is written', async () => {
    const c = memory()
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const deepCycle: Record<string, unknown>[] = [{}]
    for (let i = 0; i < 100; i++) deepCycle.push({ next: deepCycle[i] })
    ;(deepCycle[0] as Record<string, unknown>).back = deepCycle[100]
    for (const bad of [() => 1, { f: () => 1 }, cyclic, deepCycle[100], Symbol('s'), { s: Symbol('s') }, new Float64Array(2)]) {
      await c.set('k', 'before')
      const e = await c.set('k', bad).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(CacheSerializationError)
      expect((e as Error).message).toContain('"k"')
      expect(await c.get('k')).toBe('before')
      expect(await c.add('fresh', bad).catch((x: unknown) => x)).toBeInstanceOf(CacheSerializationError)
      expect(await c.has('fresh')).toBe(false)
    }
  })

  it('a batch with one bad value writes nothing', async () => {
    const c = memory()
    await expect(c.setMany([['a', 1], ['b', () => 2]])).rejects.toThrow(CacheSerializationError)
    expect(await c.getMany(['a', 'b'])).toEqual([undefined, undefined])
  })

  it('negative, NaN, infinite and unparsable TTLs are refused, naming the value', async () => {
    const c = memory()
    for (const ttl of [-1, Number.NaN, Infinity, '5 parsecs', '', '-5m', null as never, [] as never]) {
      const e = await c.set('k', 1, ttl).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(CacheArgumentError)
      expect((e as Error).message).toContain(String(ttl))
    }
    // An object is the options form, `{ ttl, tags }`: its TTL is checked the same way, and `{}` means the default TTL.
    for (const ttl of [-1, '5 parsecs']) {
      const e = await c.set('k', 1, { ttl }).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(CacheArgumentError)
      expect((e as Error).message).toContain(String(ttl))
    }
    await expect(c.set('k', 1, { ttl: '1m', tll: 1 } as never)).rejects.toThrow(/set\("k"\): unknown option `tll`\. Did you mean `ttl`\? The options are ttl, tags\./)
    await expect(c.inc('n', 1, -1)).rejects.toThrow(CacheArgumentError)
    await expect(c.touch('n', 'soon')).rejects.toThrow(CacheArgumentError)
    expect(await c.has('k')).toBe(false)
    expect(await c.has('n')).toBe(false)
  })

  it('set, add and setMany take `{ ttl, tags }` instead of a TTL; `{}` is the default TTL', async () => {
    const c = memory()
    expect(await c.set('a', 1, {})).toBe(true)
    expect(await c.add('b', 2, { ttl: '1m' })).toBe(true)
    expect(await c.setMany([['c', 3]], { ttl: 60_000 })).toBe(true)
    expect(await c.getMany(['a', 'b', 'c'])).toEqual([1, 2, 3])
    expect(await c.ttl('b')).toBeGreaterThan(59_000)
  })

  it('inc with a fractional, unsafe or non-number delta is refused', async () => {
    const c = memory()
    await c.set('n', 1)
    for (const delta of [1.5, Number.NaN, 2 ** 60, '1' as never]) {
      await expect(c.inc('n', delta)).rejects.toThrow(CacheArgumentError)
    }
    expect(await c.get('n')).toBe(1)
  })

  it('inc past the safe integer range throws CacheTypeError and keeps the value', async () => {
    const c = memory()
    await c.set('n', Number.MAX_SAFE_INTEGER)
    await expect(c.inc('n')).rejects.toThrow(CacheTypeError)
    expect(await c.get('n')).toBe(Number.MAX_SAFE_INTEGER)
  })
})

describe('the singleton', () => {
  afterEach(async () => {
    await cache.close()
  })

  it('before init, every call throws CacheNotInitializedError showing the fix', async () => {
    const e = await cache.get('k').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CacheNotInitializedError)
    expect((e as Error).message).toContain('cache.init(')
    await expect(cache.inc('k')).rejects.toThrow(CacheNotInitializedError)
    expect(() => cache.stats()).toThrow(CacheNotInitializedError)
  })

  it('lives on globalThis under Symbol.for("cachekit"), so another copy of the package shares it', async () => {
    expect((globalThis as Record<symbol, unknown>)[Symbol.for('cachekit')]).toBe(cache)
    // A second copy of the module (as a dev server's reload or a CJS/ESM pair would load it).
    vi.resetModules()
    const copy = await import('../src/index.js')
    expect(copy.Cache).not.toBe(Cache)
    expect(copy.cache).toBe(cache)
  })

  it('init with an equal config is a no-op; a different one throws until close', async () => {
    cache.init({ type: 'memory', keyPrefix: 'app:' })
    await cache.set('k', 1)
    cache.init({ type: 'memory', keyPrefix: 'app:' })
    expect(await cache.get('k')).toBe(1)
    expect(() => cache.init({ type: 'memory', keyPrefix: 'other:' })).toThrow(CacheConfigError)
    expect(() => cache.init({ type: 'memory', keyPrefix: 'other:' })).toThrow(/`keyPrefix` differ.*close/)
    // The same config written as a URL is equal.
    cache.init({ url: 'memory:', keyPrefix: 'app:' })
    await cache.close()
    cache.init({ type: 'memory', keyPrefix: 'other:' })
    expect(await cache.get('k')).toBeUndefined()
  })

  it('a config re-created by a module reload is equal: the same data, and functions that are the same objects', async () => {
    const first = await import('./fixtures/reload-config.js')
    cache.init(first.plain)
    await cache.set('k', 1)
    vi.resetModules()
    const reloaded = await import('./fixtures/reload-config.js')
    expect(reloaded.plain).not.toBe(first.plain)
    expect(reloaded.withOwnClock.now).not.toBe(first.withOwnClock.now)
    cache.init(reloaded.plain)
    expect(await cache.get('k')).toBe(1)
    await cache.close()
    // A function the module makes itself is another function after the reload: a different config.
    cache.init(first.withOwnClock)
    expect(() => cache.init(reloaded.withOwnClock)).toThrow(/`now` is another function/)
  })

  it('functions count as equal only when they are the same object, even with the same source', async () => {
    const clockAt = (offset: number) => () => Date.now() + offset
    const clockA = clockAt(0)
    cache.init({ type: 'memory', now: clockA })
    cache.init({ type: 'memory', now: clockA })
    const e = (() => {
      try {
        cache.init({ type: 'memory', now: clockAt(60_000) })
      } catch (error) {
        return error as CacheConfigError
      }
      throw new Error('expected init to refuse another clock')
    })()
    expect(e).toBeInstanceOf(CacheConfigError)
    expect(e.option).toBe('now')
    expect(e.message).toMatch(/`now` is another function.*same object.*same function.*`await cache\.close\(\)`/)
    await cache.close()

    const codec = () => ({ encode: (v: unknown) => JSON.stringify(v), decode: (p: unknown) => JSON.parse(String(p)) as unknown })
    const one = codec()
    cache.init({ type: 'memory', serializer: one })
    cache.init({ type: 'memory', serializer: { ...one } })
    expect(() => cache.init({ type: 'memory', serializer: codec() })).toThrow(/`serializer` is another function/)
    await cache.close()
    const { memoryAdapter } = await import('../adapters/memory/index.js')
    cache.init({ adapter: (context) => memoryAdapter({}, context) })
    expect(() => cache.init({ adapter: (context) => memoryAdapter({}, context) })).toThrow(/`adapter` is another function/)
  })

  it('another store object is another config', async () => {
    cache.init({ type: 'keyv', store: new Map() })
    expect(() => cache.init({ type: 'keyv', store: new Map() })).toThrow(/`store` differ.*same object/)
  })

  it('a namespace made before init works once the cache is initialized', async () => {
    const users = cache.namespace('users:')
    // Not initialized (or closed by the test before): either way it says how to fix it.
    await expect(users.get('1')).rejects.toThrow(/init/)
    cache.init({ type: 'memory' })
    await users.set('1', 'ann')
    expect(await cache.get('users:1')).toBe('ann')
    expect(users.keyPrefix).toBe('users:')
  })
})

describe('getOrSet in one process', () => {
  it('concurrent calls for one key run the factory once and share the result', async () => {
    const c = memory()
    let runs = 0
    const factory = async () => {
      runs++
      await new Promise((r) => setTimeout(r, 20))
      return { built: runs }
    }
    const results = await Promise.all(Array.from({ length: 20 }, () => c.getOrSet('report', factory)))
    expect(runs).toBe(1)
    expect(results.every((r) => r.built === 1)).toBe(true)
  })

  it('a factory that throws stores nothing, and every waiter sees its error', async () => {
    const c = memory()
    let runs = 0
    const boom = async () => {
      runs++
      await new Promise((r) => setTimeout(r, 10))
      throw new Error('boom')
    }
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => c.getOrSet('k', boom)))
    expect(runs).toBe(1)
    expect(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'boom')).toBe(true)
    expect(await c.has('k')).toBe(false)
    expect(await c.getOrSet('k', () => 'ok')).toBe('ok')
  })

  it('counts one miss for a computed value and one hit for a cached one', async () => {
    const c = memory()
    await c.getOrSet('k', () => 'v')
    await c.getOrSet('k', () => 'other')
    expect(c.stats()).toMatchObject({ misses: 1, hits: 1, sets: 1 })
  })

  it('an undefined result is returned but not stored', async () => {
    const c = memory()
    expect(await c.getOrSet('k', () => undefined)).toBeUndefined()
    expect(await c.has('k')).toBe(false)
  })
})

describe('events, stats and the clock', () => {
  it('emits hit, miss, set and delete, and counts them', async () => {
    const c = memory({ keyPrefix: 'ev:' })
    const seen: string[] = []
    c.on('hit', (k) => seen.push(`hit ${k}`))
    c.on('miss', (k) => seen.push(`miss ${k}`))
    c.on('set', (k) => seen.push(`set ${k}`))
    c.on('delete', (k) => seen.push(`delete ${k}`))
    await c.get('a')
    await c.set('a', 1)
    await c.get('a')
    await c.delete('a')
    expect(seen).toEqual(['miss a', 'set a', 'hit a', 'delete a'])
    await c.add('b', 1)
    await c.add('b', 2)
    await c.setMany([['c', 1], ['d', 2]])
    expect(seen.slice(4)).toEqual(['set b', 'set c', 'set d'])
    expect(c.stats()).toMatchObject({ type: 'memory', keyPrefix: 'ev:', hits: 1, misses: 1, sets: 4, deletes: 1, errors: 0, hitRate: 0.5 })
  })

  it('an injected clock decides expiry: no sleeping', async () => {
    const clock = new FakeClock()
    const c = memory({ now: clock.now, defaultTtl: '1m' })
    await c.set('k', 'v')
    clock.advance(59_999)
    expect(await c.get('k')).toBe('v')
    clock.advance(1)
    expect(await c.get('k')).toBeUndefined()
  })

  it('a payload another program wrote that is not cachekit JSON is a miss with a corrupt event, not an exception', async () => {
    const c = memory()
    const adapterKey = 'k'
    const events: string[] = []
    c.on('corrupt', (k) => events.push(String(k)))
    c.on('error', () => events.push('error'))
    // Write around the codec, as another program sharing the backend would.
    await c.ready()
    const { memoryAdapter } = await import('../adapters/memory/index.js')
    const raw = memoryAdapter({}, { now: Date.now, threshold: 10, emit: () => {} })
    const c2 = createCache({ adapter: raw })
    open.push(c2)
    await raw.set(adapterKey, 'not json', null)
    c2.on('corrupt', (k) => events.push(`corrupt ${String(k)}`))
    c2.on('error', (e) => events.push(e.key === 'k' && e.message.includes('"k"') ? 'error' : `error without the key: ${e.message}`))
    expect(await c2.get(adapterKey)).toBeUndefined()
    expect(events).toEqual(['corrupt k', 'error'])
  })
})

describe('your own adapter', () => {
  it('a factory gets the cache context, so the injected clock reaches it', async () => {
    const { memoryAdapter } = await import('../adapters/memory/index.js')
    const clock = new FakeClock()
    const c = createCache({ adapter: (context) => memoryAdapter({}, context), now: clock.now })
    open.push(c)
    await c.set('k', 1, '1m')
    clock.advance(60_000)
    expect(await c.get('k')).toBeUndefined()
    expect(c.stats().type).toBe('custom')
  })

  it('anything else as adapter is refused, naming the option', () => {
    expect(() => createCache({ adapter: 42 as never })).toThrow(/`adapter` must be a function/)
  })

  it('an adapter object without the methods of one is refused at init, naming what is missing', () => {
    const e = (() => {
      try {
        createCache({ adapter: { name: 'half', get: () => undefined } as never })
      } catch (error) {
        return error as CacheConfigError
      }
      throw new Error('expected init to refuse half an adapter')
    })()
    expect(e).toBeInstanceOf(CacheConfigError)
    expect(e.option).toBe('adapter')
    expect(e.message).toMatch(/`adapter` is an object that is not a CacheAdapter: it has no `capabilities`.*`set`.*`close`/)
  })

  it('a factory that returns no adapter: a CacheConfigError naming `adapter` at ready() and every call; close() never throws', async () => {
    for (const bad of [() => 5, () => undefined, () => 'memory', () => ({ get: () => undefined }), () => Promise.resolve({})]) {
      const c = createCache({ adapter: bad as never })
      const e = await c.ready().catch((x: unknown) => x)
      expect(e).toBeInstanceOf(CacheConfigError)
      expect((e as CacheConfigError).option).toBe('adapter')
      expect((e as Error).message).toMatch(/`adapter`: the factory returned .*not a CacheAdapter/)
      // Not a miss or a `false` under fail-open: the cache was never usable.
      await expect(c.get('k')).rejects.toBeInstanceOf(CacheConfigError)
      await expect(c.set('k', 1)).rejects.toBeInstanceOf(CacheConfigError)
      await expect(c.close()).resolves.toBeUndefined()
    }
  })

  it('a factory that throws is named as `adapter`, with its error as the cause', async () => {
    const boom = new TypeError('cannot read properties of undefined')
    const c = createCache({
      adapter: () => {
        throw boom
      },
    })
    const e = await c.ready().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CacheConfigError)
    expect((e as CacheConfigError).option).toBe('adapter')
    expect((e as Error).message).toContain('cannot read properties of undefined')
    expect((e as Error).cause).toBe(boom)
    await expect(c.close()).resolves.toBeUndefined()
  })

  it("an adapter whose close() throws: close() rejects with a CacheBackendError, the adapter's error as its cause", async () => {
    const { memoryAdapter } = await import('../adapters/memory/index.js')
    const inner = memoryAdapter({}, { now: Date.now, threshold: 10, emit: () => {} })
    const c = createCache({
      adapter: {
        ...inner,
        close: () => {
          throw new TypeError('x is not a function')
        },
      },
    })
    await c.set('k', 1)
    const e = await c.close().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CacheBackendError)
    expect((e as Error).message).toMatch(/close.*x is not a function/)
    expect((e as Error).cause).toBeInstanceOf(TypeError)
    // Closed all the same.
    await expect(c.get('k')).rejects.toThrow(/closed/)
  })
})

describe('memory backend specifics', () => {
  it('threshold bounds the entry count, least recently used first', async () => {
    const c = memory({ threshold: 3 })
    await c.setMany([['a', 1], ['b', 2], ['c', 3]])
    await c.get('a')
    await c.set('d', 4)
    expect(await c.getMany(['a', 'b', 'c', 'd'])).toEqual([1, undefined, 3, 4])
  })

  it('threshold 0 is unbounded and warns once', async () => {
    const warnings: string[] = []
    const c = new Cache()
    c.on('warning', (m) => warnings.push(m))
    c.init({ type: 'memory', threshold: 0 })
    open.push(c)
    await c.setMany(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i] as const))
    expect(await c.get('k0')).toBe(0)
    expect(warnings.filter((w) => w.includes('unbounded'))).toHaveLength(1)
  })

  // 24 values of 8 MiB are three times the bound: enough to show it holds. (120 of them, as first written, took
  // over 30 s of encoding on a loaded machine.)
  it('by default at most 64 MiB of keys and encoded values: 24 values of 8 MiB (192 MiB) keep at most 64 MiB', async () => {
    const { MEMORY_DEFAULTS } = await import('../adapters/memory/index.js')
    expect(MEMORY_DEFAULTS.maxBytes).toBe(64 * 2 ** 20)
    const c = memory()
    const eight = 'x'.repeat(8 * 2 ** 20 - 64)
    const count = 24
    for (let i = 0; i < count; i++) expect(await c.set(`big${i}`, `${i}:${eight}`)).toBe(true)
    let live = 0
    for await (const _ of c.keys()) live++
    expect(live).toBeGreaterThanOrEqual(6)
    expect(live * 8 * 2 ** 20).toBeLessThanOrEqual(MEMORY_DEFAULTS.maxBytes)
    // Least recently used go first.
    expect(await c.get(`big${count - 1}`)).toBe(`${count - 1}:${eight}`)
    expect(await c.has('big0')).toBe(false)
  })

  it('maxBytes evicts by bytes, least recently used first, together with threshold', async () => {
    const c = memory({ maxBytes: '1kb', threshold: 100 })
    const v = 'x'.repeat(400)
    await c.set('a', v)
    await c.set('b', v)
    await c.get('a')
    await c.set('c', v)
    expect(await c.getMany(['a', 'b', 'c'])).toEqual([v, undefined, v])
    // threshold still holds for small entries.
    const few = memory({ maxBytes: '1mb', threshold: 2 })
    await few.setMany([['a', 1], ['b', 2], ['c', 3]])
    expect(await few.getMany(['a', 'b', 'c'])).toEqual([undefined, 2, 3])
  })

  it('an entry larger than maxBytes is not stored and says so; the old value stays, a batch writes nothing', async () => {
    const c = memory({ maxBytes: 1000 })
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    await c.set('k', 'small')
    expect(await c.set('k', 'x'.repeat(2000))).toBe(false)
    expect(errors[0]).toBeInstanceOf(CacheBackendError)
    expect(errors[0]?.message).toMatch(/set "k" failed on the memory backend: .*2\.0 KiB.*more than maxBytes \(1000 B\)/)
    expect(await c.get('k')).toBe('small')
    await expect(c.add('huge', 'x'.repeat(2000))).rejects.toBeInstanceOf(CacheBackendError)
    expect(await c.setMany([['d', 1], ['e', 'x'.repeat(2000)]])).toBe(false)
    expect(await c.has('d')).toBe(false)
    // The key counts too.
    expect(await c.set('y'.repeat(1200), 1)).toBe(false)
  })

  it('maxBytes 0 bounds nothing by bytes; threshold 0 without maxBytes is unbounded as before, with maxBytes it is not', async () => {
    const c = memory({ maxBytes: 0 })
    expect(await c.set('k', 'x'.repeat(70 * 2 ** 20))).toBe(true)
    expect((await c.get<string>('k'))?.length).toBe(70 * 2 ** 20)
    const unbounded = memory({ threshold: 0 })
    expect(await unbounded.set('k', 'x'.repeat(70 * 2 ** 20))).toBe(true)
    const warnings: string[] = []
    const bytesOnly = new Cache()
    bytesOnly.on('warning', (m) => warnings.push(m))
    bytesOnly.init({ type: 'memory', threshold: 0, maxBytes: '1kb' })
    open.push(bytesOnly)
    expect(await bytesOnly.set('k', 'x'.repeat(2000))).toBe(false)
    expect(warnings.filter((w) => w.includes('unbounded'))).toEqual([])
  })

  it('the null backend stores nothing', async () => {
    const c = createCache('null:')
    open.push(c)
    expect(await c.set('k', 1)).toBe(true)
    expect(await c.get('k')).toBeUndefined()
    expect(await c.add('k', 1)).toBe(true)
    expect(await c.inc('n', 3)).toBe(3)
    expect(await c.has('k')).toBe(false)
  })
})
