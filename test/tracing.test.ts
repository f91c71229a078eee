import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cached } from '../src/http/express.js'
import { CacheArgumentError, CacheBackendError, createCache, TRACE_CHANNEL, type Cache, type OperationContext } from '../src/index.js'
import { uniquePrefix } from './support/prefix.js'
import { freePort, REDIS_URL, redisOrSkip } from './support/redis.js'

const haveRedis = await redisOrSkip('tracing over Redis (test/tracing.test.ts)')
const root = mkdtempSync(join(tmpdir(), 'cachekit-tracing-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const channel = tracingChannel<unknown, OperationContext>(TRACE_CHANNEL)

interface Seen {
  event: 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error'
  context: OperationContext
  /** The context's fields when the event was published (later events fill in more of the same object). */
  snapshot: OperationContext
}

/** Subscribe to every event of the channel until the test ends. */
function listen(): Seen[] {
  const seen: Seen[] = []
  const on = (event: Seen['event']) => (context: OperationContext) => seen.push({ event, context, snapshot: { ...context } })
  const handlers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') }
  channel.subscribe(handlers)
  stops.push(() => channel.unsubscribe(handlers))
  return seen
}

/** The finished operations, in the order they ended. */
const finished = (seen: Seen[]) => seen.filter((s) => s.event === 'asyncEnd').map((s) => s.context)

const stops: (() => void)[] = []
const caches: Cache[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) stop()
  await Promise.all(caches.splice(0).map((c) => c.close()))
})

function open(config: Parameters<typeof createCache>[0]): Cache {
  const c = createCache(config)
  caches.push(c)
  return c
}

