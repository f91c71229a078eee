/**
 * One deadline per public call: a getOrSet, a memoized call or a plain get sends several commands or one,
 * and all of them together wait no longer than about one deadline (`operationTimeout`, else the backend's
 * `commandTimeout`), the factory's own time not counted. Proved on a redis-server of the test's own,
 * frozen with SIGSTOP (its socket stays open, so commands are written and never answered) and resumed
 * with SIGCONT; never the shared server.
 */
import { randomBytes } from 'node:crypto'
import KeyvRedis from '@keyv/redis'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Deadlines } from '../adapters/redis/deadlines.js'
import { redisAdapter } from '../adapters/redis/index.js'
import type { MemjsModule } from '../adapters/memcached/driver.js'
import { memcachedAdapter } from '../adapters/memcached/index.js'
import type { CacheAdapter } from '../src/adapter.js'
import type { Cache } from '../src/cache.js'
import { resolveConfig } from '../src/config/index.js'
import { CacheBackendError, CacheConfigError, type CacheError } from '../src/errors.js'
import { LEASE_SUFFIX } from '../src/lease.js'
import { createCache } from '../src/singleton.js'
import { freePort, RedisServer, redisServerOrSkip } from './support/redis.js'
import { memcachedOrSkip, MemcachedServer } from './support/memcached.js'
import { HoldingProxy } from './support/proxy.js'
import { bookkeeping } from './support/bookkeeping.js'
import { timed } from './support/timed.js'

/** The deadline of most tests (the cache's `commandTimeout`, as in the issue). */
const D = 1000
/**
 * What a call may take beyond its one deadline on a loaded machine: `D + SLACK` is the bound. A call that
 * gave each of its commands a deadline of its own took 3.4 to 4.5 deadlines, well past it; a bound of
 * `2 * D` left a loaded machine one second, and the grace test failed once at a load of 20 (its output was
 * not kept); 1.5 s is still far below a sum of deadlines.
 */
const SLACK = 1500

const canRun = await redisServerOrSkip('the deadline tests', 'test/deadline.test.ts')

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('operationTimeout is validated like the other durations', () => {
  it('takes a duration; refuses 0, negatives and text that is not one, naming the option', () => {
    expect(resolveConfig({ type: 'memory', operationTimeout: '250ms' }).operationTimeout).toBe(250)
    expect(resolveConfig({ type: 'memory', operationTimeout: 2000 }).operationTimeout).toBe(2000)
    expect(resolveConfig({ type: 'memory' }).operationTimeout).toBeUndefined()
    for (const bad of [0, -1, 'soon', '5 parsecs', Number.NaN]) {
      let error: unknown
      try {
        resolveConfig({ type: 'memory', operationTimeout: bad })
      } catch (e) {
        error = e
      }
      expect(error, String(bad)).toBeInstanceOf(CacheConfigError)
      expect((error as CacheConfigError).option).toBe('operationTimeout')
      expect((error as Error).message).toContain('operationTimeout')
    }
    expect(() => resolveConfig({ type: 'memory', operationTimeout: true } as never)).toThrow(/`operationTimeout` must be a duration/)
    expect(() => resolveConfig({ type: 'memory', operationTimout: 5 } as never)).toThrow(/Did you mean `operationTimeout`/)
  })

  it('two configs that differ only in operationTimeout are different configs', () => {
    const c = createCache({ type: 'memory', operationTimeout: 100 })
    expect(() => c.init({ type: 'memory', operationTimeout: 200 })).toThrow(/operationTimeout/)
    return c.close()
  })
})

