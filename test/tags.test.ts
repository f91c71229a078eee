/**
 * Tags beyond the conformance area (which runs on every adapter, see src/testing/tags.ts): the payload
 * format, what a tagged read costs in commands, fail-open, memoize's tag options, a model of several
 * processes sharing one store, and real processes: tagged in A, invalidated in B, a miss in A.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { memoryAdapter } from '../adapters/memory/index.js'
import type { CacheAdapter } from '../src/adapter.js'
import type { Cache } from '../src/cache.js'
import type { CacheConfig } from '../src/config/index.js'
import { ENGINE } from '../src/engine.js'
import { CacheArgumentError, CacheConfigError, type CacheError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { isTagged, TAG_KEY_PREFIX, unwrapTagged, wrapTagged } from '../src/tags.js'
import { jsonCodec, v8Codec } from '../src/codec.js'
import { uniquePrefix } from './support/prefix.js'
import { guardSharedRedis, REDIS_URL, redisOrSkip } from './support/redis.js'

const open: Cache[] = []
afterEach(async () => {
  for (const c of open.splice(0)) if (c.initialized) await c.close()
})
function track(c: Cache): Cache {
  open.push(c)
  return c
}

/** One memory store behind a proxy that logs every command (and can be taken down), for several caches. */
function counted() {
  const store = memoryAdapter({}, { now: Date.now, threshold: 0, emit: () => {} })
  const state = { down: false, calls: [] as string[] }
  const view = (): CacheAdapter =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'close') return () => {}
        const value = Reflect.get(target, prop, receiver) as unknown
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          state.calls.push(String(prop))
          if (state.down) throw new Error('connection refused')
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
      },
    })
  return { store, state, cache: (prefix = 'app:') => track(createCache({ adapter: view(), keyPrefix: prefix, defaultTtl: '1h' })) }
}

describe('the tagged payload', () => {
  it('wraps text and bytes and unwraps them exactly; no payload of the JSON or v8 codec looks tagged', () => {
    const stamp = { tags: ['org:7', 'ünï\n"x"'], versions: ['v1', 'v2'] }
    const text = wrapTagged('{"a":1}', stamp)
    expect(typeof text).toBe('string')
    expect(isTagged(text)).toBe(true)
    expect(unwrapTagged(text)).toEqual({ stamp, inner: '{"a":1}' })
    const bytes = new Uint8Array([0xff, 0x0a, 0x00, 0x0a])
    const wrapped = wrapTagged(bytes, stamp)
    expect(wrapped).toBeInstanceOf(Uint8Array)
    expect(isTagged(wrapped)).toBe(true)
    const back = unwrapTagged(wrapped)
    expect(back.stamp).toEqual(stamp)
    expect([...(back.inner as Uint8Array)]).toEqual([...bytes])
    // Read back as text from a backend that returns strings, a text payload is the same.
    expect(unwrapTagged(Buffer.from(text as string))).toMatchObject({ stamp })
    for (const value of ['^ck1', '', 0, -5, { a: 1 }, [1], new Map([[1, 2]]), new Date(0), null]) {
      expect(isTagged(jsonCodec.encode(value))).toBe(false)
      expect(isTagged(v8Codec.encode(value))).toBe(false)
    }
  })

  it('a tagged payload with a broken header is a corrupt entry: a miss, reported', async () => {
    const { store, cache } = counted()
    const c = cache()
    const corrupt: string[] = []
    c.on('corrupt', (key) => corrupt.push(key ?? ''))
    c.on('error', () => {})
    await store.set('app:k', '^ck1["t"\n1', null)
    await store.set('app:j', '^ck1 no newline', null)
    expect(await c.get('k')).toBeUndefined()
    expect(await c.getMany(['k', 'j'])).toEqual([undefined, undefined])
    expect(corrupt).toEqual(['k', 'k', 'j'])
  })
})

