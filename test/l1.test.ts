/**
 * The memory tier (`l1`, docs/tiered.md): what it guarantees, each over real backends (a SQLite file,
 * the shared Redis, a Redis server of the test's own for the outages) and real processes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { configFromEnv, resolveConfig, type CacheConfig } from '../src/config/index.js'
import { CacheConfigError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { CacheStore } from '../src/session/store.js'
import { fillGuard } from '../src/tier/store.js'
import { uniquePrefix } from './support/prefix.js'
import { HoldingProxy } from './support/proxy.js'
import { freePort, guardSharedRedis, REDIS_URL, redisOrSkip, RedisServer } from './support/redis.js'
import { skippedHere } from './support/servers.js'

const dir = mkdtempSync(join(tmpdir(), 'cachekit-l1-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const CHILD = fileURLToPath(new URL('./fixtures/l1-child.ts', import.meta.url))

const opened: Cache[] = []
afterEach(async () => {
  for (const c of opened.splice(0)) {
    if (!c.initialized) continue
    await c.clear().catch(() => {})
    await c.close()
  }
})

async function open(config: Exclude<CacheConfig, string>): Promise<Cache> {
  const cache = createCache(config)
  opened.push(cache)
  cache.on('error', () => {})
  await cache.ready()
  return cache
}

/** Poll `read` until it returns `expected` (by JSON), for up to `ms`; the ms it took, or -1. */
async function seenWithin(read: () => Promise<unknown>, expected: unknown, ms: number): Promise<number> {
  const start = performance.now()
  const want = JSON.stringify(expected)
  while (performance.now() - start < ms) {
    if (JSON.stringify(await read()) === want) return performance.now() - start
    await new Promise((r) => setTimeout(r, 1))
  }
  return -1
}

/** Generous: the bound is `staleness` (SQLite) or a push (Redis); a loaded 2-core machine adds its delays. */
const BOUND_MS = 3_000

describe('l1: configuration', () => {
  const err = (config: CacheConfig): CacheConfigError => {
    try {
      resolveConfig(config)
    } catch (error) {
      expect(error).toBeInstanceOf(CacheConfigError)
      return error as CacheConfigError
    }
    throw new Error('no error')
  }

  it('names an unknown option and suggests the right one', () => {
    const e = err({ type: 'sqlite', path: join(dir, 'x.sqlite'), l1: { tll: '1m' } as never })
    expect(e.message).toMatch(/Unknown option `l1\.tll`\. Did you mean `ttl`\?/)
    expect(e.option).toBe('l1.tll')
  })

  it.each([
    [{ ttl: -1 }, 'l1.ttl'],
    [{ ttl: 'soon' }, 'l1.ttl'],
    [{ ttl: 0 }, 'l1.ttl'],
    [{ staleness: 'later' }, 'l1.staleness'],
    [{ staleness: -5 }, 'l1.staleness'],
    [{ maxBytes: '12 parsecs' }, 'l1.maxBytes'],
    [{ threshold: 0 }, 'l1.threshold'],
    [{ threshold: 1.5 }, 'l1.threshold'],
    [{ values: 'shared' }, 'l1.values'],
  ])('refuses l1 %j, naming %s', (l1, option) => {
    const e = err({ type: 'sqlite', path: join(dir, 'x.sqlite'), l1: l1 as never })
    expect(e.option).toBe(option)
    expect(e.message).toContain(option)
  })

  it('refuses l1 on memory (it is memory already), null and the backends without a channel yet', () => {
    expect(err({ type: 'memory', l1: true }).message).toMatch(/memory tier already/)
    expect(err({ type: 'null', l1: true }).message).toMatch(/stores nothing/)
    expect(err({ type: 'filesystem', dir, l1: true }).message).toMatch(/no invalidation channel yet/)
    expect(err({ type: 'postgres', url: 'postgres://127.0.0.1/test', l1: true }).message).toMatch(/no invalidation channel yet/)
    expect(err({ type: 'mysql', url: 'mysql://root@127.0.0.1/test', l1: true }).message).toMatch(/no invalidation channel yet/)
    expect(err({ type: 'sqlite', path: join(dir, 'x.sqlite'), l1: 'yes' as never }).option).toBe('l1')
  })

  it('takes l1 from a URL and from CACHE_L1*, and says which parameter or variable is wrong', () => {
    const fromUrl = resolveConfig('redis://127.0.0.1:6379/0?l1=true&l1.ttl=30s&l1.threshold=500')
    expect(fromUrl.l1).toMatchObject({ ttl: 30_000, threshold: 500, staleness: 25, values: 'frozen' })
    expect(fromUrl.adapterOptions.url).toBe('redis://127.0.0.1:6379/0')
    expect(resolveConfig('redis://127.0.0.1:6379?l1=false').l1).toBeUndefined()
    expect(err('redis://127.0.0.1:6379?l1.tl=1s').message).toMatch(/Unknown URL parameter `l1\.tl`/)
    expect(err('redis://127.0.0.1:6379?l1=maybe').option).toBe('l1')

    const env = configFromEnv({ CACHE_URL: 'redis://127.0.0.1:6379', CACHE_L1: 'true', CACHE_L1_TTL: '30s', CACHE_L1_MAX_BYTES: '8mb' })
    expect(resolveConfig(env!).l1).toMatchObject({ ttl: 30_000, maxBytes: 8 * 2 ** 20 })
    expect(resolveConfig(configFromEnv({ CACHE_URL: 'redis://127.0.0.1:6379', CACHE_L1: '1' })!).l1).toMatchObject({ ttl: 60_000 })
    expect(() => configFromEnv({ CACHE_URL: 'redis://127.0.0.1:6379', CACHE_L1: 'maybe' })).toThrow(/CACHE_L1/)
    expect(() => configFromEnv({ CACHE_URL: 'redis://127.0.0.1:6379', CACHE_L1_THRESHOLD: 'lots' })).toThrow(/CACHE_L1_THRESHOLD/)
  })

  it('counts a different l1 as a different config', () => {
    const cache = createCache({ type: 'sqlite', path: join(dir, 'cfg.sqlite'), l1: true })
    opened.push(cache)
    expect(() => cache.init({ type: 'sqlite', path: join(dir, 'cfg.sqlite'), l1: true })).not.toThrow()
    expect(() => cache.init({ type: 'sqlite', path: join(dir, 'cfg.sqlite'), l1: { ttl: '5s' } })).toThrow(/`l1`/)
  })
})

