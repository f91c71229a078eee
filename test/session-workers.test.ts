/**
 * Sessions under several worker processes over real HTTP, with cookie jars as two browsers: express-session
 * with CacheStore, and the Hono middleware, in 3 workers (test/fixtures/session-server.ts) sharing a SQLite
 * file or a Redis (random prefix). What the backend holds is checked in the backend itself: the SQLite row,
 * the Redis key. The backend-down cases run on a redis-server of the test's own, killed mid-test.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCache } from '../src/singleton.js'
import { uniquePrefix } from './support/prefix.js'
import { freePort, redisCli, redisOrSkip, RedisServer, redisServerOrSkip, REDIS_URL } from './support/redis.js'
import { CookieJar, send, startWorkers, type SessionWorker } from './support/sessions.js'

const WORKERS = 3
const SECRET = 'the secret of the session tests, 32+ characters'
const root = mkdtempSync(join(tmpdir(), 'cachekit-session-workers-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

type App = 'express' | 'hono'
const APPS: App[] = ['express', 'hono']
const COOKIE: Record<App, string> = { express: 'connect.sid', hono: 'sid' }

/** The session id a browser's cookie carries (express-session's `s:<id>.<sig>`, or the Hono middleware's `<id>.<sig>`). */
function sessionId(app: App, jar: CookieJar): string {
  const value = decodeURIComponent(jar.get(COOKIE[app]) ?? '')
  const signed = app === 'express' ? value.replace(/^s:/, '') : value
  return signed.slice(0, signed.lastIndexOf('.'))
}

interface SharedBackend {
  name: string
  available(): Promise<boolean>
  /** The environment of a fresh backend for a set of workers, and how to look at it directly. */
  fresh(): { env: Record<string, string>; keyPrefix: string; present(fullKey: string): boolean; purge(): Promise<void> }
}

const backends: SharedBackend[] = [
  {
    name: 'sqlite',
    available: async () => true,
    fresh() {
      const path = join(mkdtempSync(join(root, 'sqlite-')), 'sessions.sqlite')
      return {
        env: { CACHE_URL: `sqlite:${path}`, CACHE_KEY_PREFIX: 'app:' },
        keyPrefix: 'app:',
        present(key) {
          const db = new Database(path, { readonly: true })
          try {
            return db.prepare('SELECT count(*) FROM cachekit WHERE key = ?').pluck().get(key) === 1
          } finally {
            db.close()
          }
        },
        // What the workers' purge timer does, now: any process sharing the file may run it.
        async purge() {
          const cache = createCache({ type: 'sqlite', path, keyPrefix: 'app:' })
          await cache.purgeExpired()
          await cache.close()
        },
      }
    },
  },
  {
    name: 'redis',
    available: () => redisOrSkip('the Redis cases of the session worker tests (npx vitest run test/session-workers.test.ts)'),
    fresh() {
      const keyPrefix = uniquePrefix('session-workers')
      const port = Number(new URL(REDIS_URL).port || 6379)
      return {
        env: { CACHE_URL: REDIS_URL, CACHE_KEY_PREFIX: keyPrefix },
        keyPrefix,
        present: (key) => redisCli(port, 'EXISTS', key) === '1',
        purge: async () => {}, // Redis expires keys itself
      }
    },
  },
]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function me(base: string, jar: CookieJar): Promise<string | null> {
  const answer = await send<{ user: string | null }>(`${base}/me`, jar)
  expect(answer.status).toBe(200)
  return answer.body.user
}

async function login(base: string, jar: CookieJar, user: string): Promise<void> {
  const answer = await send(`${base}/login?user=${user}`, jar, { method: 'POST' })
  expect(answer.status).toBe(200)
}

/**
 * A request to `path` that loads its session, then waits in its handler until told to go: it runs `during`
 * meanwhile (on other workers), and returns the held request's answer once it has finished.
 */
async function heldRequest(workers: SessionWorker[], app: App, jar: CookieJar, path: string, method: string, during: () => Promise<void>) {
  const tag = randomUUID()
  const [holder, other, signaller] = workers as [SessionWorker, SessionWorker, SessionWorker]
  const held = send(`${holder[app]}${path}${path.includes('?') ? '&' : '?'}tag=${tag}`, jar.copy(), { method })
  while (!(await send<{ loaded: boolean }>(`${other[app]}/loaded?tag=${tag}`, undefined)).body.loaded) await sleep(10)
  await during()
  await send(`${signaller[app]}/go?tag=${tag}`, undefined, { method: 'POST' })
  return held
}