describe('what tags cost', () => {
  it('a tagged hit is one extra getMany for all its tags; an untagged hit is one get, as before', async () => {
    const { state, cache } = counted()
    const c = cache()
    await c.set('plain', 1)
    await c.set('tagged', 2, { tags: ['a', 'b', 'c'] })
    state.calls.length = 0
    expect(await c.get('plain')).toBe(1)
    expect(state.calls).toEqual(['get'])
    state.calls.length = 0
    expect(await c.get('tagged')).toBe(2)
    expect(state.calls).toEqual(['get', 'getMany'])
    state.calls.length = 0
    await c.set('other', 3, { tags: ['d'] })
    state.calls.length = 0
    // Three entries, four tags: one getMany for the entries, one for every tag they carry.
    expect(await c.getMany(['plain', 'tagged', 'other'])).toEqual([1, 2, 3])
    expect(state.calls).toEqual(['getMany', 'getMany'])
    state.calls.length = 0
    expect(await c.getOrSet('tagged', () => 9, { tags: ['a', 'b', 'c'] })).toBe(2)
    expect(state.calls).toEqual(['get', 'getMany'])
  })

  it('invalidating a tag is one setMany, whatever the number of its entries; nothing is scanned', async () => {
    const { state, cache } = counted()
    const c = cache()
    await c.set('one', 1, { tags: ['small'] })
    await c.setMany(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i] as const), { tags: ['big'] })
    state.calls.length = 0
    await c.invalidateTags(['small'])
    const small = [...state.calls]
    state.calls.length = 0
    await c.invalidateTags(['big'])
    expect(state.calls).toEqual(small)
    expect(small).toEqual(['setMany'])
    expect(await c.get('k999')).toBeUndefined()
  })

  it("a tagged getOrSet miss reads the entry and its tags' versions together, before the factory", async () => {
    const { state, cache } = counted()
    const c = cache()
    await c.invalidateTags(['t'])
    state.calls.length = 0
    let seen: string[] = []
    const factory = () => {
      seen = [...state.calls]
      return 1
    }
    expect(await c.getOrSet('k', factory, { tags: ['t'] })).toBe(1)
    // The hot-path get, then one getMany of the entry and the version, all before the factory ran.
    expect(seen).toEqual(['get', 'getMany'])
    expect(state.calls).toEqual(['get', 'getMany', 'set'])
  })
})

describe("a tag's mark is made when a tagged value is stored, not when it is read", () => {
  const marks = async (store: CacheAdapter) => {
    const found: string[] = []
    for await (const key of store.keys!('')) if (key.includes(TAG_KEY_PREFIX)) found.push(key)
    return found.sort()
  }

  it('a tagged getOrSet or memoized call that stores nothing (the factory throws or gives undefined) leaves no mark', async () => {
    const { store, cache } = counted()
    const c = cache()
    await expect(c.getOrSet('k', () => Promise.reject(new Error('no')), { tags: ['org:1'] })).rejects.toThrow('no')
    expect(await c.getOrSet('k', () => undefined, { tags: ['org:2'] })).toBeUndefined()
    const load = c.memoize(async function loadOrg(id: number) {
      if (id > 0) throw new Error(`no org ${id}`)
      return undefined
    }, { tags: (id) => [`org:${id}`] })
    await expect(load(3)).rejects.toThrow('no org 3')
    expect(await load(0)).toBeUndefined()
    // Before, each of these reads created its tag's mark, kept for good: one per distinct tag ever asked for.
    expect(await marks(store)).toEqual([])
    // A value that is stored makes its marks, and an invalidation then reaches it.
    expect(await c.getOrSet('k', () => 'v', { tags: ['org:1'] })).toBe('v')
    expect(await marks(store)).toEqual([`app:${TAG_KEY_PREFIX}org:1`])
    await c.invalidateTags(['org:1'])
    expect(await c.get('k')).toBeUndefined()
  })

  it('a mark that appears while the value is computed (another process invalidated the tag) means the value is not stored', async () => {
    const { cache } = counted()
    const a = cache()
    // Another process's cache over the same store: its invalidation is not one this process counts.
    const b = cache()
    const value = await a.getOrSet('k', async () => {
      await b.invalidateTags(['fresh-tag'])
      return 'computed from data read before the invalidation'
    }, { tags: ['fresh-tag'] })
    expect(value).toBe('computed from data read before the invalidation')
    expect(await a.get('k')).toBeUndefined()
    expect(await b.get('k')).toBeUndefined()
    // Without an invalidation in between, the same call stores its value.
    expect(await a.getOrSet('k', () => 'later', { tags: ['fresh-tag'] })).toBe('later')
    expect(await b.get('k')).toBe('later')
  })
})

