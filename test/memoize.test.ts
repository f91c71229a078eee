import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { memoryAdapter } from '../adapters/memory/index.js'
import type { CacheAdapter } from '../src/adapter.js'
import { Cache } from '../src/cache.js'
import { CacheArgumentError, CacheConfigError, type CacheError } from '../src/errors.js'
import { canonicalEncode, versionKey } from '../src/memoize/keys.js'
import { parameterNames, type Memoized } from '../src/memoize/index.js'
import { createCache } from '../src/singleton.js'
import { FakeClock } from '../src/testing/harness.js'
import { bookkeeping } from './support/bookkeeping.js'

const open: Cache[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

const clock = (start = 1_700_000_000_000): FakeClock => new FakeClock(start)

function newCache(now = clock().now): Cache {
  const c = createCache({ type: 'memory', now, defaultTtl: '1m' })
  open.push(c)
  return c
}

/** Counts runs of a function, and lets a test hold it until released. */
function counted<A extends unknown[], R>(body: (...args: A) => R) {
  const calls: A[] = []
  const fn = (...args: A): R => {
    calls.push(args)
    return body(...args)
  }
  return { fn, calls }
}

describe('canonical argument encoding', () => {
  it('ignores object key order and keeps every type apart', () => {
    expect(canonicalEncode({ a: 1, b: { c: 2, d: 3 } })).toBe(canonicalEncode({ b: { d: 3, c: 2 }, a: 1 }))
    const distinct = [undefined, null, 1, '1', 1n, true, 'true', [], {}, [1], [[1]], '', 0, -0, NaN, new Date(0), 0n, [undefined], [null], new Array(2), [1, undefined]]
    const encodings = distinct.map((v) => canonicalEncode(v))
    expect(new Set(encodings).size).toBe(distinct.length)
  })

  it('never lets two different Maps, Sets or strings collide', () => {
    const maps = [new Map([[1, 'a']]), new Map([['1', 'a']]), new Map([[1, 'b']]), new Map(), new Map([[1, 'a'], [2, 'b']]), new Map([[{ x: 1 }, 1]]), new Map([[{ x: 2 }, 1]])]
    expect(new Set(maps.map((m) => canonicalEncode(m))).size).toBe(maps.length)
    expect(canonicalEncode(new Set([1, 2]))).not.toBe(canonicalEncode([1, 2]))
    expect(canonicalEncode(['a,', 'b'])).not.toBe(canonicalEncode(['a', ',b']))
    expect(canonicalEncode(Buffer.from('hi'))).not.toBe(canonicalEncode('hi'))
  })

  it('property: equal encodings only for deeply equal values; shuffled keys encode alike', () => {
    const anything = fc.anything({ withMap: true, withSet: true, withBigInt: true, withDate: true, withTypedArray: false, withBoxedValues: false, withNullPrototype: false, withSparseArray: false })
    fc.assert(
      fc.property(anything, anything, (a, b) => {
        if (canonicalEncode(a) === canonicalEncode(b)) expect(isDeepStrictEqual(a, b)).toBe(true)
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse())
        expect(canonicalEncode(reversed)).toBe(canonicalEncode(obj))
      }),
    )
  })

  it('hashes with SHA-256 (43 base64url characters) and refuses what has no stable identity', () => {
    const m = newCache().memoize(function pair(a: unknown, b?: unknown) {
      return [a, b]
    })
    expect(m.makeCacheKey(1, 'a')).toMatch(/^memoize:pair:[A-Za-z0-9_-]{43}$/)
    expect(m.makeCacheKey(1)).not.toBe(m.makeCacheKey('1'))
    expect(() => canonicalEncode([() => 1])).toThrow(CacheArgumentError)
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    expect(() => canonicalEncode(cycle)).toThrow(/cycle/)
  })

  it('reads parameter names from source', () => {
    expect(parameterNames(function f(a: number, b = 2, ...rest: number[]) { return [a, b, rest] })).toEqual(['a', 'b', 'rest'])
    expect(parameterNames((x: number) => x)).toEqual(['x'])
    expect(parameterNames(async (user: { id: number }, { verbose }: { verbose: boolean }, log?: unknown) => [user, verbose, log])).toEqual(['user', undefined, 'log'])
  })
})

