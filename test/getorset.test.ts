import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { memoryAdapter } from '../adapters/memory/index.js'
import type { AdapterCapabilities, CacheAdapter } from '../src/adapter.js'
import type { Cache } from '../src/cache.js'
import type { CacheConfig } from '../src/config/index.js'
import { CacheArgumentError, CacheFactoryError, type CacheError } from '../src/errors.js'
import { ENGINE } from '../src/engine.js'
import { LEASE_SUFFIX, tryLease } from '../src/lease.js'
import { ADAPTERS, type AdapterDefinition } from '../src/registry.js'
import { createCache } from '../src/singleton.js'
import { FakeClock } from '../src/testing/harness.js'
import { runInProcesses } from '../src/testing/processes.js'
import { uniquePrefix, uniqueTableName } from './support/prefix.js'
import { ROOM } from './support/processes.js'
import { guardSharedRedis, pingRedis, REDIS_URL, redisOrSkip } from './support/redis.js'
import { MYSQL_URL, mysqlOrSkip, mysqlQuery, pgQuery, POSTGRES_URL, postgresOrSkip } from './support/sql.js'
import { bookkeeping } from './support/bookkeeping.js'

// The cross-process proofs run on the shared Redis and clear their prefix there.
if (await pingRedis(REDIS_URL)) guardSharedRedis('getorset')

const open: Cache[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

const clock = (start = 1_700_000_000_000): FakeClock => new FakeClock(start)

function track(c: Cache): Cache {
  open.push(c)
  return c
}

function deferred<T = void>() {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms))

/**
 * One memory store seen by several Cache instances that declare it shared: the lease logic between
 * "processes" in one test process, on an injected clock. The real cross-process proof is further down.
 */
function sharedMemory(now: () => number, caps: Partial<AdapterCapabilities> = {}) {
  const store = memoryAdapter({}, { now, threshold: 0, emit: () => {} })
  /** `calls`: every command the caches sent, with its arguments; `delay`: ms before each answers (timers). */
  const state = { down: false, calls: [] as { op: string; args: unknown[] }[], delay: 0 }
  const capabilities = { ...store.capabilities, shared: true, atomic: true, ...caps }
  // Each cache closes its adapter: hand out views whose close is a no-op, over one store.
  const view = (): CacheAdapter =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'capabilities') return capabilities
        if (prop === 'close') return () => {}
        const value = Reflect.get(target, prop, receiver) as unknown
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          state.calls.push({ op: String(prop), args })
          if (state.down) throw new Error('connection refused')
          const answer = (value as (...a: unknown[]) => unknown).apply(target, args)
          return state.delay === 0 ? answer : new Promise((resolve) => setTimeout(resolve, state.delay, answer))
        }
      },
    })
  return { view, state, cache: () => track(createCache({ adapter: view(), now, defaultTtl: '1m' })) }
}

describe('getOrSet options', () => {
  it('keeps getOrSet(key, factory, ttl) working and takes an options object', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    expect(await c.getOrSet('a', () => 1, '10s')).toBe(1)
    expect(await c.getOrSet('b', () => 2, { ttl: 10_000 })).toBe(2)
    t.advance(10_000)
    expect(await c.getOrSet('a', () => 3, '10s')).toBe(3)
    expect(await c.getOrSet('b', () => 4, { ttl: 10_000 })).toBe(4)
  })

  it('refuses unknown options and bad durations, naming them', async () => {
    const c = track(createCache({ type: 'memory' }))
    await expect(c.getOrSet('k', () => 1, { tll: 1 } as never)).rejects.toThrow(/unknown option `tll`\. Did you mean `ttl`\? The options are ttl, grace, timeout, lease, tags\./)
    await expect(c.getOrSet('k', () => 1, { leese: false } as never)).rejects.toThrow(/unknown option `leese`\. Did you mean `lease`\?/)
    await expect(c.getOrSet('k', () => 1, { grace: -1 })).rejects.toThrow(CacheArgumentError)
    await expect(c.getOrSet('k', () => 1, { lease: { ttl: 0 } })).rejects.toThrow(/lease\.ttl/)
    await expect(c.getOrSet('k', () => 1, 'soon')).rejects.toThrow(/"soon"/)
  })

  it('fail-open: with the backend down the factory still runs and its value is returned', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const c = shared.cache()
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    shared.state.down = true
    let runs = 0
    expect(await c.getOrSet('k', () => ++runs)).toBe(1)
    expect(await c.getOrSet('k', () => ++runs)).toBe(2)
    expect(errors.some((e) => e.code === 'CACHE_BACKEND')).toBe(true)
  })
})