interface Backend {
  name: string
  /** A config for one more process (or cache) on the same backend, under `prefix`. */
  config(prefix: string, l1?: unknown): Exclude<CacheConfig, string>
}

const sqlitePath = join(dir, 'shared.sqlite')
const sqliteBackend: Backend = {
  name: 'sqlite',
  config: (prefix, l1 = true) => ({ type: 'sqlite', path: sqlitePath, keyPrefix: prefix, l1: l1 as never }),
}
const redisBackend: Backend = {
  name: 'redis',
  config: (prefix, l1 = true) => ({ type: 'redis', url: REDIS_URL, keyPrefix: prefix, commandTimeout: '30s', connectTimeout: '30s', l1: l1 as never }),
}

const haveRedis = await redisOrSkip('the memory tier over Redis (test/l1.test.ts)')
if (haveRedis) guardSharedRedis('l1')
else skippedHere('the memory tier over Redis (test/l1.test.ts)')

for (const backend of haveRedis ? [sqliteBackend, redisBackend] : [sqliteBackend]) {
  describe(`l1 over ${backend.name}`, () => {
    it('answers a second read from memory, and a process reads its own writes at once', async () => {
      const prefix = uniquePrefix(`l1-own-${backend.name}`)
      const a = await open(backend.config(prefix))
      await a.set('user', { name: 'Ada' })
      expect(await a.get('user')).toEqual({ name: 'Ada' })
      const before = a.stats().l1!
      expect(await a.get('user')).toEqual({ name: 'Ada' })
      expect(a.stats().l1!.hits).toBe(before.hits + 1)
      expect(a.stats().l1).toMatchObject({ active: true, channel: backend.name === 'redis' ? 'push' : 'poll' })

      await a.set('user', { name: 'Grace' })
      expect(await a.get('user')).toEqual({ name: 'Grace' })
      await a.delete('user')
      expect(await a.get('user')).toBeUndefined()
      await a.set('n', 5)
      expect(await a.get('n')).toBe(5)
      expect(await a.inc('n')).toBe(6)
      expect(await a.get('n')).toBe(6)
      await a.set('gone', 'x')
      expect(await a.get('gone')).toBe('x')
      await a.clear()
      expect(await a.get('gone')).toBeUndefined()
      expect(await a.get('n')).toBeUndefined()
    })

    it("sees another process's set, delete, inc and clear within the bound", async () => {
      const prefix = uniquePrefix(`l1-others-${backend.name}`)
      const a = await open(backend.config(prefix))
      const b = await open(backend.config(prefix))
      await a.set('k', 'v1')
      await a.set('n', 1)
      expect(await b.get('k')).toBe('v1')
      expect(await b.get('n')).toBe(1)
      expect(await b.get('k')).toBe('v1') // held in b's tier now

      await a.set('k', 'v2')
      expect(await seenWithin(() => b.get('k'), 'v2', BOUND_MS)).toBeGreaterThanOrEqual(0)
      await a.delete('k')
      expect(await seenWithin(() => b.get('k'), undefined, BOUND_MS)).toBeGreaterThanOrEqual(0)
      await a.inc('n', 41)
      expect(await seenWithin(() => b.get('n'), 42, BOUND_MS)).toBeGreaterThanOrEqual(0)
      await a.set('k', 'v3')
      expect(await seenWithin(() => b.get('k'), 'v3', BOUND_MS)).toBeGreaterThanOrEqual(0)
      await a.clear()
      expect(await seenWithin(() => b.get('k'), undefined, BOUND_MS)).toBeGreaterThanOrEqual(0)
      expect(b.stats().l1!.invalidations).toBeGreaterThan(0)
    })

    it('sees the writes of a process without l1 too', async () => {
      const prefix = uniquePrefix(`l1-plain-${backend.name}`)
      const plain = await open(backend.config(prefix, false))
      const b = await open(backend.config(prefix))
      await plain.set('k', 'old')
      expect(await b.get('k')).toBe('old')
      expect(await b.get('k')).toBe('old')
      await plain.set('k', 'new')
      expect(await seenWithin(() => b.get('k'), 'new', BOUND_MS)).toBeGreaterThanOrEqual(0)
    })

    it('never answers inc, dec or add from memory', async () => {
      const prefix = uniquePrefix(`l1-atomic-${backend.name}`)
      const a = await open(backend.config(prefix))
      const b = await open(backend.config(prefix))
      await a.set('n', 5)
      expect(await b.get('n')).toBe(5)
      expect(await b.get('n')).toBe(5)
      // b's tier holds 5; a changes it; b's inc must start from the backend's 6, whatever b holds.
      expect(await a.inc('n')).toBe(6)
      expect(await b.inc('n')).toBe(7)
      expect(await b.get('n')).toBe(7)
      expect(await a.dec('n', 10)).toBe(-3)
      expect(await b.dec('n')).toBe(-4)
      // b holds a value for `job`; a deletes it and b's add must see the key absent in the backend.
      await a.set('job', 'a')
      expect(await b.get('job')).toBe('a')
      await a.delete('job')
      expect(await b.add('job', 'b')).toBe(true)
      expect(await b.add('job', 'c')).toBe(false)
      expect(await seenWithin(() => a.get('job'), 'b', BOUND_MS)).toBeGreaterThanOrEqual(0)
    })

    it('returns one frozen value by default, copies with values: "copies", and a copy of what a freeze cannot protect', async () => {
      const prefix = uniquePrefix(`l1-values-${backend.name}`)
      const frozen = await open(backend.config(prefix))
      await frozen.set('obj', { a: [1, 2], b: { c: 'd' } })
      const first = await frozen.get<{ a: number[]; b: { c: string } }>('obj')
      const second = await frozen.get<{ a: number[]; b: { c: string } }>('obj')
      expect(second).toBe(first)
      expect(Object.isFrozen(second!.b)).toBe(true)
      expect(() => {
        second!.b.c = 'changed'
      }).toThrow(TypeError)
      expect(() => second!.a.push(3)).toThrow(TypeError)
      expect(await frozen.get('obj')).toEqual({ a: [1, 2], b: { c: 'd' } })

      await frozen.set('map', new Map([['x', 1]]))
      const m1 = await frozen.get<Map<string, number>>('map')
      m1!.set('x', 99)
      expect(await frozen.get('map')).toEqual(new Map([['x', 1]]))

      const copies = await open(backend.config(uniquePrefix(`l1-copies-${backend.name}`), { values: 'copies' }))
      await copies.set('obj', { a: 1 })
      const c1 = await copies.get<{ a: number }>('obj')
      c1!.a = 2
      const c2 = await copies.get<{ a: number }>('obj')
      expect(c2).toEqual({ a: 1 })
      expect(c2).not.toBe(c1)
      expect(copies.stats().l1!.hits).toBeGreaterThan(0)
    })

    it('a cyclic value (the v8 serializer keeps cycles) is read back whole from memory', async () => {
      const c = await open({ ...backend.config(uniquePrefix(`l1-cycle-${backend.name}`)), serializer: 'v8' })
      const value: { name: string; self?: unknown; list: unknown[] } = { name: 'loop', list: [] }
      value.self = value
      value.list.push(value)
      await c.set('cycle', value)
      for (let i = 0; i < 3; i++) {
        const read = await c.get<typeof value>('cycle')
        expect(read?.name).toBe('loop')
        expect(read?.self).toBe(read)
        expect(read?.list[0]).toBe(read)
      }
      expect(c.stats().l1!.hits).toBeGreaterThan(0)
    })

    it('holds no more entries and bytes than its bounds', async () => {
      const prefix = uniquePrefix(`l1-bounds-${backend.name}`)
      const a = await open(backend.config(prefix, { threshold: 50, maxBytes: '64kb' }))
      const kb = 'x'.repeat(1024)
      await a.setMany(Array.from({ length: 300 }, (_, i) => [`k${i}`, kb] as const))
      for (let i = 0; i < 300; i++) expect(await a.get(`k${i}`)).toBe(kb)
      const s = a.stats().l1!
      expect(s.entries).toBeLessThanOrEqual(50)
      expect(s.entries).toBeGreaterThan(0)
      expect(s.bytes).toBeLessThanOrEqual(64 * 1024)

      const small = await open(backend.config(uniquePrefix(`l1-bytes-${backend.name}`), { maxBytes: '64kb' }))
      const big = 'y'.repeat(20 * 1024)
      for (let i = 0; i < 20; i++) await small.set(`big${i}`, big)
      for (let i = 0; i < 20; i++) expect(await small.get(`big${i}`)).toBe(big)
      expect(small.stats().l1!.bytes).toBeLessThanOrEqual(64 * 1024)
      // A value larger than the whole bound is never held, and still read.
      await small.set('huge', 'z'.repeat(100 * 1024))
      expect((await small.get<string>('huge'))?.length).toBe(100 * 1024)
      expect(small.stats().l1!.bytes).toBeLessThanOrEqual(64 * 1024)
    })

    it('keeps no entry past its TTL in the backend', async () => {
      const prefix = uniquePrefix(`l1-ttl-${backend.name}`)
      const a = await open(backend.config(prefix))
      await a.set('short', 'v', 300)
      expect(await a.get('short')).toBe('v')
      const b = await open(backend.config(prefix))
      expect(await b.get('short')).toBe('v')
      await new Promise((r) => setTimeout(r, 450))
      expect(await a.get('short')).toBeUndefined()
      expect(await b.get('short')).toBeUndefined()
    })

    it('tags: an invalidation in one process reaches what another holds', async () => {
      const prefix = uniquePrefix(`l1-tags-${backend.name}`)
      const a = await open(backend.config(prefix))
      const b = await open(backend.config(prefix))
      await a.set('report', 'r1', { tags: ['reports'] })
      expect(await b.get('report')).toBe('r1')
      expect(await b.get('report')).toBe('r1')
      await a.invalidateTags(['reports'])
      expect(await seenWithin(() => b.get('report'), undefined, BOUND_MS)).toBeGreaterThanOrEqual(0)
      expect(await b.getOrSet('report', () => 'r2', { tags: ['reports'] })).toBe('r2')
      expect(await seenWithin(() => a.get('report'), 'r2', BOUND_MS)).toBeGreaterThanOrEqual(0)
    })

    it(
      'four processes: a writer streams versions while three read; reads never go back, and all end on the last',
      async () => {
        const n = 400
        for (let round = 0; round < 3; round++) {
          const prefix = uniquePrefix(`l1-stream-${backend.name}`)
          const config = backend.config(prefix)
          const key = `v${round}`
          const { writer, readers } = await streamRound(config, key, n)
          expect(writer.last).toBe(n)
          for (const r of readers) {
            expect(r.regressions, `round ${round}: reads that went back in time`).toBe(0)
            expect(r.sawLastAt, `round ${round}: a reader never read the last version`).not.toBeNull()
            expect(r.after, `round ${round}: a reader left the last version`).toEqual([n])
            expect(r.reads).toBeGreaterThan(0)
          }
          const cleanup = await open(backend.config(prefix, false))
          await cleanup.clear()
        }
      },
      180_000,
    )
  })
}