describe('redis command timeouts: a command may have less than the whole timeout', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is rejected after what it was given (never before, at most two sweep periods later); the whole-timeout path is unchanged', () => {
    vi.useFakeTimers()
    const deadlines = new Deadlines(800, (short) => new Error(short ? 'what was left' : 'whole'))
    const rejected: string[] = []
    const send = (name: string, ms?: number) => {
      const generation = deadlines.current(ms)
      return { generation, slot: generation.add((e) => rejected.push(`${name}: ${e.message}`)) }
    }
    send('whole')
    send('short', 250) // periods of 100 ms: rounded up to 3, plus the current one
    send('longer than the whole', 5000)
    const settled = send('short, answered', 250)
    settled.generation.settle(settled.slot)
    vi.advanceTimersByTime(249)
    expect(rejected).toEqual([])
    vi.advanceTimersByTime(450 - 249)
    expect(rejected).toEqual(['short: what was left'])
    vi.advanceTimersByTime(799 - 450)
    expect(rejected).toHaveLength(1)
    vi.advanceTimersByTime(1000 - 799)
    expect(rejected).toEqual(['short: what was left', 'whole: whole', 'longer than the whole: whole'])
    expect(deadlines.size).toBe(0)
    vi.advanceTimersByTime(1000)
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe.runIf(canRun)('one deadline per call, on a Redis that stops answering (SIGSTOP)', () => {
  let server: RedisServer
  const caches: Cache[] = []
  let errors: CacheError[] = []
  const open = (config: Record<string, unknown> = {}): Cache => {
    const c = createCache({ type: 'redis', url: server.url, keyPrefix: `dl:${randomBytes(4).toString('hex')}:`, connectTimeout: 2000, commandTimeout: D, ...config })
    c.on('error', (e) => errors.push(e))
    caches.push(c)
    return c
  }
  const freeze = () => server.process?.kill('SIGSTOP')
  const resume = () => server.process?.kill('SIGCONT')

  beforeAll(async () => {
    server = await new RedisServer(await freePort()).start()
  })
  afterEach(async () => {
    resume()
    for (const c of caches.splice(0)) await c.close()
    errors = []
  })
  afterAll(async () => {
    resume()
    await server?.stop()
  })

  it('getOrSet on a miss: the factory runs and its value is returned within one deadline; nothing is stored, no lease is left', async () => {
    const cache = open()
    await cache.ready()
    freeze()
    const call = await timed(() => cache.getOrSet('report', () => 'built'))
    resume()
    expect(call.error).toBeUndefined()
    expect(call.value).toBe('built')
    expect(call.ms).toBeLessThan(D + SLACK)
    expect(errors.some((e) => e instanceof CacheBackendError)).toBe(true)
    // No command was sent after the first one failed: no value and no lease land once Redis answers again.
    expect(await cache.get('report')).toBeUndefined()
    expect(await bookkeeping(cache).has('report' + LEASE_SUFFIX)).toBe(false)
  })

  it('a memoized call: fn runs and its result is returned within one deadline', async () => {
    const cache = open()
    await cache.ready()
    let runs = 0
    const double = cache.memoize(async function double(n: number) {
      runs++
      return n * 2
    })
    expect(await double(1)).toBe(2)
    freeze()
    const call = await timed(() => double(21))
    resume()
    expect(call.error).toBeUndefined()
    expect(call.value).toBe(42)
    expect(runs).toBe(2)
    expect(call.ms).toBeLessThan(D + SLACK)
  })

  it('getOrSet with grace, on a miss and on a stale value: within one deadline', async () => {
    const cache = open()
    await cache.ready()
    freeze()
    const miss = await timed(() => cache.getOrSet('feed', () => 'fresh', { ttl: '1m', grace: '1m' }))
    resume()
    expect(miss.value).toBe('fresh')
    expect(miss.ms).toBeLessThan(D + SLACK)
    // A stale value (marker gone): served, and the refresh in the background gives up within the deadline too.
    expect(await cache.getOrSet('feed2', () => 'old', { ttl: '1m', grace: '1m' })).toBe('old')
    await bookkeeping(cache).delete('feed2|ck:fresh')
    freeze()
    const stale = await timed(() => cache.getOrSet('feed2', () => 'new', { ttl: '1m', grace: '1m', timeout: '5s' }))
    resume()
    expect(stale.ms).toBeLessThan(D + SLACK)
  })

  it('plain get, set, getMany and inc: each returns (or throws) within one deadline', async () => {
    const cache = open()
    await cache.ready()
    await cache.set('k', 'v')
    freeze()
    const get = await timed(() => cache.get('k'))
    const set = await timed(() => cache.set('k', 'w'))
    const many = await timed(() => cache.getMany(['k', 'j']))
    const inc = await timed(() => cache.inc('n'))
    resume()
    expect(get.value).toBeUndefined()
    expect(set.value).toBe(false)
    expect(many.value).toEqual([undefined, undefined])
    expect(inc.error).toBeInstanceOf(CacheBackendError)
    for (const r of [get, set, many, inc]) expect(r.ms).toBeLessThan(D + SLACK)
  })

  it('operationTimeout below commandTimeout bounds a single command too', async () => {
    const cache = open({ commandTimeout: 10 * D, operationTimeout: D })
    await cache.ready()
    freeze()
    const get = await timed(() => cache.get('k'))
    const call = await timed(() => cache.getOrSet('k', () => 1))
    const inc = await timed(() => cache.inc('n'))
    resume()
    expect(get.ms).toBeLessThan(D + SLACK)
    expect(call.value).toBe(1)
    expect(call.ms).toBeLessThan(D + SLACK)
    expect(inc.error).toBeInstanceOf(CacheBackendError)
    expect((inc.error as Error).message).toContain('operationTimeout')
    expect(inc.ms).toBeLessThan(D + SLACK)
  })

  it('failOpen: false: getOrSet throws a CacheBackendError within one deadline, and the factory does not run', async () => {
    const cache = open({ failOpen: false })
    await cache.ready()
    let runs = 0
    freeze()
    const call = await timed(() => cache.getOrSet('k', () => ++runs))
    resume()
    expect(call.error).toBeInstanceOf(CacheBackendError)
    expect(runs).toBe(0)
    expect(call.ms).toBeLessThan(D + SLACK)
  })

  it('a caller waiting on another process\'s lease stops waiting when Redis stops answering', async () => {
    const cache = open()
    await cache.ready()
    // Another process holds the lease and computes; this caller polls for its value.
    await bookkeeping(cache).add('slow' + LEASE_SUFFIX, 'another-process', 30_000)
    let runs = 0
    const call = timed(() => cache.getOrSet('slow', () => ++runs, { lease: { wait: '5s' } }))
    await sleep(100)
    freeze()
    const result = await call
    resume()
    expect(result.value).toBe(1) // fail-open: it ran the factory itself
    expect(result.ms).toBeLessThan(100 + D + SLACK)
  })

  it('the factory\'s own time is not the backend\'s: a factory slower than the deadline still stores its value', async () => {
    const cache = open()
    await cache.ready()
    const value = await cache.getOrSet('slow-factory', async () => {
      await sleep(2 * D)
      return 'kept'
    })
    expect(value).toBe('kept')
    expect(await cache.get('slow-factory')).toBe('kept')
    const m = cache.memoize(async function slowly(n: number) {
      await sleep(2 * D)
      return n
    })
    expect(await m(7)).toBe(7)
    expect(await cache.get(m.makeCacheKey(7))).toMatchObject({ r: 7 })
    expect(errors).toEqual([])
  })

  it('the redis adapter fails a command given less than commandTimeout after that time', async () => {
    const adapter = redisAdapter({ url: server.url, commandTimeout: 4000, connectTimeout: 2000 }, { now: Date.now, threshold: 0, emit: () => {} })
    try {
      await adapter.ready?.()
      freeze()
      const get = await timed(async () => adapter.get('k', 200))
      resume()
      expect((get.error as Error).message).toMatch(/did not answer within what was left of its call's deadline/)
      // 200 ms rounded up to the sweep of 500 ms periods: at most 1000 ms, never the whole 4000.
      expect(get.ms).toBeGreaterThanOrEqual(195)
      expect(get.ms).toBeLessThan(2000)
    } finally {
      resume()
      await adapter.close()
    }
  })

  it('what is left of the deadline is passed down: a command sent late in a call times out sooner', async () => {
    // Redis answers the first read only after half the deadline (frozen, then resumed), then freezes in the
    // factory: the write gets what is left (about half), not a whole commandTimeout of its own.
    const d = 2000
    const cache = open({ commandTimeout: d })
    await cache.ready()
    freeze()
    const resumed = sleep(d / 2).then(resume)
    let factoryEnd = 0
    const call = timed(() =>
      cache.getOrSet('late', () => {
        freeze()
        factoryEnd = performance.now()
        return 'v'
      }),
    )
    await resumed
    const result = await call
    const afterFactory = performance.now() - factoryEnd
    resume()
    expect(result.value).toBe('v')
    expect(errors.some((e) => /^set /.test(e.message))).toBe(true) // the write was sent, and timed out
    // What was left is about d/2 (less if the resume came late), plus the sweep's granularity (d/8 per step).
    // A whole commandTimeout would be >= d.
    expect(afterFactory).toBeLessThan(0.9 * d)
  })

  it('the keyv bridge too (@keyv/redis on the frozen server): getOrSet and a memoized call within one deadline', async () => {
    const cache = open({ type: 'keyv', url: undefined, store: new KeyvRedis(server.url) })
    await cache.ready()
    const m = cache.memoize(async function triple(n: number) {
      return n * 3
    })
    expect(await m(1)).toBe(3)
    freeze()
    const call = await timed(() => cache.getOrSet('k', () => 'v'))
    const memo = await timed(() => m(2))
    resume()
    expect(call.value).toBe('v')
    expect(memo.value).toBe(6)
    expect(call.ms).toBeLessThan(D + SLACK)
    expect(memo.ms).toBeLessThan(D + SLACK)
  })
})

/**
 * memcached: a memcached of the test's own, frozen with SIGSTOP (commands written, never answered), or
 * slowed by a TCP proxy of the test's own that passes each answer on 0.8 D late (support/proxy.ts).
 */
const canRunMemcached = await memcachedOrSkip('the memcached deadline tests')

describe.runIf(canRunMemcached)('one deadline per call on memcached (SIGSTOP, or a proxy that slows its answers)', () => {
  let server: MemcachedServer
  let proxy: HoldingProxy
  const caches: Cache[] = []
  const adapters: CacheAdapter[] = []
  let errors: CacheError[] = []
  const open = (config: Record<string, unknown> = {}, through = false): Cache => {
    const address = through ? `127.0.0.1:${proxy.port}` : server.address
    const c = createCache({ type: 'memcached', servers: [address], keyPrefix: `dl:${randomBytes(4).toString('hex')}:`, connectTimeout: 2000, commandTimeout: D, ...config })
    c.on('error', (e) => errors.push(e))
    caches.push(c)
    return c
  }
  const adapter = async (options: Record<string, unknown>, operationTimeout?: number): Promise<CacheAdapter> => {
    const imported = (await import('memjs' as string)) as { default?: MemjsModule } & MemjsModule
    const context = { now: Date.now, threshold: 0, emit: () => {}, ...(operationTimeout === undefined ? {} : { operationTimeout }) }
    const a = memcachedAdapter({ servers: [server.address], ...options }, context, imported.default ?? imported)
    adapters.push(a)
    return a
  }

  beforeAll(async () => {
    server = await MemcachedServer.start()
    proxy = await new HoldingProxy(server.port).start()
  })
  afterEach(async () => {
    await server.pause(false)
    proxy.set({ kind: 'pass' })
    for (const c of caches.splice(0)) await c.close()
    for (const a of adapters.splice(0)) await a.close()
    errors = []
  })
  afterAll(async () => {
    await server?.pause(false)
    await proxy?.stop()
    await server?.stop()
  })

  it('the adapter says its commandTimeout, and operationTimeout when that is shorter', async () => {
    expect((await adapter({ commandTimeout: 1234 })).commandTimeout).toBe(1234)
    expect((await adapter({ commandTimeout: 5000 }, 700)).commandTimeout).toBe(700)
  })

  it('a slow server (each answer 0.8 D late): getOrSet on a miss and a memoized call return within one deadline, not a sum', async () => {
    const cache = open({}, true)
    await cache.ready()
    const double = cache.memoize(async function double(n: number) {
      return n * 2
    })
    expect(await double(1)).toBe(2)
    proxy.set({ kind: 'delay', ms: 0.8 * D })
    const call = await timed(() => cache.getOrSet('report', () => 'built'))
    const memo = await timed(() => double(21))
    proxy.set({ kind: 'pass' })
    expect(call.value).toBe('built')
    expect(memo.value).toBe(42)
    expect(call.ms).toBeLessThan(D + SLACK)
    expect(memo.ms).toBeLessThan(D + SLACK)
    // A later command was given what was left; on a loaded machine the first may spend the whole deadline
    // alone (then its own timeout is named). Either way the bound above is the claim.
    expect(errors.some((e) => /left of its call's deadline|within \d+ ms/.test(`${e.message} ${(e.cause as Error | undefined)?.message}`))).toBe(true)
  })

  it('control: on that slow server, the commands of a getOrSet miss each with a whole commandTimeout would take past the bound', async () => {
    // A commandTimeout of 3 D, so that no command of the four times out on a loaded machine (one that did
    // marked the node unreachable, and the rest failed at once, under the bound).
    const cache = open({ commandTimeout: 3 * D }, true)
    await cache.ready()
    proxy.set({ kind: 'delay', ms: 0.8 * D })
    // Their answers are not the point (under load one may miss its own timeout): the time of the four is.
    const sum = await timed(async () => {
      await cache.get('k')
      await cache.add('k~lease', 'me').catch(() => false)
      await cache.set('k', 'v')
      await cache.delete('k~lease')
    })
    proxy.set({ kind: 'pass' })
    expect(sum.error).toBeUndefined()
    expect(sum.ms).toBeGreaterThan(D + SLACK)
  })

  it('frozen (SIGSTOP): getOrSet returns, and with failOpen false throws, within one deadline', async () => {
    const cache = open()
    const strict = open({ failOpen: false })
    await cache.ready()
    await strict.ready()
    await server.pause(true)
    const call = await timed(() => cache.getOrSet('k', () => 'v'))
    let runs = 0
    const thrown = await timed(() => strict.getOrSet('k', () => ++runs))
    await server.pause(false)
    expect(call.value).toBe('v')
    expect(call.ms).toBeLessThan(D + SLACK)
    expect(thrown.error).toBeInstanceOf(CacheBackendError)
    expect(runs).toBe(0)
    expect(thrown.ms).toBeLessThan(D + SLACK)
  })

  it('operationTimeout below commandTimeout bounds a single command too, and the message names it', async () => {
    const cache = open({ commandTimeout: 10 * D, operationTimeout: D })
    await cache.ready()
    await server.pause(true)
    const get = await timed(() => cache.get('k'))
    const inc = await timed(() => cache.inc('n'))
    await server.pause(false)
    expect(get.ms).toBeLessThan(D + SLACK)
    expect(inc.error).toBeInstanceOf(CacheBackendError)
    expect((inc.error as Error).message).toContain('operationTimeout')
    expect(inc.ms).toBeLessThan(D + SLACK)
  })

  it('a command given less than commandTimeout fails after that time, naming what was left of the deadline', async () => {
    const a = await adapter({ commandTimeout: 5 * D })
    await a.ready!()
    await server.pause(true)
    const get = await timed(() => Promise.resolve(a.get('k', 300)))
    const add = await timed(() => Promise.resolve(a.add('k', 'v', null, 300)))
    await server.pause(false)
    for (const r of [get, add]) {
      expect((r.error as Error).message).toMatch(/within the 300 ms left of its call's deadline/)
      expect(r.ms).toBeGreaterThanOrEqual(290)
      expect(r.ms).toBeLessThan(800)
    }
  })
})