describe('one deadline per getOrSet call (see also test/deadline.test.ts, on a real Redis)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('after a backend failure it sends nothing more: one failed command, one error, the factory\'s value unstored', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const c = shared.cache()
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    await c.ready()
    shared.state.down = true
    shared.state.calls.length = 0
    expect(await c.getOrSet('k', () => 'v')).toBe('v')
    expect(await c.getOrSet('g', () => 'w', { grace: '1m' })).toBe('w')
    // Before: get, get, add (the lease), set for the first; getMany, add, set, set for the second.
    expect(shared.state.calls.map((call) => call.op)).toEqual(['get', 'getMany'])
    expect(errors).toHaveLength(2)
    const strict = track(createCache({ adapter: shared.view(), now: t.now, failOpen: false }))
    shared.state.calls.length = 0
    await expect(strict.getOrSet('k', () => 'v')).rejects.toThrow(/connection refused/)
    expect(shared.state.calls.map((call) => call.op)).toEqual(['get'])
  })

  it('operationTimeout: each command gets what is left of it; once it is spent nothing more is sent, and the factory\'s time does not count', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] })
    const t = clock()
    const shared = sharedMemory(t.now)
    const c = track(createCache({ adapter: shared.view(), now: t.now, operationTimeout: 200 }))
    const errors: CacheError[] = []
    c.on('error', (e) => errors.push(e))
    await c.ready()
    // Every command answers after 150 ms: the first read has the whole deadline, the second what is left
    // (50 ms), and then the deadline is spent: no lease, no write.
    shared.state.delay = 150
    shared.state.calls.length = 0
    const slow = c.getOrSet('k', () => 'v')
    await vi.advanceTimersByTimeAsync(1000)
    expect(await slow).toBe('v')
    expect(shared.state.calls.map((call) => [call.op, call.args[1]])).toEqual([
      ['get', undefined],
      ['get', 50],
    ])
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/was not sent: its call has waited 200 ms \(`operationTimeout`\) for the backend in all/)])
    // A factory ten times slower than the deadline: its time is the user's, and its value is stored.
    shared.state.delay = 10
    const factory = c.getOrSet('f', async () => {
      await new Promise((resolve) => setTimeout(resolve, 2000))
      return 'kept'
    })
    await vi.advanceTimersByTimeAsync(3000)
    expect(await factory).toBe('kept')
    expect(shared.state.calls.some((call) => call.op === 'set' && call.args[0] === 'f')).toBe(true)
    expect(errors).toHaveLength(1)
  })
})