for (const backend of backends) {
  describe(`sessions on ${backend.name}, ${WORKERS} workers`, () => {
    let workers: SessionWorker[] = []
    let stop: (() => Promise<void>) | undefined
    let shared: ReturnType<SharedBackend['fresh']>
    let skip = false

    beforeAll(async () => {
      skip = !(await backend.available())
      if (skip) return
      shared = backend.fresh()
      ;({ workers, stop } = await startWorkers(WORKERS, { ...shared.env, SESSION_SECRET: SECRET }))
    }, 60_000)
    afterAll(async () => stop?.())

    for (const app of APPS) {
      const at = (i: number) => (workers[i] as SessionWorker)[app]

      it(`${app}: a login on one worker is seen by every worker; two browsers keep their own sessions`, async (t) => {
        if (skip) return t.skip()
        const ann = new CookieJar()
        const bob = new CookieJar()
        await login(at(0), ann, 'ann')
        await login(at(1), bob, 'bob')
        for (let i = 0; i < WORKERS; i++) {
          expect(await me(at(i), ann)).toBe('ann')
          expect(await me(at(i), bob)).toBe('bob')
          expect(await me(at(i), new CookieJar())).toBeNull()
        }
        expect(sessionId(app, ann)).not.toBe(sessionId(app, bob))
      })

      it(`${app}: a logout on one worker is a logout on all, and the entry leaves the backend`, async (t) => {
        if (skip) return t.skip()
        const jar = new CookieJar()
        await login(at(0), jar, 'ann')
        const key = `${shared.keyPrefix}sess:${sessionId(app, jar)}`
        expect(shared.present(key)).toBe(true)
        const kept = jar.copy() // the cookie as it was: a copy taken before the logout
        expect((await send(`${at(1)}/logout`, jar, { method: 'POST' })).status).toBe(200)
        expect(shared.present(key)).toBe(false)
        for (let i = 0; i < WORKERS; i++) expect(await me(at(i), kept)).toBeNull()
      })

      it(`${app}: regenerate at login leaves nothing at the id from before (fixation)`, async (t) => {
        if (skip) return t.skip()
        const jar = new CookieJar()
        await send(`${at(0)}/visits`, jar) // a session exists before the login
        const planted = jar.copy()
        const before = sessionId(app, jar)
        expect(shared.present(`${shared.keyPrefix}sess:${before}`)).toBe(true)
        await login(at(1), jar, 'ann')
        const after = sessionId(app, jar)
        expect(after).not.toBe(before)
        expect(shared.present(`${shared.keyPrefix}sess:${before}`)).toBe(false)
        expect(shared.present(`${shared.keyPrefix}sess:${after}`)).toBe(true)
        expect(await me(at(2), planted)).toBeNull()
        expect(await me(at(2), jar)).toBe('ann')
      })

      it(`${app}: a tampered cookie is a fresh, empty session, not an error`, async (t) => {
        if (skip) return t.skip()
        const jar = new CookieJar()
        await login(at(0), jar, 'ann')
        const value = jar.get(COOKIE[app]) as string
        const tampered = new CookieJar()
        tampered.set(COOKIE[app], value.slice(0, -2) + (value.endsWith('AA') ? 'BB' : 'AA'))
        for (let i = 0; i < WORKERS; i++) expect(await me(at(i), tampered)).toBeNull()
        expect(await me(at(1), jar)).toBe('ann')
      })

      it(`${app}: a request that does not change the session gets no Set-Cookie`, async (t) => {
        if (skip) return t.skip()
        const jar = new CookieJar()
        await login(at(0), jar, 'ann')
        for (let i = 0; i < WORKERS; i++) {
          for (const path of ['/me', '/ping']) expect((await send(`${at(i)}${path}`, jar)).setCookies).toEqual([])
        }
        expect((await send(`${at(0)}/me`, new CookieJar())).setCookies).toEqual([])
      })

      it(`${app}: /visits counts per browser with cache.inc, exactly, under concurrent requests to every worker`, async (t) => {
        if (skip) return t.skip()
        const browsers = [new CookieJar(), new CookieJar()]
        for (const [i, jar] of browsers.entries()) expect((await send<{ visits: number }>(`${at(i)}/visits`, jar)).body.visits).toBe(1)
        const counts = await Promise.all(
          browsers.map((jar) => Promise.all(Array.from({ length: 12 }, (_, i) => send<{ visits: number; worker: number }>(`${at(i % WORKERS)}/visits`, jar)))),
        )
        for (const answers of counts) {
          expect(answers.map((a) => a.body.visits).sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i + 2))
          expect(new Set(answers.map((a) => a.body.worker)).size).toBe(WORKERS)
        }
        expect(sessionId(app, browsers[0] as CookieJar)).not.toBe(sessionId(app, browsers[1] as CookieJar))
      })

      it(`${app}: two requests of one browser at once: cache.inc counts both; a count kept in the session (the control) loses one`, async (t) => {
        if (skip) return t.skip()
        for (const [path, expected] of [['/visits', [2, 3]], ['/visits-in-session', [2, 2]]] as const) {
          const jar = new CookieJar()
          expect((await send<{ visits: number }>(`${at(0)}${path}`, jar)).body.visits).toBe(1)
          // Both load the session, then both count: held until each has loaded it.
          const tags = [randomUUID(), randomUUID()]
          const held = tags.map((tag, i) => send<{ visits: number }>(`${at(i)}${path}?tag=${tag}`, jar.copy()))
          for (const tag of tags) while (!(await send<{ loaded: boolean }>(`${at(2)}/loaded?tag=${tag}`, undefined)).body.loaded) await sleep(10)
          for (const tag of tags) await send(`${at(2)}/go?tag=${tag}`, undefined, { method: 'POST' })
          const counts = (await Promise.all(held)).map((a) => a.body.visits).sort((a, b) => a - b)
          expect(counts).toEqual(expected)
        }
      })

      it(`${app}: a request that loaded the session before a logout cannot save it back`, async (t) => {
        if (skip) return t.skip()
        const jar = new CookieJar()
        await login(at(0), jar, 'ann')
        const key = `${shared.keyPrefix}sess:${sessionId(app, jar)}`
        const held = await heldRequest(workers, app, jar, '/slow-update?user=mallory', 'POST', async () => {
          expect((await send(`${at(2)}/logout`, jar.copy(), { method: 'POST' })).status).toBe(200)
        })
        expect(held.status).toBe(200)
        expect(shared.present(key)).toBe(false)
        for (let i = 0; i < WORKERS; i++) expect(await me(at(i), jar)).toBeNull()
      })
    }

    it('express: a touch racing a write keeps the write (the held request ends with store.touch)', async (t) => {
      if (skip) return t.skip()
      const jar = new CookieJar()
      await login(workers[0]?.express as string, jar, 'ann')
      const held = await heldRequest(workers, 'express', jar, '/slow', 'GET', async () => {
        await send(`${workers[2]?.express}/update?user=bob`, jar, { method: 'POST' })
      })
      expect(held.body).toMatchObject({ user: 'ann' }) // what it loaded
      for (let i = 0; i < WORKERS; i++) expect(await me(workers[i]?.express as string, jar)).toBe('bob')
    })

    it('the same race with a touch that writes the session (the control) loses the write; the Hono renewal keeps it', async (t) => {
      if (skip) return t.skip()
      const control = backend.fresh()
      const { workers: others, stop: stopOthers } = await startWorkers(WORKERS, { ...control.env, SESSION_SECRET: SECRET, NAIVE_TOUCH: '1', HONO_RENEW_AFTER: '0' })
      try {
        for (const app of APPS) {
          const jar = new CookieJar()
          await login((others[0] as SessionWorker)[app], jar, 'ann')
          const held = await heldRequest(others, app, jar, '/slow', 'GET', async () => {
            await send(`${(others[2] as SessionWorker)[app]}/update?user=bob`, jar, { method: 'POST' })
          })
          expect(held.body).toMatchObject({ user: 'ann' })
          if (app === 'hono') expect(held.setCookies).toHaveLength(1) // it renewed (renewAfter: 0), with a touch
          expect(await me((others[1] as SessionWorker)[app], jar)).toBe(app === 'express' ? 'ann' : 'bob')
        }
      } finally {
        await stopOthers()
      }
    }, 60_000)

    it('an expired session is gone on every worker and from the backend (Redis by itself, SQLite by its purge)', async (t) => {
      if (skip) return t.skip()
      const short = backend.fresh()
      const { workers: others, stop: stopOthers } = await startWorkers(WORKERS, { ...short.env, SESSION_SECRET: SECRET, SESSION_MAX_AGE: '1500' })
      try {
        const keys: string[] = []
        const jars: [App, CookieJar][] = []
        for (const app of APPS) {
          const jar = new CookieJar()
          await login((others[0] as SessionWorker)[app], jar, 'ann')
          expect(await me((others[1] as SessionWorker)[app], jar)).toBe('ann')
          keys.push(`${short.keyPrefix}sess:${sessionId(app, jar)}`)
          jars.push([app, jar])
        }
        for (const key of keys) expect(short.present(key)).toBe(true)
        await sleep(1800)
        // The browser would have dropped the cookie by now; it is sent anyway, as a replaying client would.
        for (const [app, jar] of jars) for (const w of others) expect(await me(w[app], jar)).toBeNull()
        await short.purge()
        for (const key of keys) expect(short.present(key)).toBe(false)
      } finally {
        await stopOthers()
      }
    }, 60_000)
  })
}