describe('memoize', () => {
  it('runs fn once per distinct arguments; object key order does not split entries; 1 and "1" do', async () => {
    const c = newCache()
    const { fn, calls } = counted((x: unknown, opts?: Record<string, number>) => ({ x, opts }))
    const m = c.memoize(fn)
    expect(await m(1, { a: 1, b: 2 })).toEqual({ x: 1, opts: { a: 1, b: 2 } })
    expect(await m(1, { b: 2, a: 1 })).toEqual({ x: 1, opts: { a: 1, b: 2 } })
    expect(calls).toHaveLength(1)
    await m('1', { a: 1, b: 2 })
    await m(undefined)
    await m(null)
    expect(calls).toHaveLength(4)
    expect(m.makeCacheKey(1, { a: 1, b: 2 })).toBe(m.makeCacheKey(1, { b: 2, a: 1 }))
    expect(m.makeCacheKey(1)).toMatch(/^memoize:fn:[A-Za-z0-9_-]{43}$/)
  })

  it('gives the same keys in another cache instance (another process, a restart)', () => {
    function loadReport(id: number, range: { from: string; to: string }) {
      return { id, range }
    }
    const a = newCache().memoize(loadReport)
    const b = newCache().memoize(loadReport, { ttl: '5m' })
    expect(a.makeCacheKey(7, { from: 'x', to: 'y' })).toBe(b.makeCacheKey(7, { to: 'y', from: 'x' }))
  })

  it('throws CacheConfigError at memoize time for an anonymous function without a name', () => {
    const c = newCache()
    expect(() => c.memoize(() => 1)).toThrow(CacheConfigError)
    expect(() => c.memoize(() => 1)).toThrow(/anonymous.*name/)
    expect(c.memoize(() => 1, { name: 'one' }).makeCacheKey()).toMatch(/^memoize:one:/)
    expect(() => c.memoize(function named() {}, { ttl: 1, tll: 2 } as never)).toThrow(/memoize\(named\): unknown option `tll`\. Did you mean `ttl`\?/)
    expect(() => c.memoize(function named() {}, { argsToIgnor: [0] } as never)).toThrow(/unknown option `argsToIgnor`\. Did you mean `argsToIgnore`\?/)
  })

  it('throws CacheConfigError at memoize time for a bad ttl, naming the function and the value', () => {
    const c = newCache()
    expect(() => c.memoize(function report() {}, { ttl: 'bogus' })).toThrow(CacheConfigError)
    expect(() => c.memoize(function report() {}, { ttl: 'bogus' })).toThrow(/memoize\(report\).*"bogus"/)
    expect(() => c.memoize(function report() {}, { ttl: -1 })).toThrow(CacheConfigError)
  })

  it('works when memoized before init (module-level memoize, init at start-up)', async () => {
    const c = new Cache()
    const { fn, calls } = counted((n: number) => n * 2)
    const m = c.memoize(fn)
    c.init({ type: 'memory' })
    open.push(c)
    expect(await m(2)).toBe(4)
    expect(await m(2)).toBe(4)
    expect(calls).toHaveLength(1)
  })

  it('concurrent equal calls run fn once and share its result', async () => {
    const c = newCache()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const { fn, calls } = counted(async (n: number) => {
      await gate
      return { n }
    })
    const m = c.memoize(fn)
    const pending = Array.from({ length: 20 }, () => m(5))
    await new Promise((r) => setTimeout(r, 10))
    release()
    const results = await Promise.all(pending)
    expect(calls).toHaveLength(1)
    expect(results.every((r) => r.n === 5)).toBe(true)
  })

  it('does not cache errors or undefined; caches null', async () => {
    const c = newCache()
    let fail = true
    const flaky = counted(async () => {
      if (fail) throw new Error('boom')
      return 'ok'
    })
    const mf = c.memoize(flaky.fn, { name: 'flaky' })
    await expect(mf()).rejects.toThrow('boom')
    fail = false
    expect(await mf()).toBe('ok')
    expect(await mf()).toBe('ok')
    expect(flaky.calls).toHaveLength(2)

    const u = counted(() => undefined)
    const mu = c.memoize(u.fn, { name: 'undef' })
    await mu()
    await mu()
    expect(u.calls).toHaveLength(2)

    const n = counted(() => null)
    const mn = c.memoize(n.fn, { name: 'nul' })
    expect(await mn()).toBeNull()
    expect(await mn()).toBeNull()
    expect(n.calls).toHaveLength(1)
  })

  it('expires entries after ttl (injected clock)', async () => {
    const t = clock()
    const c = newCache(t.now)
    const { fn, calls } = counted((n: number) => n)
    const m = c.memoize(fn, { ttl: '10s' })
    await m(1)
    t.advance(9_999)
    await m(1)
    expect(calls).toHaveLength(1)
    t.advance(1)
    await m(1)
    expect(calls).toHaveLength(2)
  })

  it('deleteMemoized(fn) invalidates every entry in O(1): entries are not scanned or deleted, only outdated', async () => {
    const c = newCache()
    const { fn, calls } = counted((n: number) => n)
    const m = c.memoize(fn)
    await Promise.all([m(1), m(2), m(3)])
    const before = await keysOf(c)
    expect(await c.deleteMemoized(m)).toBe(true)
    // The old entries are still stored (they expire by their TTL), yet every call runs fn again.
    expect(await keysOf(c)).toEqual(before)
    await Promise.all([m(1), m(2), m(3)])
    expect(calls).toHaveLength(6)
    await m(1)
    expect(calls).toHaveLength(6)
    // The original function works as a handle too.
    await c.deleteMemoized(fn)
    await m(1)
    expect(calls).toHaveLength(7)
  })

  it('deleteMemoized(fn, ...args) invalidates one call only', async () => {
    const c = newCache()
    const { fn, calls } = counted((n: number, s: string) => `${n}${s}`)
    const m = c.memoize(fn)
    await m(1, 'a')
    await m(2, 'b')
    expect(await c.deleteMemoized(m, 1, 'a')).toBe(true)
    await m(1, 'a')
    await m(2, 'b')
    expect(calls.map((args) => args.join(''))).toEqual(['1a', '2b', '1a'])
  })

  it('the version key never expires, and a lost version key never revives invalidated entries', async () => {
    const t = clock()
    const c = newCache(t.now)
    const { fn, calls } = counted((n: number) => n)
    const m = c.memoize(fn, { ttl: '1h' })
    await m(1)
    await c.deleteMemoized(m)
    t.advance(10 * 365 * 86_400_000)
    expect(await bookkeeping(c).has(versionKey('fn'))).toBe(true)
    await m(1) // ran again (entry expired), stored under the current version
    expect(calls).toHaveLength(2)
    // An evicted version key (LRU, a flushed Redis) gets a new random version: never an old one again.
    await m(1)
    await bookkeeping(c).delete(versionKey('fn'))
    await m(1)
    expect(calls).toHaveLength(3)
  })

  it('unless, forcedUpdate, cacheIf, argsToIgnore (by position and by name) and key', async () => {
    const c = newCache()
    const a = counted((n: number) => n)
    const skip = c.memoize(a.fn, { name: 'skip', unless: (n) => n < 0 })
    await skip(-1)
    await skip(-1)
    await skip(1)
    await skip(1)
    expect(a.calls).toHaveLength(3)

    let version = 1
    const b = counted(() => version)
    const forced = c.memoize(b.fn, { name: 'forced', forcedUpdate: () => version === 2 })
    expect(await forced()).toBe(1)
    version = 2
    expect(await forced()).toBe(2)
    version = 3
    expect(await forced()).toBe(2)

    const d = counted((n: number) => n)
    const onlyEven = c.memoize(d.fn, { name: 'even', cacheIf: (r) => r % 2 === 0 })
    await onlyEven(1)
    await onlyEven(1)
    await onlyEven(2)
    await onlyEven(2)
    expect(d.calls.map(([n]) => n)).toEqual([1, 1, 2])

    let loads = 0
    function load(id: number, logger: unknown, trace: string) {
      loads++
      return [id, logger, trace].length
    }
    const byPos = c.memoize(load, { name: 'byPos', argsToIgnore: [1] })
    await byPos(1, { a: 1 }, 't')
    await byPos(1, { b: 2 }, 't')
    await byPos(1, { b: 2 }, 'other trace')
    expect(loads).toBe(2)
    const byName = c.memoize(load, { name: 'byName', argsToIgnore: ['logger', 'trace'] })
    expect(byName.makeCacheKey(1, 'x', 'y')).toBe(byName.makeCacheKey(1, 'z', 'w'))
    expect(byName.makeCacheKey(1, 'x', 'y')).not.toBe(byName.makeCacheKey(2, 'x', 'y'))
    expect(() => c.memoize(load, { name: 'bad', argsToIgnore: ['nope'] })).toThrow(/not a parameter.*id, logger, trace/)

    const f = counted((user: { id: number; name: string }) => user.name)
    const byId = c.memoize(f.fn, { name: 'byId', key: (user) => user.id })
    await byId({ id: 1, name: 'a' })
    expect(await byId({ id: 1, name: 'renamed' })).toBe('a')
    expect(f.calls).toHaveLength(1)
  })

  it('fail-open: with the backend down, fn still runs and its result is returned', async () => {
    const broken = brokenAdapter()
    const c = createCache({ adapter: broken.adapter })
    open.push(c)
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    const { fn, calls } = counted((n: number) => n + 1)
    const m = c.memoize(fn)
    expect(await m(1)).toBe(2)
    expect(calls).toHaveLength(1)
    broken.down = true
    expect(await m(2)).toBe(3)
    expect(await m(2)).toBe(3)
    expect(calls).toHaveLength(3)
    expect(errors.length).toBeGreaterThan(0)
    expect(errors[0]?.code).toBe('CACHE_BACKEND')
    broken.down = false
    expect(await m(1)).toBe(2)
    expect(calls).toHaveLength(3)
  })

  it('one deadline per call: after a backend failure a memoized call sends nothing more', async () => {
    const broken = brokenAdapter()
    const c = createCache({ adapter: broken.adapter })
    open.push(c)
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    const { fn, calls } = counted((n: number) => n + 1)
    const m = c.memoize(fn)
    expect(await m(1)).toBe(2)
    broken.down = true
    broken.ops.length = 0
    expect(await m(2)).toBe(3)
    // Before: the read failed, and the version key was still added (a second wait on a stalled backend).
    expect(broken.ops).toEqual(['getMany'])
    expect(errors).toHaveLength(1)
    // forcedUpdate: the same.
    const forced = c.memoize(fn, { name: 'forced', forcedUpdate: () => true })
    broken.ops.length = 0
    expect(await forced(5)).toBe(6)
    expect(broken.ops).toEqual(['getMany'])
    expect(calls).toHaveLength(3)
  })

  it('.uncached calls the original function without the cache', async () => {
    const c = newCache()
    const { fn, calls } = counted((n: number) => n)
    const m = c.memoize(fn)
    await m(1)
    expect(m.uncached(1)).toBe(1)
    expect(calls).toHaveLength(2)
  })
})