describe('getOrSet lease between caches sharing a backend', () => {
  it('one cache runs the factory, the other waits and reads its value', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const [a, b] = [shared.cache(), shared.cache()]
    const gate = deferred()
    const runs: string[] = []
    const first = a.getOrSet('report', async () => {
      runs.push('a')
      await gate.promise
      return { from: 'a' }
    })
    await tick()
    const second = b.getOrSet('report', async () => {
      runs.push('b')
      return { from: 'b' }
    })
    await tick(30)
    expect(runs).toEqual(['a']) // b is waiting on the lease, not running
    gate.resolve()
    expect(await first).toEqual({ from: 'a' })
    expect(await second).toEqual({ from: 'a' })
    expect(runs).toEqual(['a'])
    expect(await bookkeeping(a).has('report' + LEASE_SUFFIX)).toBe(false) // released by its holder
  })

  it('takes over when the lease of a dead holder expires', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const [dead, alive] = [shared.cache(), shared.cache()]
    // A holder that died: its lease stays until its TTL.
    expect(await bookkeeping(dead).add('job' + LEASE_SUFFIX, 'dead-token', 5_000)).toBe(true)
    let runs = 0
    const result = alive.getOrSet('job', () => ++runs, { lease: { ttl: 5_000 } })
    await tick(30)
    expect(runs).toBe(0)
    t.advance(5_000)
    expect(await result).toBe(1)
    expect(runs).toBe(1)
  })

  it('a lease is released only by its holder', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const [a, b] = [shared.cache(), shared.cache()]
    const leaseA = await tryLease(await a[ENGINE](), 'k|lease', 1_000)
    expect(leaseA).not.toBeNull()
    expect(await tryLease(await b[ENGINE](), 'k|lease', 1_000)).toBeNull()
    t.advance(1_000) // a stalled past its lease: b takes over
    const leaseB = await tryLease(await b[ENGINE](), 'k|lease', 1_000)
    expect(leaseB).not.toBeNull()
    await leaseA?.release()
    expect(await b.get('k|lease')).toBe(leaseB?.token)
    await leaseB?.release()
    expect(await b.has('k|lease')).toBe(false)
  })

  it('uses the adapter’s atomic deleteIfEquals when it has one', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const base = shared.view()
    const calls: string[] = []
    const adapter: CacheAdapter = Object.assign(Object.create(base) as CacheAdapter, {
      capabilities: base.capabilities,
      deleteIfEquals(key: string, value: string | Uint8Array) {
        calls.push(key)
        if (base.get(key) !== value) return false
        return base.delete(key)
      },
    })
    const c = track(createCache({ adapter, now: t.now, keyPrefix: 'app:' }))
    expect(await c.getOrSet('x', () => 'v')).toBe('v')
    expect(calls).toEqual(['app:x' + LEASE_SUFFIX])
    expect(await bookkeeping(c).has('x' + LEASE_SUFFIX)).toBe(false)
  })

  it('a factory error releases the lease and reaches the caller; nothing is stored', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const c = shared.cache()
    await expect(c.getOrSet('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await bookkeeping(c).has('k' + LEASE_SUFFIX)).toBe(false)
    expect(await c.has('k')).toBe(false)
    expect(await c.getOrSet('k', () => 'ok')).toBe('ok')
  })

  it('no lease on a backend that is not shared, or with lease: false', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    await bookkeeping(c).add('k' + LEASE_SUFFIX, 'someone', 0)
    expect(await c.getOrSet('k', () => 1)).toBe(1) // a memory cache is one process: the lease is not consulted
    const shared = sharedMemory(t.now)
    const s = shared.cache()
    await bookkeeping(s).add('k' + LEASE_SUFFIX, 'someone', 0)
    expect(await s.getOrSet('k', () => 2, { lease: false })).toBe(2)
  })
})

