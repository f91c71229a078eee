/**
 * CacheStore, express-session's store contract, on real backends in this process: SQLite (a temporary file)
 * and the filesystem (a temporary folder) on a fake clock, and Redis (a random prefix) in real time. The
 * HTTP tests with several workers are in session-workers.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import expressSession from 'express-session'
import { afterAll, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { CacheConfigError, CacheSerializationError } from '../src/errors.js'
import { loadExpressSessionStore } from '../src/session/peer.js'
import { CacheStore } from '../src/session/store.js'
import { createCache } from '../src/singleton.js'
import { FakeClock } from '../src/testing/index.js'
import { uniquePrefix } from './support/prefix.js'
import { guardSharedRedis, pingRedis, redisCli, redisOrSkip, REDIS_URL } from './support/redis.js'

// `clear` runs on the shared Redis: it must remove nothing but the keys under the store's prefix.
if (await pingRedis(REDIS_URL)) guardSharedRedis('session-store')

type SessionData = expressSession.SessionData & Record<string, unknown>

const root = mkdtempSync(join(tmpdir(), 'cachekit-session-store-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

interface Backend {
  name: string
  /** A fresh cache; `clock` is undefined for a backend on its own clock (Redis). */
  open(): Promise<{ cache: Cache; clock: FakeClock | undefined; present(fullKey: string): boolean }>
  available(): Promise<boolean>
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    available: async () => true,
    async open() {
      const clock = new FakeClock()
      const path = join(mkdtempSync(join(root, 'sqlite-')), 'c.sqlite')
      const cache = createCache({ type: 'sqlite', path, now: clock.now })
      await cache.ready()
      // The row itself, read with SQL: expired or not, is it still in the file?
      const present = (key: string) => {
        const db = new Database(path, { readonly: true })
        try {
          return db.prepare('SELECT count(*) FROM cachekit WHERE key = ?').pluck().get(key) === 1
        } finally {
          db.close()
        }
      }
      return { cache, clock, present }
    },
  },
  {
    name: 'filesystem',
    available: async () => true,
    async open() {
      const clock = new FakeClock()
      const dir = join(mkdtempSync(join(root, 'fs-')), 'cache')
      const cache = createCache({ type: 'filesystem', dir, now: clock.now })
      await cache.ready()
      // Each entry's file holds its key: is any file of the folder still holding it? (A tombstone's key,
      // `<key>|ck:destroyed`, starts with it: the byte after the key tells them apart.)
      const present = (key: string) =>
        filesUnder(dir).some((file) => {
          const bytes = readFileSync(file)
          const at = bytes.indexOf(key)
          return at >= 0 && bytes[at + Buffer.byteLength(key)] !== '|'.charCodeAt(0)
        })
      return { cache, clock, present }
    },
  },
  {
    name: 'redis',
    available: () => redisOrSkip('the Redis cases of the session store tests (npx vitest run test/session-store.test.ts)'),
    async open() {
      const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: uniquePrefix('session-store') })
      await cache.ready()
      const port = Number(new URL(REDIS_URL).port || 6379)
      return { cache, clock: undefined, present: (key: string) => redisCli(port, 'EXISTS', key) === '1' }
    },
  },
]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A session as express-session hands it over: data and a cookie; `expires` absent means a browser-session cookie. */
function aSession(data: Record<string, unknown>, expires?: Date): SessionData {
  return { cookie: { originalMaxAge: expires === undefined ? null : expires.getTime() - Date.now(), expires, httpOnly: true, path: '/' }, ...data } as unknown as SessionData
}

/** `fn(callback)` as a promise, to call the store the way express-session does. */
function viaCallback<T>(fn: (callback: (error: unknown, value?: unknown) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value as T | undefined))))
}