describe('l1 over SQLite: its own writes in the change log', () => {
  it("a look at the log keeps what this process wrote, and drops what another process wrote", async () => {
    const prefix = uniquePrefix('l1-own-log')
    const a = await open(sqliteBackend.config(prefix))
    const b = await open(sqliteBackend.config(prefix, false))
    await b.set('other', 1)
    expect(await a.get('other')).toBe(1)
    await a.set('mine', 'a')
    expect(await a.get('mine')).toBe('a')
    const before = a.stats().l1!
    // The log now holds a's row for `mine`, then b's for `other`: the look that reads them drops `other` only.
    await b.set('other', 2)
    expect(await seenWithin(() => a.get('other'), 2, BOUND_MS)).toBeGreaterThanOrEqual(0)
    expect(a.stats().l1!.invalidations - before.invalidations).toBe(1)
    const hits = a.stats().l1!.hits
    expect(await a.get('mine')).toBe('a')
    expect(a.stats().l1!.hits).toBe(hits + 1)
  })

  it('a key holding U+0000 is invalidated as itself (a driver that reads TEXT up to a NUL reads the log as bytes)', async () => {
    const prefix = uniquePrefix('l1-nul')
    const a = await open(sqliteBackend.config(prefix))
    const b = await open(sqliteBackend.config(prefix, false))
    const key = 'a\u0000b'
    await b.set(key, 1)
    expect(await a.get(key)).toBe(1)
    expect(await a.get(key)).toBe(1)
    await b.set(key, 2)
    expect(await seenWithin(() => a.get(key), 2, BOUND_MS)).toBeGreaterThanOrEqual(0)
  })

  it('a write of the same key by another process right after this one is seen (both rows in one look)', async () => {
    const prefix = uniquePrefix('l1-own-race')
    const a = await open(sqliteBackend.config(prefix))
    const b = await open(sqliteBackend.config(prefix, false))
    for (let i = 0; i < 5; i++) {
      // No timer runs between the two writes (each is one synchronous statement): one look reads both rows.
      await a.set('k', `a${i}`)
      await b.set('k', `b${i}`)
      expect(await seenWithin(() => a.get('k'), `b${i}`, BOUND_MS)).toBeGreaterThanOrEqual(0)
      // And the other order: this process's write is the newer one, and is what it reads.
      await b.set('k', `b${i}'`)
      await a.set('k', `a${i}'`)
      expect(await a.get('k')).toBe(`a${i}'`)
    }
  })
})