describe('fail-open', () => {
  it('with the backend down, a tagged write stores nothing, a tagged read misses, invalidateTags returns false', async () => {
    const { state, cache } = counted()
    const c = cache()
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    await c.set('k', 1, { tags: ['t'] })
    state.down = true
    expect(await c.set('j', 1, { tags: ['t'] })).toBe(false)
    expect(await c.get('k')).toBeUndefined()
    expect(await c.invalidateTags(['t'])).toBe(false)
    expect(await c.getOrSet('g', () => 'computed', { tags: ['t'] })).toBe('computed')
    expect(errors.length).toBeGreaterThanOrEqual(4)
    state.down = false
    // The failed invalidation did not happen: say so by returning false, and the entry is still there.
    expect(await c.get('k')).toBe(1)
    expect(await c.get('g')).toBeUndefined()
  })

  it("the tags' versions failing to load after the entry did is a miss, and throws without failOpen", async () => {
    const store = memoryAdapter({}, { now: Date.now, threshold: 0, emit: () => {} })
    let failGetMany = false
    const adapter = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown
        if (prop === 'getMany') return (...args: unknown[]) => {
          if (failGetMany) throw new Error('boom')
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const c = track(createCache({ adapter, failOpen: false }))
    await c.set('k', 1, { tags: ['t'] })
    failGetMany = true
    await expect(c.get('k')).rejects.toThrow(/getMany "k" failed on the memory backend: boom/)
  })
})

describe('memoize and getOrSet options', () => {
  it('memoize refuses tags that are neither a list nor a function, and a function giving bad tags fails the call', async () => {
    const c = track(createCache({ type: 'memory' }))
    expect(() => c.memoize(async (id: number) => id, { name: 'm1', tags: 'org' as never })).toThrow(CacheConfigError)
    expect(() => c.memoize(async (id: number) => id, { name: 'm2', tags: [''] })).toThrow(/memoize\(m2\): `tags`: the tag "" is empty/)
    const bad = c.memoize(async (id: number) => id, { name: 'm3', tags: (id) => (id === 1 ? ['ok'] : [7 as never]) })
    expect(await bad(1)).toBe(1)
    const error = await bad(2).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CacheArgumentError)
    expect((error as CacheArgumentError).key).toBe(bad.makeCacheKey(2))
    expect((error as Error).message).toMatch(/memoize\(m3\): the tag number 7 is not a string/)
  })

  it('memoize takes a static list of tags too, and its own invalidation still works beside them', async () => {
    const c = track(createCache({ type: 'memory' }))
    let runs = 0
    const load = c.memoize(async (id: number) => ({ id, run: ++runs }), { name: 'load', tags: ['all'] })
    expect((await load(1)).run).toBe(1)
    expect((await load(1)).run).toBe(1)
    await c.invalidateTags(['all'])
    expect((await load(1)).run).toBe(2)
    await c.deleteMemoized(load)
    expect((await load(1)).run).toBe(3)
  })

  it('getOrSet with grace: an invalidated value is a miss, never served stale', async () => {
    const c = track(createCache({ type: 'memory' }))
    expect(await c.getOrSet('k', () => 1, { ttl: '1m', grace: '10m', tags: ['t'] })).toBe(1)
    await c.invalidateTags(['t'])
    expect(await c.getOrSet('k', () => 2, { ttl: '1m', grace: '10m', tags: ['t'] })).toBe(2)
  })

  it('two in-process calls of one tagged key share one factory run until an invalidation, not across it', async () => {
    const c = track(createCache({ type: 'memory' }))
    let runs = 0
    const slow = () => new Promise<number>((resolve) => setTimeout(() => resolve(++runs), 20))
    const [a, b] = await Promise.all([c.getOrSet('k', slow, { tags: ['t'] }), c.getOrSet('k', slow, { tags: ['t'] })])
    expect([a, b, runs]).toEqual([1, 1, 1])
    await c.invalidateTags(['t'])
    const before = c.getOrSet('k', slow, { tags: ['t'] })
    await new Promise((r) => setTimeout(r, 5))
    await c.invalidateTags(['t'])
    const after = c.getOrSet('k', slow, { tags: ['t'] })
    expect([await before, await after]).toEqual([2, 3])
    // The computation that saw the invalidation stored nothing; the later one did.
    expect(await c.get('k')).toBe(3)
  })

  it("an invalidation of other tags neither stops a tagged computation's store nor splits its flight", async () => {
    const c = track(createCache({ type: 'memory' }))
    let runs = 0
    const slow = () => new Promise<number>((resolve) => setTimeout(() => resolve(++runs), 30))
    // A busy app invalidates per-user tags all the time; this report is tagged by its organisation only.
    const first = c.getOrSet('report:7', slow, { tags: ['org:7'] })
    await new Promise((r) => setTimeout(r, 5))
    for (let user = 0; user < 50; user++) await c.invalidateTags([`user:${user}`])
    const second = c.getOrSet('report:7', slow, { tags: ['org:7'] })
    expect([await first, await second, runs]).toEqual([1, 1, 1])
    expect(await c.get('report:7')).toBe(1)
  })
})

