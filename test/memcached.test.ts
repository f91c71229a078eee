/**
 * The memcached backend against real memcached processes of this file's own: memcached's limits handled
 * (key names, 30-day expirations, item size), clear() across caches, a killed, paused and restarted
 * server, an unreachable one, SASL, credentials kept out of errors, and the cross-process getOrSet proof.
 */
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Registry, REGISTRY_KEY } from '../adapters/memcached/clears.js'
import { race } from '../bin/race-clients.js'
import { startDemo } from '../examples/launch.js'
import { encodeEntry } from '../adapters/memcached/entry.js'
import { itemName } from '../adapters/memcached/keys.js'
import type { Cache } from '../src/cache.js'
import type { CacheConfig } from '../src/config/index.js'
import { CacheBackendError, CacheConfigError, CacheTypeError, CacheUnsupportedError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { runInProcesses } from '../src/testing/processes.js'
import { ascii, freePort, haveSasl, makeSaslUser, memcachedOrSkip, MemcachedServer } from './support/memcached.js'

const open: Cache[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()))
})

const prefix = () => `ck-mc:${randomBytes(5).toString('hex')}:`

function track(c: Cache): Cache {
  open.push(c)
  return c
}

/** Every 'error' and 'warning' a cache emits, as text. */
function events(c: Cache): { errors: Error[]; warnings: string[] } {
  const seen = { errors: [] as Error[], warnings: [] as string[] }
  c.on('error', (error) => seen.errors.push(error))
  c.on('warning', (message) => seen.warnings.push(message))
  return seen
}

const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('expected a failure'), (e: unknown) => e)

/**
 * Retry `f` until it is true, for up to 20 s. A server that is back is taken back after its retry delay
 * (1 s), by one probe that must be answered within commandTimeout; on a loaded machine a probe over a socket
 * that must reconnect first can miss it, and the next one comes a retry delay later.
 */