describe('l1 over SQLite: the bound holds on a busy event loop', () => {
  it("a read after the timer could not run looks at the change log first, so it never returns what another process replaced longer ago than staleness", async () => {
    const prefix = uniquePrefix('l1-busy')
    const a = await open(sqliteBackend.config(prefix))
    const b = await open(sqliteBackend.config(prefix, { staleness: '100ms' }))
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    expect(await b.get('k')).toBe('v1')
    await a.set('k', 'v2')
    // Block this event loop past the staleness: b's timer cannot read the log meanwhile.
    const end = Date.now() + 250
    while (Date.now() < end) {
      // busy, as a server's CPU-bound request would be
    }
    expect(await b.get('k')).toBe('v2')
  })
})

describe.runIf(haveRedis)('l1 without a channel (the keyv bridge)', () => {
  it('warns once that other processes\' writes are bounded by l1.ttl alone, and holds entries for that long', async () => {
    const { default: KeyvRedis } = await import('@keyv/redis')
    const keyPrefix = uniquePrefix('l1-keyv')
    const warnings: string[] = []
    const a = createCache({ type: 'keyv', store: new KeyvRedis(REDIS_URL), shared: true, keyPrefix, l1: { ttl: 1000 } } as never)
    opened.push(a)
    a.on('warning', (m) => warnings.push(m))
    await a.ready()
    expect(warnings.filter((w) => w.includes('l1.ttl (1000 ms)'))).toHaveLength(1)
    expect(a.stats().l1).toMatchObject({ channel: 'none', active: true })
    // Another writer of the same store, ready before the write, so that nothing slow runs inside l1.ttl.
    const b = createCache({ type: 'keyv', store: new KeyvRedis(REDIS_URL), shared: true, keyPrefix } as never)
    opened.push(b)
    await b.ready()
    // The entry is held from when a's write resolved: never for less than l1.ttl after the write began (the
    // cache's clock, Date.now, for both).
    const began = Date.now()
    await a.set('k', 'v1')
    expect(await a.get('k')).toBe('v1')
    // This tier does not hear of b's write, and serves v1 until l1.ttl has passed.
    await b.set('k', 'v2')
    expect(await a.get('k')).toBe('v1')
    expect(await seenWithin(() => a.get('k'), 'v2', BOUND_MS)).toBeGreaterThanOrEqual(0)
    expect(Date.now() - began).toBeGreaterThanOrEqual(1000)
  })
})

