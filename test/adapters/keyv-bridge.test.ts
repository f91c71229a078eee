/** What the keyv bridge promises beyond the conformance suite, against real stores. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import KeyvRedis from '@keyv/redis'
import { createClient } from '@redis/client'
import Keyv from 'keyv'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { CacheBackendError, CacheConfigError, createCache, type Cache } from '../../src/index.js'
import { KEYV_DEFAULTS, KEYV_PURGE_INTERVAL_MS } from '../../adapters/keyv/index.js'
import { FakeClock } from '../../src/testing/index.js'
import { benchPeer, type KeyvSqliteClass } from '../support/bench-peers.js'
import { uniquePrefix } from '../support/prefix.js'
import { freePort, guardSharedRedis, RedisServer, REDIS_URL, redisOrSkip, redisServerOrSkip } from '../support/redis.js'
import { inspectSqlite } from '../support/sqlite.js'

// @keyv/sqlite comes with the benchmark's packages (its sqlite3 is compiled); without them these tests skip loudly.
const KeyvSqlite = (await benchPeer<KeyvSqliteClass>('@keyv/sqlite', 'the keyv bridge tests over @keyv/sqlite')) as KeyvSqliteClass
const itSqlite = KeyvSqlite === undefined ? it.skip : it

const dir = mkdtempSync(join(tmpdir(), 'cachekit-keyv-bridge-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const sqliteUri = (): string => `sqlite://${join(dir, `s${files++}.sqlite`)}`
const rowKeys = (uri: string): string[] => {
  const db = inspectSqlite(uri.replace('sqlite://', ''))
  try {
    return db.rows('SELECT key FROM keyv ORDER BY key').map((r) => r.key as string)
  } finally {
    db.close()
  }
}

const opened: Cache[] = []
const open = async (config: Parameters<typeof createCache>[0]): Promise<Cache> => {
  const c = createCache(config)
  opened.push(c)
  await c.ready()
  return c
}
afterEach(async () => {
  vi.useRealTimers()
  for (const c of opened.splice(0)) if (c.initialized) await c.close()
})

describe('keyv bridge: keys', () => {
  itSqlite('stores the cache keys as they are through a Keyv instance (namespace "keyv" is switched off)', async () => {
    const uri = sqliteUri()
    const keyv = new Keyv(new KeyvSqlite(uri))
    expect(keyv.namespace).toBe('keyv')
    const c = await open({ type: 'keyv', store: keyv, keyPrefix: 'app:' })
    await c.set('user:1', 'ann')
    expect(rowKeys(uri)).toEqual(['app:user:1'])
  })

  it('keeps keys with U+0000 (which PostgreSQL text refuses) distinct and listable', async () => {
    const c = await open({ type: 'keyv', store: new Map(), keyPrefix: 'p:' })
    const keys = ['a\u0000b', 'a\u0001b', 'a\u00010', 'a0']
    await c.setMany(keys.map((k, i) => [k, i] as const))
    expect(await c.getMany(keys)).toEqual([0, 1, 2, 3])
    const listed: string[] = []
    for await (const k of c.keys()) listed.push(k)
    expect(listed.sort()).toEqual([...keys].sort())
  })
})

describe('keyv bridge: one store per cache', () => {
  it('refuses a store (or a Keyv around it) already used by another open cache, and takes it back after close', async () => {
    const map = new Map()
    const a = await open({ type: 'keyv', store: map })
    const b = createCache({ type: 'keyv', store: map, keyPrefix: 'b:' })
    opened.push(b)
    const error = await b.ready().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as CacheConfigError).option).toBe('store')
    expect((error as Error).message).toMatch(/already used by another open cache.*One store serves one cache/)
    const viaKeyv = createCache({ type: 'keyv', store: new Keyv(map) })
    opened.push(viaKeyv)
    await expect(viaKeyv.ready()).rejects.toBeInstanceOf(CacheConfigError)
    await a.close()
    const c = await open({ type: 'keyv', store: map })
    expect(await c.set('k', 1)).toBe(true)
  })

  it('refuses `shared: true` with a Map, and a store that is not one', async () => {
    const shared = createCache({ type: 'keyv', store: new Map(), shared: true })
    opened.push(shared)
    await expect(shared.ready()).rejects.toThrow(/`shared: true` does not fit a Map/)
    const bogus = createCache({ type: 'keyv', store: { nope: 1 } as never })
    opened.push(bogus)
    await expect(bogus.ready()).rejects.toThrow(/Option `store` must be a Keyv storage adapter/)
    expect(() => createCache({ type: 'keyv', store: 'sqlite://x.db' as never })).toThrow(CacheConfigError)
  })

  it('names a store module that cannot be imported', async () => {
    const c = createCache({ type: 'keyv', store: { module: '@keyv/not-installed-anywhere' } })
    opened.push(c)
    const error = await c.ready().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as Error).message).toMatch(/Cannot import `@keyv\/not-installed-anywhere`.*npm install @keyv\/not-installed-anywhere/)
  })
})

describe('keyv bridge: expiry on a store that ignores the TTL (@keyv/sqlite)', () => {
  itSqlite('never returns an expired entry although the row is still there, and purgeExpired removes the row', async () => {
    const uri = sqliteUri()
    const clock = new FakeClock()
    const c = await open({ type: 'keyv', store: new KeyvSqlite(uri), now: clock.now })
    await c.set('k', 'v', 1_000)
    await c.set('forever', 'f', 0)
    clock.advance(1_000)
    expect(await c.get('k')).toBeUndefined()
    expect(await c.has('k')).toBe(false)
    expect(await c.add('k', 'again', 1_000)).toBe(true)
    clock.advance(1_000)
    // @keyv/sqlite has no expiry column: the expired row stays until the bridge purges it.
    expect(rowKeys(uri)).toEqual(['forever', 'k'])
    expect(await c.purgeExpired()).toBe(1)
    expect(rowKeys(uri)).toEqual(['forever'])
  })

  itSqlite("keyv's own has() says true for an expired entry on @keyv/sqlite; cachekit's has() says false", async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const uri = sqliteUri()
    const keyv = new Keyv(new KeyvSqlite(uri))
    await keyv.set('x', 1, 1_000)
    const c = await open({ type: 'keyv', store: new KeyvSqlite(uri), now: () => Date.now() })
    await c.set('x', 1, 1_000)
    vi.setSystemTime(Date.now() + 5_000)
    expect(await keyv.get('x')).toBeUndefined()
    // The peer's defect, as observed: get misses but has still says the key is there.
    await keyv.set('y', 1, 1_000)
    vi.setSystemTime(Date.now() + 5_000)
    expect(await keyv.has('y')).toBe(true)
    expect(await c.has('x')).toBe(false)
    await keyv.disconnect()
  })
})

describe('keyv bridge: purge and stores without an iterator', () => {
  it('sweeps expired entries from a store without its own expiry every KEYV_PURGE_INTERVAL_MS', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    const clock = new FakeClock()
    const map = new Map()
    const c = await open({ type: 'keyv', store: map, now: clock.now })
    await c.set('short', 1, 1_000)
    await c.set('long', 2, 0)
    clock.advance(1_000)
    expect(map.size).toBe(2)
    await vi.advanceTimersByTimeAsync(KEYV_PURGE_INTERVAL_MS)
    expect([...map.keys()]).toEqual(['long'])
  })

  it('says that clear() and keys() need an iterator on a store without one', async () => {
    const data = new Map<string, unknown>()
    // A minimal Keyv store (get, set, delete, clear) with no iterator, as @keyv/memcache is.
    const store = {
      get: async (k: string) => data.get(k),
      set: async (k: string, v: unknown) => void data.set(k, v),
      delete: async (k: string) => data.delete(k),
      clear: async () => data.clear(),
    }
    const c = await open({ type: 'keyv', store, failOpen: false })
    await c.set('k', 1)
    expect(await c.get('k')).toBe(1)
    await expect(c.clear()).rejects.toThrow(/has no iterator/)
    expect(await c.get('k')).toBe(1)
  })
})

describe('keyv bridge: atomicity is per process, and it says so', () => {
  itSqlite('inc and add on a bridge marked shared warn once that they are not atomic across processes', async () => {
    const warnings: string[] = []
    const c = createCache({ type: 'keyv', store: new KeyvSqlite(sqliteUri()), shared: true })
    c.on('warning', (m) => warnings.push(m))
    opened.push(c)
    await c.ready()
    expect(warnings).toEqual([])
    expect(await c.inc('n')).toBe(1)
    expect(await c.inc('n')).toBe(2)
    await c.add('lock', 1)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/atomic within one process only/)
  })

  itSqlite('getOrSet takes no cross-process lease on it (the lease needs an atomic add), even when shared', async () => {
    const uri = sqliteUri()
    const c = await open({ type: 'keyv', store: new KeyvSqlite(uri), shared: true })
    c.on('warning', () => {})
    let during: string[] = []
    expect(await c.getOrSet('report', () => ((during = rowKeys(uri)), 'built'))).toBe('built')
    expect(during).toEqual([])
    expect(rowKeys(uri)).toEqual(['report'])
  })

  it('does not warn when the bridge is not shared', async () => {
    const warnings: string[] = []
    const c = createCache({ type: 'keyv', store: new Map() })
    c.on('warning', (m) => warnings.push(m))
    opened.push(c)
    await c.inc('n')
    await c.add('lock', 1)
    expect(warnings).toEqual([])
  })

  itSqlite('serializes set, inc and delete of one key within a process', async () => {
    const c = await open({ type: 'keyv', store: new KeyvSqlite(sqliteUri()) })
    const ops = await Promise.all([c.inc('k'), c.set('k', 100), c.inc('k'), c.inc('k'), c.delete('k'), c.inc('k')])
    expect(ops).toEqual([1, true, 101, 102, true, 1])
    expect(await c.get('k')).toBe(1)
  })
})

describe('keyv bridge: clear() removes only its own keys', () => {
  itSqlite('on @keyv/sqlite, with LIKE wildcards in the prefix and a foreign Keyv in the same table', async () => {
    const uri = sqliteUri()
    const foreign = new Keyv(new KeyvSqlite(uri), { namespace: 'other' })
    await foreign.set('k', 'theirs')
    const lookalike = await open({ type: 'keyv', store: new KeyvSqlite(uri), keyPrefix: 'aXb:' })
    await lookalike.set('k', 'lookalike')
    const c = await open({ type: 'keyv', store: new KeyvSqlite(uri), keyPrefix: 'a_b:' })
    await c.set('k', 'mine')
    await c.clear()
    expect(await c.get('k')).toBeUndefined()
    expect(await lookalike.get('k')).toBe('lookalike')
    expect(await foreign.get('k')).toBe('theirs')
    expect(rowKeys(uri)).toEqual(['aXb:k', 'other:k'])
    await foreign.disconnect()
  })

  itSqlite("keyv's own clear() on @keyv/sqlite matches its namespace with LIKE, so namespace a_b also deletes aXb's keys", async () => {
    const uri = sqliteUri()
    const underscore = new Keyv(new KeyvSqlite(uri), { namespace: 'a_b' })
    const other = new Keyv(new KeyvSqlite(uri), { namespace: 'aXb' })
    await underscore.set('k', 1)
    await other.set('k', 2)
    await underscore.clear()
    // Observed peer behaviour: the other namespace's row is gone too.
    expect(await other.get('k')).toBeUndefined()
    expect(rowKeys(uri)).toEqual([])
    await underscore.disconnect()
    await other.disconnect()
  })

  it('treats a value it did not write as a miss and reports it', async () => {
    const map = new Map<string, unknown>([['p:k', 'not json {']])
    const corrupt: (string | undefined)[] = []
    const c = createCache({ type: 'keyv', store: map, keyPrefix: 'p:' })
    c.on('corrupt', (key) => corrupt.push(key))
    opened.push(c)
    expect(await c.get('k')).toBeUndefined()
    expect(corrupt).toEqual(['p:k'])
  })
})

if (await redisOrSkip('the keyv bridge tests over @keyv/redis')) {
  guardSharedRedis('keyv-bridge')
  describe('keyv bridge over @keyv/redis', () => {
    it('a plain Keyv over @keyv/redis prefixes twice (keyv::keyv:k); the bridge stores the key as it is', async () => {
      const client = createClient({ url: REDIS_URL })
      await client.connect()
      const prefix = uniquePrefix('keyv-bridge')
      try {
        const plain = new Keyv(new KeyvRedis(REDIS_URL))
        await plain.set(`${prefix}plain`, 1)
        expect(await client.keys(`*${prefix}plain`)).toEqual([`keyv::keyv:${prefix}plain`])
        await plain.delete(`${prefix}plain`)
        await plain.disconnect()

        const c = await open({ type: 'keyv', store: new Keyv(new KeyvRedis(REDIS_URL)), keyPrefix: prefix })
        await c.set('k', 'v', 60_000)
        expect(await client.keys(`*${prefix}*`)).toEqual([`${prefix}k`])
        // The TTL reaches Redis too, so expired entries are purged by Redis itself.
        const ttl = await client.pTTL(`${prefix}k`)
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(60_000)
      } finally {
        await client.close()
      }
    })

    it('clear() with glob characters in the prefix leaves lookalike keys and keys with "::"', async () => {
      const prefix = uniquePrefix('keyv-bridge')
      const mine = await open({ type: 'keyv', store: new KeyvRedis(REDIS_URL), keyPrefix: `${prefix}*:` })
      const other = await open({ type: 'keyv', store: new KeyvRedis(REDIS_URL), keyPrefix: `${prefix}x:` })
      await mine.setMany([['a', 1], [':b', 2]])
      await other.set('a', 3)
      const listed: string[] = []
      for await (const k of mine.keys()) listed.push(k)
      expect(listed.sort()).toEqual([':b', 'a'])
      await mine.clear()
      expect(await mine.getMany(['a', ':b'])).toEqual([undefined, undefined])
      expect(await other.get('a')).toBe(3)
      await other.clear()
    })

    it('ready() rejects with a CacheBackendError when the store cannot connect', async () => {
      const c = createCache({ type: 'keyv', store: new KeyvRedis({ url: 'redis://127.0.0.1:1', socket: { reconnectStrategy: false } }) })
      c.on('error', () => {})
      opened.push(c)
      const error = await c.ready().then(() => undefined, (e: unknown) => e)
      expect(error).toBeInstanceOf(CacheBackendError)
      expect((error as Error).message).toMatch(/The Keyv store cannot be reached/)
    })

    it('close() shuts the store for good when its Redis died, and a write racing it is reported as not stored', async () => {
      if (!(await redisServerOrSkip('a keyv bridge test of a Redis that died', 'test/adapters/keyv-bridge.test.ts'))) return
      const server = await new RedisServer(await freePort()).start()
      try {
        const store = new KeyvRedis(server.url)
        const c = createCache({ type: 'keyv', store })
        c.on('error', () => {})
        await c.ready()
        expect(await c.set('k', 1)).toBe(true)
        await server.kill()
        const write = c.set('k', 2)
        await c.close()
        expect(store.client.isOpen).toBe(false)
        expect(await write).toBe(false)
      } finally {
        await server.stop()
      }
    })

    it('ready() gives up after connectTimeout (default 5 s) on a store that retries forever, and close() stops it', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
      const store = new KeyvRedis('redis://127.0.0.1:1')
      const c = createCache({ type: 'keyv', store })
      c.on('error', () => {})
      const outcome = c.ready().then(() => undefined, (e: unknown) => e)
      // The cache asks twice: at start-up, and again in ready() in case the backend came up meanwhile.
      await vi.advanceTimersByTimeAsync(KEYV_DEFAULTS.connectTimeout)
      await vi.advanceTimersByTimeAsync(KEYV_DEFAULTS.connectTimeout)
      const error = await outcome
      vi.useRealTimers()
      expect(error).toBeInstanceOf(CacheBackendError)
      expect((error as Error).message).toMatch(/no answer within 5000 ms \(connectTimeout\)/)
      expect(store.client.isOpen).toBe(true)
      await c.close()
      // The bridge released the store: its connection attempts stopped, and another cache may take it.
      expect(store.client.isOpen).toBe(false)
      // On the shared server, under a prefix of its own: without one, clear() would empty the whole database.
      const again = await open({ type: 'keyv', store: new Keyv(new KeyvRedis(REDIS_URL)), keyPrefix: uniquePrefix('keyv-bridge') })
      expect(await again.set('k', 1, 1_000)).toBe(true)
      await again.clear()
    })
  })
}