/**
 * How long a session request may take with the server gone: Redis's default commandTimeout (1 s) for each of
 * the few commands a request sends (a login: the save and its check for a logout's mark), and room for a
 * loaded machine. A hang would take send()'s own 20 s.
 */
const DOWN_BOUND_MS = 6_000

describe('sessions with the Redis server down', () => {
  for (const [failOpen, how] of [[true, 'killed'], [false, 'killed'], [true, 'frozen'], [false, 'frozen']] as const) {
    it(`${how}, failOpen ${failOpen}: ${failOpen ? 'reads are fresh sessions, a login or logout is a 500' : 'every session request is a 500'}, each within ${DOWN_BOUND_MS / 1000} s, on both apps`, async (t) => {
      if (!(await redisServerOrSkip('the session tests with the Redis server down', 'test/session-workers.test.ts'))) return t.skip()
      const server = await new RedisServer(await freePort()).start()
      const { workers, stop } = await startWorkers(2, {
        CACHE_URL: server.url,
        CACHE_KEY_PREFIX: 'down:',
        CACHE_FAIL_OPEN: String(failOpen),
        SESSION_SECRET: SECRET,
      })
      try {
        const jars = new Map<App, CookieJar>()
        for (const app of APPS) {
          const [a, b] = workers.map((w) => w[app]) as [string, string]
          const jar = new CookieJar()
          await login(a, jar, 'ann')
          expect(await me(b, jar)).toBe('ann')
          jars.set(app, jar)
        }
        // Killed: the connection is refused at once. Frozen (SIGSTOP): the socket stays open and commands are
        // written and never answered, so only the command timeout ends them.
        if (how === 'killed') await server.kill()
        else server.process?.kill('SIGSTOP')
        const timed = async <T>(request: Promise<T>): Promise<T> => {
          const t0 = performance.now()
          const answer = await request
          expect(performance.now() - t0).toBeLessThan(DOWN_BOUND_MS)
          return answer
        }
        for (const app of APPS) {
          const [a, b] = workers.map((w) => w[app]) as [string, string]
          const jar = jars.get(app) as CookieJar
          const read = await timed(send<{ user: string | null; error?: string }>(`${b}/me`, jar))
          if (failOpen) expect(read).toMatchObject({ status: 200, body: { user: null } })
          else expect(read).toMatchObject({ status: 500, body: { error: 'CACHE_BACKEND' } })
          const loggingIn = await timed(send<{ error: string }>(`${a}/login?user=bob`, new CookieJar(), { method: 'POST' }))
          expect(loggingIn.status).toBe(500)
          expect(loggingIn.body.error).toBe('CACHE_BACKEND')
          // A logout the backend did not do is never reported done, whatever failOpen says.
          const loggingOut = await timed(send<{ error: string }>(`${b}/logout`, jar.copy(), { method: 'POST' }))
          expect(loggingOut.status).toBe(500)
          expect(loggingOut.body.error).toBe('CACHE_BACKEND')
        }
      } finally {
        server.process?.kill('SIGCONT')
        await stop()
        await server.stop()
      }
    }, 90_000)
  }
})