describe('l1 and sessions', () => {
  it("a session read goes around the tier: another worker's login is seen at once, while the tier still holds the old copy", async () => {
    // A staleness of an hour: other processes' writes reach this tier only through reads that go around it.
    const config = { ...sqliteBackend.config(uniquePrefix('l1-sessions'), { staleness: '1h' }) }
    const a = await open(config)
    const b = await open(config)
    const storeA = new CacheStore({ cache: a })
    const storeB = new CacheStore({ cache: b })
    const set = (store: CacheStore, sid: string, data: object) =>
      new Promise<void>((resolve, reject) => store.set(sid, { cookie: { originalMaxAge: 60_000 }, ...data } as never, (e) => (e ? reject(e) : resolve())))
    const get = (store: CacheStore, sid: string) =>
      new Promise<unknown>((resolve, reject) => store.get(sid, (e, s) => (e ? reject(e) : resolve(s))))
    await set(storeB, 'sid1', { user: null })
    expect(await b.namespace('sess:').get('sid1')).toMatchObject({ user: null })
    await set(storeA, 'sid1', { user: 'ada' })
    // b's tier still holds the copy b wrote (the control: a read through the tier is stale)...
    expect(await b.namespace('sess:').get('sid1')).toMatchObject({ user: null })
    // ...and the session store reads around it.
    expect(await get(storeB, 'sid1')).toMatchObject({ user: 'ada' })
  })
})