describe('grace (stale-while-revalidate) and timeout', () => {
  it('serves the stale value during grace while one background refresh runs', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    let version = 1
    const gate = deferred()
    let runs = 0
    const factory = async () => {
      runs++
      if (runs > 1) await gate.promise
      return version
    }
    const opts = { ttl: '10s', grace: '1m' }
    expect(await c.getOrSet('feed', factory, opts)).toBe(1)
    expect(await c.get('feed')).toBe(1) // stored at its own key: plain get reads it
    version = 2
    t.advance(10_000)
    const stale = await Promise.all(Array.from({ length: 5 }, () => c.getOrSet('feed', factory, opts)))
    expect(stale).toEqual([1, 1, 1, 1, 1])
    expect(runs).toBe(2) // one refresh for five stale reads
    gate.resolve()
    await tick()
    expect(await c.getOrSet('feed', factory, opts)).toBe(2)
    expect(runs).toBe(2)
  })

  it('after the grace period the entry is a miss', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    let runs = 0
    const opts = { ttl: '10s', grace: '20s' }
    await c.getOrSet('k', () => ++runs, opts)
    t.advance(30_000)
    expect(await c.getOrSet('k', () => ++runs, opts)).toBe(2)
  })

  it('a failing refresh keeps the stale value and emits a CacheFactoryError', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    const errors: [CacheError, string | undefined][] = []
    c.on('error', (e, info) => errors.push([e, info.op]))
    const opts = { ttl: '10s', grace: '1m' }
    await c.getOrSet('k', () => 'good', opts)
    t.advance(10_000)
    const failing = () => Promise.reject(new Error('upstream down'))
    expect(await c.getOrSet('k', failing, opts)).toBe('good')
    await tick()
    expect(errors).toHaveLength(1)
    expect(errors[0]?.[0]).toBeInstanceOf(CacheFactoryError)
    expect(errors[0]?.[0].message).toMatch(/upstream down/)
    expect(errors[0]?.[0].key).toBe('k')
    expect(await c.getOrSet('k', failing, opts)).toBe('good')
  })

  it('timeout: waits that long for the refresh, then returns the stale value', async () => {
    const t = clock()
    const c = track(createCache({ type: 'memory', now: t.now }))
    await c.getOrSet('k', () => 'old', { ttl: '10s', grace: '1m' })
    t.advance(10_000)
    const slow = deferred<string>()
    expect(await c.getOrSet('k', () => slow.promise, { ttl: '10s', grace: '1m', timeout: 20 })).toBe('old')
    slow.resolve('new')
    await tick()
    expect(await c.getOrSet('k', () => 'unused', { ttl: '10s', grace: '1m' })).toBe('new')
    t.advance(10_000)
    // A refresh faster than the timeout answers with the fresh value.
    expect(await c.getOrSet('k', async () => 'newer', { ttl: '10s', grace: '1m', timeout: 5_000 })).toBe('newer')
  })

  it('only one cache refreshes a stale entry on a shared backend', async () => {
    const t = clock()
    const shared = sharedMemory(t.now)
    const [a, b] = [shared.cache(), shared.cache()]
    const opts = { ttl: '10s', grace: '1m' }
    await a.getOrSet('k', () => 0, opts)
    t.advance(10_000)
    const gate = deferred()
    let runs = 0
    const factory = async () => {
      runs++
      await gate.promise
      return runs
    }
    expect(await a.getOrSet('k', factory, opts)).toBe(0)
    await tick()
    expect(await b.getOrSet('k', factory, opts)).toBe(0)
    await tick(20)
    gate.resolve()
    await tick()
    expect(runs).toBe(1)
    expect(await b.getOrSet('k', factory, opts)).toBe(1)
  })
})

// ---- the cross-process proof, on every shared backend registered --------------------------------

const dirs: string[] = []
const drops: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  for (const drop of drops) await drop().catch(() => {})
})

/** A config for a fresh store of the backend, from its URL scheme, else its defaults. */
function configFor(def: AdapterDefinition): CacheConfig & object {
  const schemes = def.schemes ?? []
  const prefix = uniquePrefix('getorset')
  if (schemes.includes('redis')) return { url: REDIS_URL, keyPrefix: prefix, ...ROOM }
  // The SQL servers: a table of the proof's own (an eviction or purge there is table-wide), dropped after.
  if (schemes.includes('postgres') || schemes.includes('mysql')) {
    const table = uniqueTableName('gos')
    const postgres = schemes.includes('postgres')
    drops.push(() => (postgres ? pgQuery(`DROP TABLE IF EXISTS ${table}`) : mysqlQuery(`DROP TABLE IF EXISTS ${table}`)))
    return { url: postgres ? POSTGRES_URL : MYSQL_URL, table, keyPrefix: prefix, ...ROOM }
  }
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-gos-'))
  dirs.push(dir)
  if (schemes.includes('sqlite')) return { url: `sqlite:${join(dir, 'cache.sqlite')}`, keyPrefix: prefix }
  if (schemes.includes('file')) return { url: `file:${dir}`, keyPrefix: prefix }
  // Any other backend: its defaults, if it has usable ones; the probe says why it is skipped otherwise.
  return { type: def.type, keyPrefix: prefix }
}

/** Load the backend; say why it is skipped (not shared, not atomic, unreachable, unknown config). */
async function probe(def: AdapterDefinition, config: CacheConfig & object): Promise<string | undefined> {
  const isRedis = def.schemes?.includes('redis') === true
  if (isRedis && !(await redisOrSkip('the cross-process getOrSet proof on Redis (npx vitest run test/getorset.test.ts)'))) return 'no Redis outside CI'
  if (def.schemes?.includes('postgres') === true && !(await postgresOrSkip('the cross-process getOrSet proof on PostgreSQL (npx vitest run test/getorset.test.ts)'))) return 'no PostgreSQL outside CI'
  if (def.schemes?.includes('mysql') === true && !(await mysqlOrSkip('the cross-process getOrSet proof on MySQL (npx vitest run test/getorset.test.ts)'))) return 'no MySQL outside CI'
  let c: Cache | undefined
  try {
    c = createCache(config)
    await c.ready()
    const caps = (await c[ENGINE]()).adapter?.capabilities
    if (caps === undefined || !caps.shared || !caps.atomic) throw new Error(`${def.type} is listed as shared and atomic but its adapter says otherwise`)
    return undefined
  } catch (error) {
    if (!isRedis && config.type === def.type && !('url' in config)) return `no usable default config: ${(error as Error).message}`
    throw error
  } finally {
    await c?.close()
  }
}