describe('the tracing channel cachekit:operation', () => {
  it('publishes each operation with its backend, prefix, key and outcome', async () => {
    const c = open({ type: 'memory', keyPrefix: 'app:' })
    await c.ready()
    const seen = listen()
    await c.set('a', 1)
    await c.get('a')
    await c.get('nope')
    await c.has('a')
    await c.add('a', 2)
    await c.inc('n', 5)
    await c.dec('n')
    await c.ttl('a')
    await c.touch('a', '1m')
    await c.getMany(['a', 'nope', 'n'])
    await c.setMany({ x: 1, y: 2 })
    await c.deleteMany(['x', 'y'])
    await c.delete('a')
    await c.invalidateTags(['t'])
    await c.purgeExpired()
    await c.clear()
    const done = finished(seen)
    expect(done.map((d) => d.operation)).toEqual(['set', 'get', 'get', 'has', 'add', 'inc', 'dec', 'ttl', 'touch', 'getMany', 'setMany', 'deleteMany', 'delete', 'invalidateTags', 'purgeExpired', 'clear'])
    for (const d of done) {
      expect(d.backend).toBe('memory')
      expect(d.keyPrefix).toBe('app:')
    }
    expect(done[0]).toMatchObject({ key: 'a', result: true })
    expect(done[1]).toMatchObject({ key: 'a', hit: true, result: 1 })
    expect(done[2]).toMatchObject({ key: 'nope', hit: false })
    expect(done[3]).toMatchObject({ key: 'a', hit: true })
    expect(done[4]).toMatchObject({ key: 'a', result: false })
    expect(done[6]).toMatchObject({ key: 'n', result: 4 })
    expect(done[9]).toMatchObject({ keys: ['a', 'nope', 'n'], hits: 2 })
    expect(done[10]).toMatchObject({ keys: ['x', 'y'] })
    // Sizes: what set wrote, the bytes of getMany's hits (a and n), and setMany's two entries (1 and 2 encode alike).
    const one = done[0]?.itemSize as number
    expect(one).toBeGreaterThan(0)
    expect(done[9]?.itemSize).toBeGreaterThan(one)
    expect(done[10]?.itemSize).toBe(2 * one)
    expect(done[11]).toMatchObject({ keys: ['x', 'y'], result: 2 })
    expect(done[13]).toMatchObject({ keys: ['t'] })
    // Each operation published start, end, asyncStart and asyncEnd, in that order, with one context.
    const first = seen.filter((s) => s.context === done[0])
    expect(first.map((s) => s.event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
    expect(first[0]?.snapshot).toEqual({ operation: 'set', backend: 'memory', keyPrefix: 'app:', key: 'a' })
  })

  it('getOrSet says whether it ran the factory', async () => {
    const c = open({ type: 'memory' })
    const seen = listen()
    expect(await c.getOrSet('k', () => 'made', '1m')).toBe('made')
    expect(await c.getOrSet('k', () => 'again', '1m')).toBe('made')
    expect(finished(seen).map(({ operation, key, hit, factoryRan }) => ({ operation, key, hit, factoryRan }))).toEqual([
      { operation: 'getOrSet', key: 'k', hit: false, factoryRan: true },
      { operation: 'getOrSet', key: 'k', hit: true, factoryRan: false },
    ])
  })

  it('a hit says which tier answered and the entry\'s size; a miss and a factory\'s run say neither', async () => {
    const path = join(root, 'tiers.db')
    const writer = open({ type: 'sqlite', path })
    await writer.ready()
    const seen = listen()
    await writer.set('k', 'v'.repeat(50))
    await writer.add('k', 'not stored')
    // Opened after the writes, so that its memory tier starts empty and hears of no change after: its first
    // read of k goes to the file, the next ones answer from memory.
    const other = open({ type: 'sqlite', path, l1: true })
    await other.ready()
    await other.get('k')
    await other.get('k')
    await other.get('absent')
    await other.getOrSet('made', () => 'by the factory')
    await other.getOrSet('k', () => 'not run')
    const done = finished(seen)
    const [set, add, first, second, miss, ran, hit] = done
    expect(set?.itemSize).toBeGreaterThan(50)
    expect(add).toMatchObject({ operation: 'add', result: false, itemSize: expect.any(Number) })
    expect(first).toMatchObject({ hit: true, tier: 'backend', itemSize: set?.itemSize })
    expect(second).toMatchObject({ hit: true, tier: 'l1', itemSize: set?.itemSize })
    expect(hit).toMatchObject({ operation: 'getOrSet', hit: true, tier: 'l1', itemSize: set?.itemSize })
    for (const d of [miss, ran]) {
      expect(d?.hit).toBe(false)
      expect(d).not.toHaveProperty('tier')
      expect(d).not.toHaveProperty('itemSize')
    }
  })

  it("this process's own writes, tagged or not, are answered by its memory tier, and say so", async () => {
    const c = open({ type: 'sqlite', path: join(root, 'own.db'), l1: true })
    await c.ready()
    const seen = listen()
    await c.set('plain', 'p')
    await c.set('tagged', 't', { tags: ['group'] })
    await c.get('plain')
    await c.get('tagged')
    const [setPlain, setTagged, plain, tagged] = finished(seen)
    expect(plain).toMatchObject({ hit: true, tier: 'l1', itemSize: setPlain?.itemSize })
    // A tagged entry's size is the stored one, its tag versions included, when written and when read.
    expect(setTagged?.itemSize).toBeGreaterThan(setPlain?.itemSize ?? Infinity)
    expect(tagged).toMatchObject({ hit: true, tier: 'l1', itemSize: setTagged?.itemSize })
  })

  it('a getOrSet that found a stale entry and then took another call\'s value says no tier', async () => {
    const c = open({ type: 'memory' })
    await c.set('k', 'old', { tags: ['t'] })
    await c.invalidateTags(['t'])
    const seen = listen()
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => (release = r))
    const first = c.getOrSet('k', async () => (await gate, 'new'), { ttl: '1m', tags: ['t'] })
    const second = c.getOrSet('k', () => 'not run', { ttl: '1m', tags: ['t'] })
    release()
    expect(await Promise.all([first, second])).toEqual(['new', 'new'])
    const done = finished(seen)
    expect(done.map((d) => d.factoryRan)).toEqual([true, false])
    for (const d of done) {
      expect(d).not.toHaveProperty('tier')
      expect(d).not.toHaveProperty('itemSize')
    }
  })

  it('a memoized call is one memoize operation, with the function\'s name and whether it ran', async () => {
    const c = open({ type: 'memory', keyPrefix: 'm:' })
    const double = c.memoize(async function double(n: number) {
      return n * 2
    }, { ttl: '1m' })
    await c.ready()
    const seen = listen()
    expect(await double(2)).toBe(4)
    expect(await double(2)).toBe(4)
    const done = finished(seen)
    expect(done.map(({ operation, name, key, hit, factoryRan, backend, keyPrefix }) => ({ operation, name, key, hit, factoryRan, backend, keyPrefix }))).toEqual([
      { operation: 'memoize', name: 'double', key: double.makeCacheKey(2), hit: false, factoryRan: true, backend: 'memory', keyPrefix: 'm:' },
      { operation: 'memoize', name: 'double', key: double.makeCacheKey(2), hit: true, factoryRan: false, backend: 'memory', keyPrefix: 'm:' },
    ])
  })

  it('a request to a cached route is one http operation: a miss runs the handler, the next is a hit', async () => {
    const c = open({ type: 'memory' })
    let runs = 0
    const app = express()
    app.get('/page', cached({ cache: c, ttl: '1m', forcedUpdate: (req) => req.get('x-refresh') === '1' }), (_req, res) => {
      runs++
      res.type('text/plain').send('hello')
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/page`
      const seen = listen()
      for (let i = 0; i < 2; i++) expect(await (await fetch(url)).text()).toBe('hello')
      expect(runs).toBe(1)
      const done = finished(seen).filter((d) => d.operation === 'http')
      expect(done.map(({ hit, factoryRan, backend }) => ({ hit, factoryRan, backend }))).toEqual([
        { hit: false, factoryRan: true, backend: 'memory' },
        { hit: true, factoryRan: false, backend: 'memory' },
      ])
      expect(done[0]?.key).toBe(done[1]?.key)
      expect(done[0]?.key).toContain('/page')
      // A forced update reads nothing: neither a hit nor a miss, and the handler runs.
      expect(await (await fetch(url, { headers: { 'x-refresh': '1' } })).text()).toBe('hello')
      const forced = finished(seen).filter((d) => d.operation === 'http')[2]
      expect(forced).toMatchObject({ factoryRan: true })
      expect(forced).not.toHaveProperty('hit')
      expect(c.stats()).toMatchObject({ hits: 1, misses: 1 })
    } finally {
      server.close()
    }
  })

  it('a namespace traces its own prefix, and a SQLite cache its backend', async () => {
    const c = open({ type: 'sqlite', path: join(root, 'trace.db'), keyPrefix: 'p:' })
    await c.ready()
    const seen = listen()
    await c.namespace('users:').set('1', { name: 'Ada' })
    expect(finished(seen)).toEqual([expect.objectContaining({ operation: 'set', backend: 'sqlite', keyPrefix: 'p:users:', key: '1' })])
  })

  it('setMany leaves a one-shot iterable to the method, which stores every entry; a Map shows its keys', async () => {
    const c = open({ type: 'memory' })
    const seen = listen()
    function* entries(): Generator<[string, number]> {
      yield ['g1', 1]
      yield ['g2', 2]
    }
    expect(await c.setMany(entries())).toBe(true)
    expect(await c.getMany(['g1', 'g2'])).toEqual([1, 2])
    expect(finished(seen)[0]?.operation).toBe('setMany')
    expect(finished(seen)[0]?.keys).toBeUndefined()
    await c.setMany(new Map([['m1', 1], ['m2', 2]]))
    expect(await c.getMany(['m1', 'm2'])).toEqual([1, 2])
    expect(finished(seen).at(-2)).toMatchObject({ operation: 'setMany', keys: ['m1', 'm2'] })
  })

  it('a refused call publishes error with the error, and the caller still gets it', async () => {
    const c = open({ type: 'memory' })
    const seen = listen()
    await expect(c.set('k', undefined)).rejects.toBeInstanceOf(CacheArgumentError)
    await expect(c.getOrSet('k', 'not a function' as never)).rejects.toThrow(/factory must be a function/)
    const errors = seen.filter((s) => s.event === 'error')
    expect(errors.map((e) => e.context.operation)).toEqual(['set', 'getOrSet'])
    expect(errors[0]?.context.error).toBeInstanceOf(CacheArgumentError)
    expect(seen.filter((s) => s.event === 'asyncEnd')).toHaveLength(2)
  })

  it('with a subscriber, bad input fails as without one: a rejection of the method, published as error', async () => {
    const c = open({ type: 'memory' })
    const seen = listen()
    function* broken(): Generator<[string, number]> {
      yield ['b1', 1]
      throw new Error('the generator broke')
    }
    const call = c.setMany(broken())
    expect(call).toBeInstanceOf(Promise)
    await expect(call).rejects.toThrow('the generator broke')
    expect(await c.get('b1')).toBeUndefined()
    const { get } = c
    await expect(get('k')).rejects.toThrow(TypeError)
    expect(seen.filter((s) => s.event === 'error').map((s) => s.context.operation)).toEqual(['setMany', 'get'])

    // A closed cache says so before it reads anything of a one-shot iterable.
    let started = false
    function* lazy(): Generator<[string, number]> {
      started = true
      yield ['l', 1]
    }
    await c.close()
    await expect(c.setMany(lazy())).rejects.toThrow(/closed/)
    expect(started).toBe(false)
  })

  it('the keys in the context are a copy of the caller\'s array', async () => {
    const c = open({ type: 'memory' })
    const seen = listen()
    const keys = ['a', 'b']
    await c.getMany(keys)
    keys.push('c')
    expect(finished(seen)[0]?.keys).toEqual(['a', 'b'])
  })

  it('a backend failure without fail-open publishes error; with fail-open the call ends with its fallback', async () => {
    const port = await freePort()
    const down = open({ type: 'redis', url: `redis://127.0.0.1:${port}`, failOpen: false, commandTimeout: '200ms', connectTimeout: '200ms' })
    const open2 = open({ type: 'redis', url: `redis://127.0.0.1:${port}`, commandTimeout: '200ms', connectTimeout: '200ms' })
    open2.on('error', () => {})
    const seen = listen()
    await expect(down.get('k')).rejects.toBeInstanceOf(CacheBackendError)
    expect(await open2.get('k')).toBeUndefined()
    const errors = seen.filter((s) => s.event === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.context).toMatchObject({ operation: 'get', backend: 'redis', key: 'k' })
    expect(errors[0]?.context.error).toBeInstanceOf(CacheBackendError)
    expect(finished(seen).at(-1)).toMatchObject({ operation: 'get', hit: false })
  })

  it.runIf(haveRedis)('traces a Redis cache with backend redis', async () => {
    const c = open({ type: 'redis', url: REDIS_URL, keyPrefix: uniquePrefix('tracing') })
    await c.ready()
    const seen = listen()
    await c.set('r', 'v')
    await c.get('r')
    expect(finished(seen).map((d) => [d.operation, d.backend, d.hit])).toEqual([
      ['set', 'redis', undefined],
      ['get', 'redis', true],
    ])
  })

  it('publishes nothing once the last subscriber leaves, and answers the same', async () => {
    const c = open({ type: 'memory' })
    const seen: string[] = []
    const onStart = (message: unknown) => seen.push((message as OperationContext).operation)
    subscribe(`tracing:${TRACE_CHANNEL}:start`, onStart)
    await c.set('k', 1)
    unsubscribe(`tracing:${TRACE_CHANNEL}:start`, onStart)
    await c.set('k', 2)
    expect(await c.get('k')).toBe(2)
    expect(seen).toEqual(['set'])
  })
})