interface ReaderReport {
  regressions: number
  reads: number
  sawLastAt: number | null
  after: unknown[]
}

/** One writer and three readers, real processes, started together. */
async function streamRound(config: CacheConfig, key: string, n: number): Promise<{ writer: { last: number; at: number }; readers: ReaderReport[] }> {
  const start = (role: string): { child: ChildProcess; ready: Promise<void>; done: Promise<unknown> } => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config), role, key, String(n)], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let readyResolve!: () => void
    const ready = new Promise<void>((r) => (readyResolve = r))
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c
      if (out.startsWith('ready\n')) readyResolve()
    })
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c))
    const done = new Promise<unknown>((resolve, reject) => {
      child.on('exit', (code) => {
        readyResolve()
        const last = out.trim().split('\n').pop() ?? ''
        if (code !== 0 || !last.startsWith('{')) reject(new Error(`${role} exited with ${code}\n${err}\n${out}`))
        else resolve(JSON.parse(last))
      })
    })
    return { child, ready, done }
  }
  const children = [start('writer'), start('reader'), start('reader'), start('reader')]
  await Promise.all(children.map((c) => c.ready))
  for (const c of children) c.child.stdin!.end('go\n')
  const [writer, ...readers] = await Promise.all(children.map((c) => c.done))
  return { writer: writer as { last: number; at: number }, readers: readers as ReaderReport[] }
}