/** Remove what a proof wrote (scoped to its own key prefix: nothing else in a shared Redis). */
async function cleanUp(config: CacheConfig): Promise<void> {
  const c = createCache(config)
  try {
    await c.clear()
  } finally {
    await c?.close()
  }
}

/** The backends that are shared and atomic across processes; the probe re-checks their capabilities. */
const SHARED_ATOMIC = ['sqlite', 'filesystem', 'redis', 'postgres', 'mysql']

describe.each(ADAPTERS.filter((def) => SHARED_ATOMIC.includes(def.type)).map((def) => [def.type, def] as const))('8 processes on %s', (_type, def) => {
  it('getOrSet with a slow factory: the factory runs exactly once, everyone gets its value', async (ctx) => {
    const config = configFor(def)
    const skip = await probe(def, config)
    if (skip !== undefined) return ctx.skip(skip)
    const results = (await runInProcesses<{ ran: boolean; value: { by: number } }>(config as CacheConfig, { kind: 'getOrSet', key: 'stampede', delayMs: 400 }, 8)).flat()
    await cleanUp(config as CacheConfig)
    expect(results).toHaveLength(8)
    const runners = results.filter((r) => r.ran)
    expect(runners).toHaveLength(1)
    expect(new Set(results.map((r) => r.value.by))).toEqual(new Set([runners[0]?.value.by]))
  }, 120_000)

  it('a lease left by a dead holder: the processes wait for it to expire, then exactly one takes over', async (ctx) => {
    const config = configFor(def)
    const skip = await probe(def, config)
    if (skip !== undefined) return ctx.skip(skip)
    const holder = createCache(config as CacheConfig)
    let leaseWasHeld = false
    // Once every child is ready: a holder that took the lease and died. Nobody releases it; it expires after its TTL.
    const beforeGo = async () => {
      leaseWasHeld = await bookkeeping(holder).add('stampede' + LEASE_SUFFIX, 'dead-holder', 1_500)
    }
    const results = (await runInProcesses<{ ran: boolean; value: { by: number } }>(config as CacheConfig, { kind: 'getOrSet', key: 'stampede', delayMs: 200 }, 8, { beforeGo })).flat()
    await holder.close()
    await cleanUp(config as CacheConfig)
    expect(leaseWasHeld).toBe(true)
    expect(results.filter((r) => r.ran)).toHaveLength(1)
    expect(new Set(results.map((r) => r.value.by)).size).toBe(1)
  }, 120_000)

  it('control: with lease: false the same race runs the factory more than once (the proof above can fail)', async (ctx) => {
    const config = configFor(def)
    const skip = await probe(def, config)
    if (skip !== undefined) return ctx.skip(skip)
    const results = (await runInProcesses<{ ran: boolean }>(config as CacheConfig, { kind: 'getOrSet', key: 'stampede', delayMs: 400, lease: false }, 8)).flat()
    await cleanUp(config as CacheConfig)
    expect(results.filter((r) => r.ran).length).toBeGreaterThan(1)
  }, 120_000)

  it('memoize with a slow function: it runs exactly once across the processes', async (ctx) => {
    const config = configFor(def)
    const skip = await probe(def, config)
    if (skip !== undefined) return ctx.skip(skip)
    const results = (await runInProcesses<{ ran: boolean; value: { by: number; arg: unknown } }>(config as CacheConfig, { kind: 'memoize', name: 'slowReport', arg: { q: 1 }, delayMs: 400 }, 8)).flat()
    await cleanUp(config as CacheConfig)
    expect(results.filter((r) => r.ran)).toHaveLength(1)
    expect(new Set(results.map((r) => r.value.by)).size).toBe(1)
    expect(results[0]?.value.arg).toEqual({ q: 1 })
  }, 120_000)
})