describe('a model of several processes sharing one store', () => {
  it('set, get and invalidateTags from any of three caches agree with a reference model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('set' as const), who: fc.nat(2), key: fc.constantFrom('a', 'b'), value: fc.nat(99), tags: fc.subarray(['x', 'y']) }),
            fc.record({ op: fc.constant('get' as const), who: fc.nat(2), key: fc.constantFrom('a', 'b') }),
            fc.record({ op: fc.constant('invalidate' as const), who: fc.nat(2), tags: fc.subarray(['x', 'y'], { minLength: 1 }) }),
          ),
          { minLength: 1, maxLength: 25 },
        ),
        async (ops) => {
          const { cache } = counted()
          const caches = [cache(), cache(), cache()]
          const versions = new Map<string, number>()
          const model = new Map<string, { value: number; stamp: [string, number][] }>()
          for (const o of ops) {
            const c = caches[o.who] as Cache
            if (o.op === 'set') {
              await c.set(o.key, o.value, { tags: o.tags })
              model.set(o.key, { value: o.value, stamp: o.tags.map((t) => [t, versions.get(t) ?? 0]) })
            } else if (o.op === 'invalidate') {
              await c.invalidateTags(o.tags)
              for (const t of o.tags) versions.set(t, (versions.get(t) ?? 0) + 1)
            } else {
              const e = model.get(o.key)
              const expected = e !== undefined && e.stamp.every(([t, v]) => (versions.get(t) ?? 0) === v) ? e.value : undefined
              expect(await c.get(o.key)).toBe(expected)
            }
          }
          for (const c of caches) await c.close()
        },
      ),
      { numRuns: 100 },
    )
  })
})

/** A long-lived child process holding one cache (test/fixtures/tags-child.ts), answering one command at a time. */
class Child {
  readonly #proc: ChildProcess
  readonly #lines: Interface
  readonly #answers: string[] = []
  readonly #waiting: ((line: string) => void)[] = []
  #stderr = ''