describe('@cache.memoized (standard decorators)', () => {
  it('caches per instance (id field or cacheId()) and deleteMemoized on a bound method invalidates one instance', async () => {
    const c = newCache()
    const runs: string[] = []

    class Repo {
      constructor(readonly id: number) {}
      @c.memoized({ ttl: '1m' })
      async find(q: string): Promise<string> {
        runs.push(`${this.id}:${q}`)
        return `${this.id}/${q}`
      }
    }
    const a = new Repo(1)
    const b = new Repo(2)
    expect(await a.find('x')).toBe('1/x')
    expect(await b.find('x')).toBe('2/x')
    expect(await a.find('x')).toBe('1/x')
    expect(await new Repo(1).find('x')).toBe('1/x') // same id, another object: same entries
    expect(runs).toEqual(['1:x', '2:x'])

    await c.deleteMemoized(a.find)
    await a.find('x')
    await b.find('x')
    expect(runs).toEqual(['1:x', '2:x', '1:x'])

    await b.find('y')
    await c.deleteMemoized(b.find, 'y')
    await b.find('y')
    await b.find('x')
    expect(runs.slice(3)).toEqual(['2:y', '2:y'])

    // The unbound method invalidates every instance.
    await c.deleteMemoized(Repo.prototype.find)
    await a.find('x')
    await b.find('x')
    expect(runs.slice(5)).toEqual(['1:x', '2:x'])
    // TypeScript decorators cannot change a method's type: cast to reach the memoized function's tools.
    const findA = a.find as Memoized<[string], Promise<string>>
    const findB = b.find as Memoized<[string], Promise<string>>
    expect(findA.makeCacheKey('x')).toMatch(/^memoize:Repo\.find:/)
    expect(findA.makeCacheKey('x')).not.toBe(findB.makeCacheKey('x'))
    expect(await findA.uncached('z')).toBe('1/z')
    expect(runs.at(-1)).toBe('1:z')
  })

  it('prefers cacheId() and refuses an instance without an id', async () => {
    const c = newCache()
    let runs = 0
    class Tenant {
      constructor(readonly slug: string) {}
      cacheId() {
        return this.slug
      }
      @c.memoized()
      async plan(): Promise<string> {
        runs++
        return `plan of ${this.slug}`
      }
    }
    class NoId {
      @c.memoized()
      async get(): Promise<number> {
        return 1
      }
    }
    expect(await new Tenant('acme').plan()).toBe('plan of acme')
    expect(await new Tenant('acme').plan()).toBe('plan of acme')
    expect(await new Tenant('other').plan()).toBe('plan of other')
    expect(runs).toBe(2)
    await expect(new NoId().get()).rejects.toThrow(/`id` field or a `cacheId\(\)` method/)
  })

  it('names entries after the defining class (subclasses share them); static methods need no id', async () => {
    const c = newCache()
    let runs = 0
    class Base {
      id = 1
      @c.memoized()
      async load(): Promise<number> {
        return ++runs
      }
      @c.memoized()
      static async config(): Promise<string> {
        runs++
        return 'cfg'
      }
    }
    class Child extends Base {}
    expect(await new Base().load()).toBe(1)
    expect(await new Child().load()).toBe(1)
    expect((new Child().load as Memoized<[], Promise<number>>).makeCacheKey()).toMatch(/^memoize:Base\.load:/)
    expect(await Base.config()).toBe('cfg')
    expect(await Base.config()).toBe('cfg')
    expect(runs).toBe(2)
    await c.deleteMemoized(Base.config)
    await Base.config()
    expect(runs).toBe(3)
  })

  it('concurrent calls on one instance run the method once', async () => {
    const c = newCache()
    let runs = 0
    class Slow {
      id = 'slow'
      @c.memoized()
      async compute(n: number): Promise<number> {
        runs++
        await new Promise((r) => setTimeout(r, 20))
        return n * 10
      }
    }
    const s = new Slow()
    expect(await Promise.all(Array.from({ length: 10 }, () => s.compute(3)))).toEqual(Array(10).fill(30))
    expect(runs).toBe(1)
  })
})

async function keysOf(c: Cache): Promise<string[]> {
  const keys: string[] = []
  for await (const k of c.keys()) keys.push(k)
  return keys.sort()
}

/** A memory backend whose every operation throws while `down` is set: a backend outage, for fail-open. */
function brokenAdapter() {
  const inner = memoryAdapter({}, { now: Date.now, threshold: 0, emit: () => {} })
  /** `ops`: the commands sent, by name. */
  const state = { down: false, ops: [] as string[], adapter: undefined as unknown as CacheAdapter }
  state.adapter = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown
      if (typeof value !== 'function' || prop === 'close') return value
      return (...args: unknown[]) => {
        state.ops.push(String(prop))
        if (state.down) throw new Error('connection refused')
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return state
}