if (haveRedis) {
  describe('l1 over Redis: the fill race', () => {
    /**
     * Two caches on one prefix: A straight to Redis, B with its command connection through a proxy (whose
     * answers `delay(ms)` holds back, `delay(0)` lets through) and its invalidations around it. Runs `body`.
     */
    async function slowedCommands<T>(name: string, body: (a: Cache, b: Cache, delay: (ms: number) => void) => Promise<T>): Promise<T> {
      const proxy = await new HoldingProxy(Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname).start()
      const prefix = uniquePrefix(name)
      try {
        const a = await open(redisBackend.config(prefix))
        const b = await open({ ...redisBackend.config(prefix), url: `redis://127.0.0.1:${proxy.port}` })
        expect(proxy.connections).toBe(2) // b's commands first, then its invalidations
        return await body(a, b, (ms) => proxy.setFor(0, ms === 0 ? { kind: 'pass' } : { kind: 'delay', ms }))
      } finally {
        await proxy.stop()
      }
    }

    /**
     * B's read of `k` is sent while `k` is v1; A then writes v2, and B hears of it before the read's answer
     * (v1) arrives. The read may answer v1 (it was sent before the write), but v1 must not stay in B's memory:
     * B's next read must be v2.
     */
    function race(): Promise<{ during: unknown; next: unknown }> {
      return slowedCommands('l1-race', async (a, b, delay) => {
        await a.set('k', 'v1')
        delay(400)
        const reading = b.get('k')
        await new Promise((r) => setTimeout(r, 100))
        await a.set('k', 'v2')
        const during = await reading
        delay(0)
        return { during, next: await b.get('k') }
      })
    }

    /**
     * For a write: B's set of b1 is applied, then A's set of a2, and B hears of a2 before its own write's
     * answer comes. B must not then hold b1, now older than the backend's.
     */
    function writeRace(): Promise<unknown> {
      return slowedCommands('l1-write-race', async (a, b, delay) => {
        delay(400)
        const writing = b.set('k', 'b1')
        await new Promise((r) => setTimeout(r, 100))
        await a.set('k', 'a2')
        expect(await writing).toBe(true)
        delay(0)
        expect(await a.get('k')).toBe('a2')
        return await b.get('k')
      })
    }

    it("a write whose answer comes after another process's newer write is not held", async () => {
      expect(await writeRace()).toBe('a2')
    })

    it('control: without the guard the write is held, older than the backend', async () => {
      fillGuard.unguarded = true
      try {
        expect(await writeRace()).toBe('b1')
      } finally {
        fillGuard.unguarded = false
      }
    })

    it('a read that races an invalidation never leaves the old value in memory', async () => {
      const { during, next } = await race()
      expect(during).toBe('v1')
      expect(next).toBe('v2')
    })

    it('control: without the fill guard the old value stays', async () => {
      fillGuard.unguarded = true
      try {
        const { during, next } = await race()
        expect(during).toBe('v1')
        expect(next).toBe('v1')
      } finally {
        fillGuard.unguarded = false
      }
    })
  })
}