/** A store whose touch writes the session it is given: connect-redis before its fix, the control. */
class TouchBySet extends CacheStore {
  override touch(sid: string, sess: SessionData): Promise<void>
  override touch(sid: string, sess: SessionData, callback: (err?: unknown) => void): void
  override touch(sid: string, sess: SessionData, callback?: (err?: unknown) => void): Promise<void> | void {
    return callback === undefined ? this.set(sid, sess) : this.set(sid, sess, callback)
  }
}

for (const backend of backends) {
  describe(`CacheStore on ${backend.name}`, () => {
    /** Let `ms` pass for the backend: the fake clock moves, or (Redis) real time passes. */
    const pass = async (clock: FakeClock | undefined, ms: number) => (clock === undefined ? sleep(ms + 100) : clock.advance(ms + 1))

    it('stores and returns sessions through callbacks and promises; Dates stay Dates, and express-session inflates them', async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache } = await backend.open()
      try {
        const store = new CacheStore({ cache })
        const when = new Date('2024-05-06T07:08:09.123Z')
        const expires = new Date(Date.now() + 60_000)
        await viaCallback<void>((cb) => store.set('s1', aSession({ user: 'ann', when, roles: new Set(['admin']) }, expires), cb))
        const got = (await viaCallback<SessionData | null>((cb) => store.get('s1', cb))) as SessionData
        expect(got.user).toBe('ann')
        expect(got.when).toBeInstanceOf(Date)
        expect((got.when as Date).toISOString()).toBe(when.toISOString())
        expect(got.roles).toEqual(new Set(['admin']))
        expect(got.cookie.expires).toBeInstanceOf(Date)
        expect((got.cookie.expires as Date).getTime()).toBe(expires.getTime())
        expect(await store.get('s1')).toEqual(got)
        expect(await store.get('nobody')).toBeNull()
        expect(await viaCallback<SessionData | null>((cb) => store.get('nobody', cb))).toBeNull()
        // express-session's own inflation (Store#load -> createSession) takes what the store gives back.
        const loaded = await viaCallback<expressSession.Session & SessionData>((cb) => store.load('s1', cb))
        expect(loaded?.user).toBe('ann')
        expect(loaded?.cookie.expires).toBeInstanceOf(Date)
        expect(loaded?.cookie.maxAge).toBeGreaterThan(0)
        // A real Session object, as express-session passes it to set(), is stored as its data.
        await store.set('s2', loaded as SessionData)
        expect((await store.get('s2'))?.user).toBe('ann')
      } finally {
        await cache.close()
      }
    })

    it("gives the entry its cookie's lifetime, else the ttl option", async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache } = await backend.open()
      try {
        const store = new CacheStore({ cache, prefix: 'p:', ttl: '2h' })
        const sessions = cache.namespace('p:')
        await store.set('by-expires', aSession({ n: 1 }, new Date(Date.now() + 60_000)))
        await store.set('by-max-age', { cookie: { maxAge: 30_000 }, n: 2 } as unknown as SessionData)
        await store.set('browser-session', aSession({ n: 3 }))
        const ttl = async (id: string) => (await sessions.ttl(id)) as number
        expect(await ttl('by-expires')).toBeLessThanOrEqual(60_000)
        expect(await ttl('by-expires')).toBeGreaterThan(50_000)
        expect(await ttl('by-max-age')).toBeLessThanOrEqual(30_000)
        expect(await ttl('by-max-age')).toBeGreaterThan(20_000)
        expect(await ttl('browser-session')).toBeGreaterThan(2 * 3_600_000 - 10_000)
        // A cookie that has already expired is not stored: it is removed.
        await store.set('by-expires', aSession({ n: 4 }, new Date(Date.now() - 1)))
        expect(await sessions.get('by-expires')).toBeUndefined()
      } finally {
        await cache.close()
      }
    })

    it('never returns an expired session, and the backend removes it (the SQLite row, the file, the Redis key)', async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache, clock, present } = await backend.open()
      try {
        const store = new CacheStore({ cache, ttl: '1s' })
        await store.set('short', aSession({ user: 'ann' }))
        const full = `${cache.keyPrefix}sess:short`
        expect(present(full)).toBe(true)
        await pass(clock, 1000)
        expect(await store.get('short')).toBeNull()
        expect(await store.length()).toBe(0)
        expect(await store.all()).toEqual({})
        await cache.purgeExpired()
        expect(present(full)).toBe(false)
        // An entry whose cookie says it has expired is not returned either, whatever its TTL says.
        await cache.namespace('sess:').set('stale-cookie', aSession({ user: 'bob' }, new Date(Date.now() - 1000)), '1h')
        expect(await store.get('stale-cookie')).toBeNull()
      } finally {
        await cache.close()
      }
    })

    it('touch moves the expiry only: a stale session given to touch does not undo a newer set (control: a touch by set does)', async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache } = await backend.open()
      try {
        for (const [store, survives] of [
          [new CacheStore({ cache, prefix: 'real:', ttl: '1h' }), true],
          [new TouchBySet({ cache, prefix: 'naive:', ttl: '1h' }), false],
        ] as const) {
          await store.set('s', aSession({ cart: ['apple'] }))
          const loadedByAnotherRequest = (await store.get('s')) as SessionData
          await store.set('s', aSession({ cart: ['apple', 'pear'] }))
          await viaCallback<void>((cb) => store.touch('s', loadedByAnotherRequest, cb))
          const cart = ((await store.get('s')) as SessionData).cart
          expect(cart).toEqual(survives ? ['apple', 'pear'] : ['apple'])
        }
      } finally {
        await cache.close()
      }
    })

    it('touch renews a live session, and never brings back a destroyed or an expired one', async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache, clock, present } = await backend.open()
      try {
        const store = new CacheStore({ cache, ttl: '1s' })
        const sessions = cache.namespace('sess:')
        const live = aSession({ user: 'ann' })
        await store.set('live', live)
        if (clock !== undefined) {
          clock.advance(600)
          expect(await sessions.ttl('live')).toBe(400)
          await store.touch('live', live)
          expect(await sessions.ttl('live')).toBe(1000)
        }
        await store.set('gone', aSession({ user: 'bob' }))
        await viaCallback<void>((cb) => store.destroy('gone', cb))
        await store.touch('gone', aSession({ user: 'bob' }))
        expect(await store.get('gone')).toBeNull()
        expect(present(`${cache.keyPrefix}sess:gone`)).toBe(false)

        await store.set('expiring', aSession({ user: 'eve' }))
        await pass(clock, 1000)
        await store.touch('expiring', aSession({ user: 'eve' }))
        expect(await store.get('expiring')).toBeNull()
        await cache.purgeExpired()
        expect(present(`${cache.keyPrefix}sess:expiring`)).toBe(false)
      } finally {
        await cache.close()
      }
    })

    it("a set by a request that loaded the session before it was destroyed is taken back (control: express-session's MemoryStore revives it)", async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache, present } = await backend.open()
      try {
        const store = new CacheStore({ cache, ttl: '1h' })
        const memory = new expressSession.MemoryStore()
        for (const s of [store, memory] as expressSession.Store[]) {
          await viaCallback<void>((cb) => s.set('s', aSession({ user: 'ann' }), cb))
          const loadedBeforeLogout = (await viaCallback<SessionData>((cb) => s.get('s', cb))) as SessionData
          await viaCallback<void>((cb) => s.destroy('s', cb))
          // The slow request ends after the logout and saves what it loaded (with a change of its own).
          await viaCallback<void>((cb) => s.set('s', { ...loadedBeforeLogout, cart: ['pear'] } as SessionData, cb))
        }
        expect(await store.get('s')).toBeNull()
        expect(present(`${cache.keyPrefix}sess:s`)).toBe(false)
        expect((await viaCallback<SessionData>((cb) => memory.get('s', cb)))?.user).toBe('ann')
      } finally {
        await cache.close()
      }
    })

    it("all, length, ids and clear see only the store's prefix; clear leaves every other key", async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache } = await backend.open()
      try {
        const a = new CacheStore({ cache, prefix: 'a:' })
        const b = new CacheStore({ cache, prefix: 'b:' })
        await cache.set('a', 'a key of the app, not a session')
        await cache.set('other:1', 1)
        await a.set('s1', aSession({ n: 1 }))
        await a.set('s2', aSession({ n: 2 }))
        await a.set('s3', aSession({ n: 3 }))
        await a.destroy('s3') // its tombstone is not a session
        await b.set('s1', aSession({ n: 10 }))
        expect((await a.ids()).sort()).toEqual(['s1', 's2'])
        expect(await viaCallback<string[]>((cb) => a.ids(cb))).toHaveLength(2)
        expect(await viaCallback<number>((cb) => a.length(cb))).toBe(2)
        const all = (await viaCallback<Record<string, SessionData>>((cb) => a.all(cb))) as Record<string, SessionData>
        expect(Object.keys(all).sort()).toEqual(['s1', 's2'])
        expect(all.s2?.n).toBe(2)
        expect(await b.ids()).toEqual(['s1'])
        await viaCallback<void>((cb) => a.clear(cb))
        expect(await a.length()).toBe(0)
        expect(await b.get('s1')).not.toBeNull()
        expect(await cache.get('a')).toBe('a key of the app, not a session')
        expect(await cache.get('other:1')).toBe(1)
      } finally {
        await cache.close()
      }
    })

    it('a session that cannot be encoded is an error to the callback, and the stored one stays as it was', async (t) => {
      if (!(await backend.available())) return t.skip()
      const { cache } = await backend.open()
      try {
        const store = new CacheStore({ cache })
        await store.set('s', aSession({ user: 'ann' }))
        const cycle: Record<string, unknown> = { name: 'loop' }
        cycle.self = cycle
        for (const bad of [{ fn: () => 1 }, { pattern: /x/ }, { cycle }]) {
          const error = await viaCallback<void>((cb) => store.set('s', aSession({ user: 'mallory', ...bad }), cb)).then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(error).toBeInstanceOf(CacheSerializationError)
          await expect(store.set('s', aSession({ user: 'mallory', ...bad }))).rejects.toBeInstanceOf(CacheSerializationError)
          expect((await store.get('s'))?.user).toBe('ann')
        }
      } finally {
        await cache.close()
      }
    })
  })
}