  constructor(config: CacheConfig) {
    const fixture = fileURLToPath(new URL('./fixtures/tags-child.ts', import.meta.url))
    this.#proc = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] })
    this.#proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr += chunk))
    this.#lines = createInterface({ input: this.#proc.stdout as NodeJS.ReadableStream })
    this.#lines.on('line', (line) => {
      const next = this.#waiting.shift()
      if (next !== undefined) next(line)
      else this.#answers.push(line)
    })
  }

  #line(): Promise<string> {
    const ready = this.#answers.shift()
    if (ready !== undefined) return Promise.resolve(ready)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the child did not answer in 60 s\n${this.#stderr}`)), 60_000)
      this.#waiting.push((line) => {
        clearTimeout(timer)
        resolve(line)
      })
    })
  }

  async ready(): Promise<void> {
    expect(await this.#line()).toBe('ready')
  }

  async send<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T> {
    this.#proc.stdin?.write(`${JSON.stringify(command)}\n`)
    return JSON.parse(await this.#line()) as T
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.#proc.once('exit', resolve))
    this.#proc.stdin?.write(`${JSON.stringify({ op: 'close' })}\n`)
    await exited
    this.#lines.close()
  }
}

const redisUp = await redisOrSkip('the cross-process tag test on redis')
if (redisUp) guardSharedRedis('tags-processes')

describe('across real processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-tags-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const backends: [string, () => Promise<CacheConfig | undefined>][] = [
    ['sqlite', async () => ({ type: 'sqlite', path: join(dir, 'tags.sqlite') })],
    ['filesystem', async () => ({ type: 'filesystem', dir: join(dir, 'fs') })],
    ['redis', async () => (redisUp ? { type: 'redis', url: REDIS_URL, keyPrefix: uniquePrefix('tags-processes'), commandTimeout: '30s' } : undefined)],
  ]

  for (const [name, configFor] of backends) {
    it(`${name}: tagged in process A, invalidated in process B, a miss in A; written again after, it lives`, async () => {
      const config = await configFor()
      if (config === undefined) return
      const a = new Child(config)
      const b = new Child(config)
      try {
        await Promise.all([a.ready(), b.ready()])
        expect(await a.send({ op: 'set', key: 'user:1', value: { n: 1 }, tags: ['org:7'] })).toEqual({ ok: true })
        expect(await a.send({ op: 'set', key: 'user:2', value: { n: 2 }, tags: ['org:8'] })).toEqual({ ok: true })
        expect(await a.send({ op: 'get', key: 'user:1' })).toEqual({ value: { n: 1 } })
        expect(await b.send({ op: 'get', key: 'user:1' })).toEqual({ value: { n: 1 } })
        expect(await b.send({ op: 'invalidate', tags: ['org:7'] })).toEqual({ ok: true })
        expect(await a.send({ op: 'get', key: 'user:1' })).toEqual({ value: null })
        expect(await a.send({ op: 'get', key: 'user:2' })).toEqual({ value: { n: 2 } })
        expect(await a.send({ op: 'getOrSet', key: 'user:1', value: { n: 10 }, tags: ['org:7'] })).toEqual({ value: { n: 10 }, ran: true })
        expect(await b.send({ op: 'getOrSet', key: 'user:1', value: { n: 11 }, tags: ['org:7'] })).toEqual({ value: { n: 10 }, ran: false })
      } finally {
        await Promise.all([a.close(), b.close()])
        if (name === 'redis') {
          const c = createCache(config)
          await c.clear()
          await c.close()
        }
      }
    }, 120_000)
  }
})

describe('bookkeeping', () => {
  it("a tag's version lives under the config's keyPrefix, hidden from keys()", async () => {
    const { store, cache } = counted()
    const c = cache('app:').namespace('users:')
    await c.set('1', 'u', { tags: ['org:7'] })
    expect(await store.has(`app:${TAG_KEY_PREFIX}org:7`)).toBe(true)
    const keys: string[] = []
    for await (const k of cache('app:').keys()) keys.push(k)
    expect(keys).toEqual(['users:1'])
    expect((await c[ENGINE]()).fullKey('1')).toBe('app:users:1')
  })
})