const haveRedisServer = haveRedis
describe.runIf(haveRedisServer)('l1 over Redis: a lost channel flushes and bypasses the tier, and it comes back', () => {
  let server: RedisServer | undefined
  afterEach(async () => {
    await server?.stop()
    server = undefined
  })

  async function pair(): Promise<{ a: Cache; b: Cache; events: string[] }> {
    const port = await freePort()
    server = await new RedisServer(port).start()
    const config = { type: 'redis', url: server.url, keyPrefix: 'app:', commandTimeout: '2s', connectTimeout: '2s', l1: true } as const
    const a = await open(config)
    const b = await open(config)
    const events: string[] = []
    b.on('l1', (state) => events.push(state))
    return { a, b, events }
  }

  const until = async (check: () => boolean, ms = 15_000): Promise<boolean> => {
    const end = Date.now() + ms
    while (Date.now() < end) {
      if (check()) return true
      await new Promise((r) => setTimeout(r, 20))
    }
    return check()
  }

  /** Write until the backend takes it: after an outage each cache's command connection comes back on its own time. */
  const store = async (c: Cache, key: string, value: unknown): Promise<void> => {
    const end = Date.now() + 15_000
    while (!(await c.set(key, value)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    expect(await c.get(key)).toEqual(value)
  }

  it('a server that refuses CLIENT TRACKING: said once (an l1 event and an error), and the tier stays unused', async () => {
    const port = await freePort()
    server = await new RedisServer(port).start()
    server.cli('ACL', 'SETUSER', 'default', '-client|tracking')
    const errors: string[] = []
    const events: string[] = []
    const c = createCache({ type: 'redis', url: server.url, keyPrefix: 'app:', l1: true })
    opened.push(c)
    c.on('error', (e) => errors.push(e.message))
    c.on('l1', (state) => events.push(state))
    await c.ready()
    await new Promise((r) => setTimeout(r, 500))
    expect(events).toEqual(['bypassed'])
    expect(errors.filter((m) => /memory tier \(l1\) is bypassed/.test(m))).toHaveLength(1)
    await c.set('k', 'v')
    expect(await c.get('k')).toBe('v')
    expect(await c.get('k')).toBe('v')
    expect(c.stats().l1).toMatchObject({ active: false, hits: 0, entries: 0 })
  })

  it('CLIENT KILL of the invalidation connection: bypassed, no stale read, then used again', async () => {
    const { a, b, events } = await pair()
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    expect(await b.get('k')).toBe('v1')
    server!.cli('CLIENT', 'KILL', 'TYPE', 'pubsub')
    expect(await until(() => events.includes('bypassed'))).toBe(true)
    expect(b.stats().l1!.active).toBe(false)
    expect(b.stats().l1!.entries).toBe(0)
    await a.set('k', 'v2')
    expect(await b.get('k')).toBe('v2')
    expect(await until(() => events.includes('restored'))).toBe(true)
    expect(b.stats().l1!.active).toBe(true)
    const hits = b.stats().l1!.hits
    expect(await b.get('k')).toBe('v2')
    expect(await b.get('k')).toBe('v2')
    expect(b.stats().l1!.hits).toBeGreaterThan(hits)
    await a.set('k', 'v3')
    expect(await seenWithin(() => b.get('k'), 'v3', BOUND_MS)).toBeGreaterThanOrEqual(0)
  })

  it('CLIENT KILL of the command connections (which carry the tracking): bypassed, then tracked again', async () => {
    const { a, b, events } = await pair()
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    expect(await b.get('k')).toBe('v1')
    server!.cli('CLIENT', 'KILL', 'TYPE', 'normal')
    expect(await until(() => events.includes('bypassed'))).toBe(true)
    expect(await until(() => events.includes('restored'))).toBe(true)
    // a's connection is back once a write of its own succeeds.
    const end = Date.now() + 15_000
    while (!(await a.set('k', 'v2')) && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    expect(await seenWithin(() => b.get('k'), 'v2', BOUND_MS)).toBeGreaterThanOrEqual(0)
    expect(await b.get('k')).toBe('v2')
    // Held again, and a later change still arrives: tracking is on again for the new connection.
    await a.set('k', 'v3')
    expect(await seenWithin(() => b.get('k'), 'v3', BOUND_MS)).toBeGreaterThanOrEqual(0)
  })

  it('FLUSHALL (pushed as a flush, not as keys) empties every tier', async () => {
    const { a, b } = await pair()
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    expect(await b.get('k')).toBe('v1')
    server!.cli('FLUSHALL')
    expect(await seenWithin(() => b.get('k'), undefined, BOUND_MS)).toBeGreaterThanOrEqual(0)
    expect(await a.get('k')).toBeUndefined()
    expect(b.stats().l1!.flushes).toBeGreaterThan(0)
  })

  it('a frozen server (SIGSTOP): bypassed once the heartbeat goes unanswered; after SIGCONT, no stale read', async () => {
    const { a, b, events } = await pair()
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    server!.process!.kill('SIGSTOP')
    try {
      expect(await until(() => events.includes('bypassed'), 10_000)).toBe(true)
      // While the tier is bypassed, reads go to the (frozen) server and fail open: never the held v1.
      expect(await b.get('k')).toBeUndefined()
    } finally {
      server!.process!.kill('SIGCONT')
    }
    await store(a, 'k', 'v2')
    // b may still be reconnecting (a read fails open: undefined), but it never answers the v1 it held.
    const seen: unknown[] = []
    const end = Date.now() + 15_000
    while (Date.now() < end && seen[seen.length - 1] !== 'v2') {
      seen.push(await b.get('k'))
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(seen).not.toContain('v1')
    expect(seen[seen.length - 1]).toBe('v2')
    expect(await until(() => events.includes('restored'))).toBe(true)
    await a.set('k', 'v3')
    expect(await seenWithin(() => b.get('k'), 'v3', BOUND_MS)).toBeGreaterThanOrEqual(0)
  }, 60_000)

  it('a restarted server (its data gone): nothing held from before is read, and the tier is used again', async () => {
    const { a, b, events } = await pair()
    await a.set('k', 'v1')
    expect(await b.get('k')).toBe('v1')
    expect(await b.get('k')).toBe('v1')
    await server!.kill()
    expect(await until(() => events.includes('bypassed'))).toBe(true)
    await server!.start()
    expect(await until(() => events.includes('restored'))).toBe(true)
    // b's command connection is back too once a write of its own succeeds; then a read is answered by the
    // new server, which holds nothing: v1 from before the restart must not come back from memory.
    const end = Date.now() + 15_000
    while (!(await b.set('probe', 1)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    expect(await b.get('probe')).toBe(1)
    expect(await b.get('k')).toBeUndefined()
    await store(a, 'k', 'v2')
    expect(await seenWithin(() => b.get('k'), 'v2', BOUND_MS)).toBeGreaterThanOrEqual(0)
    const hits = b.stats().l1!.hits
    await b.get('k')
    expect(b.stats().l1!.hits).toBeGreaterThan(hits)
  }, 60_000)
})