describe('CacheStore options and loading', () => {
  it('refuses unknown and invalid options with a CacheConfigError naming the option', async () => {
    const cache = createCache({ type: 'memory' })
    try {
      const option = (f: () => unknown) => {
        try {
          f()
        } catch (error) {
          expect(error).toBeInstanceOf(CacheConfigError)
          return (error as CacheConfigError).option
        }
        throw new Error('no error')
      }
      expect(option(() => new CacheStore({ cache, tll: '1h' } as never))).toBe('tll')
      expect(option(() => new CacheStore({ cache, ttl: 0 }))).toBe('ttl')
      expect(option(() => new CacheStore({ cache, ttl: '-1s' }))).toBe('ttl')
      expect(option(() => new CacheStore({ cache, prefix: '' }))).toBe('prefix')
      expect(option(() => new CacheStore({ cache: {} as never }))).toBe('cache')
    } finally {
      await cache.close()
    }
  })

  it('says what to install when express-session is missing', () => {
    expect(() => loadExpressSessionStore('express-session-that-is-not-installed')).toThrow(
      /cachekit\/session needs the `express-session-that-is-not-installed` package, which is not installed: run `npm install express-session-that-is-not-installed`/,
    )
    expect(loadExpressSessionStore()).toBe(expressSession.Store)
  })

  it('is an express-session Store (regenerate, load and createSession come from it)', async () => {
    const cache = createCache({ type: 'null' })
    const store = new CacheStore({ cache })
    expect(store).toBeInstanceOf(expressSession.Store)
    expect(typeof store.regenerate).toBe('function')
    expect(typeof store.on).toBe('function')
    await cache.close()
  })
})