async function eventually(f: () => Promise<boolean>, what: string): Promise<void> {
  const end = performance.now() + 20_000
  while (performance.now() < end) {
    if (await f()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`never happened: ${what}`)
}

/** The item name of a cache's key, computed as the adapter does from the registry on the server. */
async function nameOf(server: MemcachedServer, fullKey: string): Promise<string> {
  const reply = await ascii(server.port, `get ${REGISTRY_KEY}\r\n`)
  const json = reply.split('\r\n')[1] ?? ''
  const registry = new Registry(Buffer.from(json), JSON.parse(json) as ConstructorParameters<typeof Registry>[1])
  return itemName(registry.token(fullKey), fullKey).name
}

/** Seconds left on an item by the server's own clock (`mg ... t`): -1 for never, undefined if absent. */
async function serverTtl(server: MemcachedServer, name: string): Promise<number | undefined> {
  const reply = await ascii(server.port, `mg ${name} t\r\n`)
  const t = /^HD t(-?\d+)/.exec(reply)
  return t === null ? undefined : Number(t[1])
}

if (await memcachedOrSkip('the memcached backend tests')) {
  const server = await MemcachedServer.start()
  afterAll(() => server.stop())
  const config = (extra: Record<string, unknown> = {}) => ({ type: 'memcached', servers: [server.address], keyPrefix: prefix(), ...extra })

  describe('memcached limits, handled', () => {
    it('keys longer than 250 bytes or with spaces or control characters are distinct, round-trip, and are stored under a hash', async () => {
      const c = track(createCache(config()))
      const keys = ['x'.repeat(300), `${'x'.repeat(300)}y`, 'a b', 'a_b', 'tab\tkey', 'line\nkey', 'nul\u0000key', 'ünïcödé', 'plain:key']
      await c.setMany(keys.map((k, i) => [k, i] as const))
      expect(await c.getMany(keys)).toEqual(keys.map((_, i) => i))
      expect(await c.inc('x'.repeat(300))).toBe(1)
      expect(await c.get(`${'x'.repeat(300)}y`)).toBe(1)
      // On the server: the plain key under its own readable name, the others under names memcached accepts.
      const plain = await nameOf(server, `${c.keyPrefix}plain:key`)
      expect(plain.endsWith(`:${c.keyPrefix}plain:key`)).toBe(true)
      expect(await serverTtl(server, plain)).toBeDefined()
      const hashed = await nameOf(server, `${c.keyPrefix}a b`)
      expect(hashed).toMatch(/^h[!-~]{1,249}$/)
      expect(await serverTtl(server, hashed)).toBeDefined()
    })

    it('an item under a hashed name that holds another key is a miss: the full key is checked on read', async () => {
      const c = track(createCache(config()))
      await c.set('long key', 'mine')
      const name = await nameOf(server, `${c.keyPrefix}long key`)
      // Forge what a SHA-256 collision would look like: the same name, holding another key's entry.
      const write = async (key: string) => {
        const body = encodeEntry('"theirs"', null, key)
        expect(await ascii(server.port, Buffer.concat([Buffer.from(`set ${name} ${0x636b0001} 0 ${body.length}\r\n`), body, Buffer.from('\r\n')]))).toContain('STORED')
      }
      await write(`${c.keyPrefix}another key`)
      expect(await c.get('long key')).toBeUndefined()
      expect(await c.has('long key')).toBe(false)
      // Control: the same forged item holding this key is read, so the miss above is the check's doing.
      await write(`${c.keyPrefix}long key`)
      expect(await c.get('long key')).toBe('theirs')
    })

    it('a TTL over 30 days is sent as an absolute time: the entry lives, and the server keeps it 40 days', async () => {
      const c = track(createCache(config()))
      expect(await c.set('long-lived', 1, '40d')).toBe(true)
      expect(await c.get('long-lived')).toBe(1)
      const t = await serverTtl(server, await nameOf(server, `${c.keyPrefix}long-lived`))
      expect(t).toBeGreaterThan(40 * 86_400 - 60)
      expect(t).toBeLessThan(40 * 86_400 + 60)
      const left = await c.ttl('long-lived')
      expect(left).toBeGreaterThan(40 * 86_400_000 - 60_000)
      // Control: the same 40 days sent as relative seconds is a time in 1970, and the item is gone at once.
      expect(await ascii(server.port, `set ck-control-40d 0 ${40 * 86_400} 1\r\nx\r\n`)).toContain('STORED')
      expect(await serverTtl(server, 'ck-control-40d')).toBeUndefined()
    })

    it('a TTL of 0 never expires on the server either', async () => {
      const c = track(createCache(config()))
      await c.set('forever', 1, 0)
      expect(await serverTtl(server, await nameOf(server, `${c.keyPrefix}forever`))).toBe(-1)
      expect(await c.ttl('forever')).toBeNull()
    })

    it("a value over the server's item size limit: set is false and the error names the limit", async () => {
      const c = track(createCache(config()))
      const seen = events(c)
      expect(await c.set('big', 'x'.repeat(2 * 1024 * 1024))).toBe(false)
      expect(String(seen.errors[0]?.message)).toMatch(/item size limit \(memcached -I/)
      expect(await c.get('big')).toBeUndefined()
    })

    it('inc and dec go below zero and stop at the safe integer range, leaving the value as it was', async () => {
      const c = track(createCache(config()))
      expect(await c.dec('n', 5)).toBe(-5)
      expect(await c.inc('n', 2)).toBe(-3)
      await c.set('max', Number.MAX_SAFE_INTEGER)
      await expect(c.inc('max')).rejects.toBeInstanceOf(CacheTypeError)
      expect(await c.get('max')).toBe(Number.MAX_SAFE_INTEGER)
    })

    it('keys() is a CacheUnsupportedError that says why', async () => {
      const c = track(createCache(config()))
      const error = await failure((async () => {
        for await (const _ of c.keys()) break
      })())
      expect(error).toBeInstanceOf(CacheUnsupportedError)
      expect((error as Error).message).toMatch(/memcached backend: it cannot list its keys/)
    })
  })

  describe('memcached clear()', () => {
    it('a clear() in one cache is seen by the very next call of another (the registry is read with each call)', async () => {
      const keyPrefix = prefix()
      const a = track(createCache(config({ keyPrefix })))
      const b = track(createCache(config({ keyPrefix })))
      await a.set('k', 'v')
      expect(await b.get('k')).toBe('v')
      await b.clear()
      expect(await a.get('k')).toBeUndefined()
      expect(await a.add('k', 'again')).toBe(true)
      expect(await b.get('k')).toBe('again')
    })

    it('control: with clearCheckInterval a cache goes on reading what another one cleared, until the interval passes', async () => {
      const keyPrefix = prefix()
      const a = track(createCache(config({ keyPrefix, clearCheckInterval: '1h' })))
      const b = track(createCache(config({ keyPrefix })))
      await a.set('k', 'v')
      await b.clear()
      expect(await b.get('k')).toBeUndefined()
      expect(await a.get('k')).toBe('v')
    })

    it('clear() with an empty keyPrefix is refused unless clearAll, and then clears every cachekit entry of the pool', async () => {
      const c = track(createCache(config({ keyPrefix: '', failOpen: false })))
      await expect(c.clear()).rejects.toBeInstanceOf(CacheConfigError)
      const other = track(createCache(config()))
      await other.set('k', 1)
      const all = track(createCache(config({ keyPrefix: '', clearAll: true })))
      expect(await all.clear()).toBe(true)
      expect(await other.get('k')).toBeUndefined()
      // Other programs' keys are never touched.
      expect(await ascii(server.port, 'set not-cachekit 0 0 1\r\nx\r\n')).toContain('STORED')
      await all.clear()
      expect(await ascii(server.port, 'get not-cachekit\r\n')).toContain('VALUE not-cachekit')
    })

    it('a lost registry (evicted, or deleted) starts a new epoch: earlier entries are cleared, never read again, and a warning says so', async () => {
      const c = track(createCache(config()))
      const seen = events(c)
      await c.set('k', 'old')
      expect(await ascii(server.port, `delete ${REGISTRY_KEY}\r\n`)).toContain('DELETED')
      expect(await c.get('k')).toBeUndefined()
      expect(seen.warnings.join('\n')).toMatch(/registry was lost/)
      await c.set('k', 'new')
      expect(await c.get('k')).toBe('new')
    })
  })

  describe('memcached never hangs', () => {
    it('a killed server: reads miss and inc/add throw at once; once it is back it is used again, without a restart', async () => {
      const own = await MemcachedServer.start()
      try {
        // commandTimeout of an hour: a call that waited for a timeout instead of failing would hang the test.
        const c = track(createCache({ type: 'memcached', servers: [own.address], keyPrefix: prefix(), commandTimeout: '1h', connectTimeout: '1h' }))
        const seen = events(c)
        await c.set('k', 'v')
        expect(await c.inc('n')).toBe(1)
        await own.kill()
        expect(await c.get('k')).toBeUndefined()
        expect(await c.set('k', 'w')).toBe(false)
        await expect(c.inc('n')).rejects.toBeInstanceOf(CacheBackendError)
        await expect(c.add('a', 1)).rejects.toBeInstanceOf(CacheBackendError)
        expect(seen.errors.length).toBeGreaterThan(0)
        await own.start()
        await eventually(async () => (await c.set('k', 'back')) === true, 'the cache writes to the restarted server')
        expect(await c.get('k')).toBe('back')
        // The restarted server is empty: the counter starts again, and stays exact.
        expect(await c.inc('n')).toBe(1)
        expect(await c.inc('n')).toBe(2)
      } finally {
        await own.stop()
      }
    })

    it('a server that stops answering: the first call fails at commandTimeout, the next ones at once, and it is used again when it answers', async () => {
      const own = await MemcachedServer.start()
      try {
        const c = track(createCache({ type: 'memcached', servers: [own.address], keyPrefix: prefix(), commandTimeout: 1000 }))
        const seen = events(c)
        await c.set('k', 'v')
        await own.pause(true)
        expect(await c.get('k')).toBeUndefined()
        expect(String(seen.errors.at(-1)?.message)).toMatch(/no answer within 1000 ms \(commandTimeout\)/)
        expect(await c.get('k')).toBeUndefined()
        expect(String(seen.errors.at(-1)?.message)).toMatch(/is unreachable/)
        await expect(c.inc('n')).rejects.toThrow(/is unreachable|no answer/)
        await own.pause(false)
        await eventually(async () => (await c.get('k')) === 'v', 'the cache reads from the server again')
      } finally {
        await own.stop()
      }
    })

    it('an unreachable server: ready() rejects naming it, reads miss, inc and add throw, all without waiting for a timeout', async () => {
      const port = await freePort()
      const c = track(createCache({ type: 'memcached', servers: [`127.0.0.1:${port}`], keyPrefix: prefix(), commandTimeout: '1h', connectTimeout: '1h' }))
      const error = await failure(c.ready())
      expect(error).toBeInstanceOf(CacheBackendError)
      expect((error as Error).message).toContain(`Cannot reach memcached at 127.0.0.1:${port}`)
      expect(await c.get('k')).toBeUndefined()
      expect(await c.set('k', 1)).toBe(false)
      await expect(c.inc('k')).rejects.toBeInstanceOf(CacheBackendError)
      await expect(c.add('k', 1)).rejects.toBeInstanceOf(CacheBackendError)
    })
  })

  describe('memcached credentials', () => {
    const password = 's3cret-pw'
    const leaks = (value: unknown): boolean => inspect(value, { depth: 10 }).includes(password) || JSON.stringify(value ?? null).includes(password)

    it('never appear in errors, their causes or events (SASL URL against a closed port)', async () => {
      const port = await freePort()
      const c = track(createCache({ url: `memcached://alice:${password}@127.0.0.1:${port}`, keyPrefix: prefix(), failOpen: true }))
      const seen = events(c)
      const errors = [await failure(c.ready()), await failure(c.inc('n')), await failure(c.add('a', 1))]
      expect(await c.get('k')).toBeUndefined()
      for (const e of [...errors, ...seen.errors]) {
        expect(e).toBeInstanceOf(Error)
        expect(leaks(e)).toBe(false)
      }
      expect(seen.errors.length).toBeGreaterThan(0)
      expect(leaks(c.stats())).toBe(false)
    })

    if (haveSasl()) {
      describe('with a SASL-protected server', () => {
        const sasl = makeSaslUser('alice', password)
        let secure: MemcachedServer
        afterAll(() => secure?.stop())

        it('the right user and password work; a wrong one or none fail ready() with a clear error that shows no password', async () => {
          secure = await MemcachedServer.start([], sasl)
          const good = track(createCache({ url: `memcached://alice:${password}@${secure.address}`, keyPrefix: prefix() }))
          await good.ready()
          expect(await good.set('k', { a: 1 })).toBe(true)
          expect(await good.get('k')).toEqual({ a: 1 })
          expect(await good.inc('n', 2)).toBe(2)
          expect(await good.add('k', 'no')).toBe(false)

          const wrong = track(createCache({ type: 'memcached', servers: [secure.address], username: 'alice', password: 'wrong-pw', keyPrefix: prefix() }))
          const error = await failure(wrong.ready())
          expect(error).toBeInstanceOf(CacheBackendError)
          expect((error as Error).message).toMatch(/SASL authentication failed/)
          expect(inspect(error, { depth: 10 })).not.toContain('wrong-pw')
          const none = track(createCache({ type: 'memcached', servers: [secure.address], keyPrefix: prefix() }))
          await expect(none.ready()).rejects.toBeInstanceOf(CacheBackendError)
        })
      })
    } else {
      it.skip('SASL: this memcached build has no SASL (-S) or saslpasswd2 is missing', () => {})
    }
  })

  describe('memcached across processes and servers', () => {
    const shared = (): CacheConfig => ({ type: 'memcached', servers: [server.address], keyPrefix: prefix() })

    it('8 processes: getOrSet with a slow factory runs it exactly once, everyone gets its value', async () => {
      const results = (await runInProcesses<{ ran: boolean; value: { by: number } }>(shared(), { kind: 'getOrSet', key: 'stampede', delayMs: 400 }, 8)).flat()
      expect(results).toHaveLength(8)
      const runners = results.filter((r) => r.ran)
      expect(runners).toHaveLength(1)
      expect(new Set(results.map((r) => r.value.by))).toEqual(new Set([runners[0]?.value.by]))
    }, 120_000)

    it('control: with lease: false the same race runs the factory more than once (the proof above can fail)', async () => {
      const results = (await runInProcesses<{ ran: boolean }>(shared(), { kind: 'getOrSet', key: 'stampede', delayMs: 400, lease: false }, 8)).flat()
      expect(results.filter((r) => r.ran).length).toBeGreaterThan(1)
    }, 120_000)

    it('the demo race with CACHE_URL=memcached://...: 4 workers, 100 clients, exactly 1..100', async () => {
      const cleared = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('CACHE_')).map((k) => [k, undefined]))
      const demo = await startDemo({ workers: 4, env: { ...cleared, CACHE_URL: server.url, CACHE_KEY_PREFIX: prefix() } })
      try {
        expect(demo.output()).toContain(`backend: ${server.url}`)
        const result = await race(demo.url)
        expect(result.errors).toEqual([])
        expect([...result.values].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
        expect(result.workers).toBeGreaterThan(1)
      } finally {
        await demo.stop()
      }
    }, 180_000)

    it('two servers: keys are spread over both, counters stay exact, and the order the servers are listed in does not matter', async () => {
      const second = await MemcachedServer.start()
      try {
        const keyPrefix = prefix()
        const a = track(createCache({ type: 'memcached', servers: [server.address, second.address], keyPrefix }))
        const b = track(createCache({ type: 'memcached', servers: [second.address, server.address], keyPrefix }))
        const keys = Array.from({ length: 60 }, (_, i) => `k${i}`)
        await a.setMany(keys.map((k) => [k, k] as const))
        expect(await b.getMany(keys)).toEqual(keys)
        const items = async (s: MemcachedServer) => Number(/STAT curr_items (\d+)/.exec(await ascii(s.port, 'stats\r\n'))?.[1])
        expect(await items(second)).toBeGreaterThan(10)
        await Promise.all(keys.map((k) => Promise.all([a.inc(`n:${k}`), b.inc(`n:${k}`)])))
        expect(await a.getMany(keys.map((k) => `n:${k}`))).toEqual(keys.map(() => 2))
      } finally {
        await second.stop()
      }
    })
  })
}
