/**
 * The Hono session middleware over real HTTP (@hono/node-server, fetch with a cookie jar), on a real SQLite
 * file with a fake clock, in this process: cookies, signatures, rolling expiry, what is written and when.
 * The same apps under several worker processes, on SQLite and Redis, are in session-workers.test.ts.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { CacheArgumentError, CacheConfigError } from '../src/errors.js'
import { session, type Session, type SessionEnv, type SessionOptions } from '../src/http/hono.js'
import { constantTimeEqual, newSessionId, Signer } from '../src/session/sign.js'
import { createCache } from '../src/singleton.js'
import { FakeClock } from '../src/testing/index.js'
import { CookieJar, send } from './support/sessions.js'

const SECRET = 'a test secret of more than 32 characters'
const OTHER_SECRET = 'another secret, also more than 32 characters'
const root = mkdtempSync(join(tmpdir(), 'cachekit-session-hono-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const opened: { cache: Cache; server?: ServerType }[] = []
afterEach(async () => {
  for (const { cache, server } of opened.splice(0)) {
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)))
    await cache.close()
  }
})

/** A SQLite cache on a fake clock. */
async function sqliteCache(): Promise<{ cache: Cache; clock: FakeClock }> {
  const clock = new FakeClock()
  const cache = createCache({ type: 'sqlite', path: join(mkdtempSync(join(root, 'db-')), 'c.sqlite'), now: clock.now })
  await cache.ready()
  return { cache, clock }
}

/** The test app: login, me, logout, and what a test adds, served over HTTP. */
async function serveApp(cache: Cache, options: Partial<SessionOptions> = {}, more?: (app: Hono<SessionEnv>) => void): Promise<string> {
  const app = new Hono().use(session({ cache, secret: SECRET, ...options }))
  app.post('/login', async (c) => {
    const s = c.get('session')
    await s.regenerate()
    await s.set('user', c.req.query('user') ?? 'ann')
    return c.json({ id: s.id })
  })
  app.get('/me', async (c) => c.json({ user: (await c.get('session').get<string>('user')) ?? null, id: c.get('session').id }))
  app.post('/logout', async (c) => {
    await c.get('session').destroy()
    return c.json({ ok: true })
  })
  app.get('/ping', (c) => c.json({ ok: true }))
  app.onError((error, c) => c.json({ error: (error as { code?: string }).code ?? error.message }, 500))
  more?.(app)
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
  opened.push({ cache, server })
  await new Promise((resolve) => server.once('listening', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function configError(f: () => unknown): CacheConfigError {
  try {
    f()
  } catch (error) {
    expect(error).toBeInstanceOf(CacheConfigError)
    return error as CacheConfigError
  }
  throw new Error('no error')
}

describe('session() options', () => {
  it('refuses a secret shorter than 32 characters at start-up, naming `secret` and never showing it', () => {
    const cache = createCache({ type: 'null' })
    opened.push({ cache })
    for (const secret of ['short secret', 'x'.repeat(31), [SECRET, 'too short, the second'], [], undefined, 42]) {
      const error = configError(() => session({ cache, secret } as SessionOptions))
      expect(error.option).toBe('secret')
      expect(error.message).toContain('`secret`')
      if (typeof secret === 'string') expect(error.message).not.toContain(secret)
      if (Array.isArray(secret) && secret[1] !== undefined) expect(error.message).not.toContain(secret[1])
    }
    expect(() => session({ cache, secret: 'x'.repeat(32) })).not.toThrow()
    expect(() => session({ cache, secret: [SECRET, OTHER_SECRET] })).not.toThrow()
  })

  it('refuses unknown and invalid options, naming them', () => {
    const cache = createCache({ type: 'null' })
    opened.push({ cache })
    const option = (options: Record<string, unknown>) => configError(() => session({ cache, secret: SECRET, ...options } as SessionOptions)).option
    expect(option({ secrets: SECRET })).toBe('secrets')
    expect(option({ cookie: { maxAge: 0 } })).toBe('cookie.maxAge')
    expect(option({ cookie: { maxAge: '500ms' } })).toBe('cookie.maxAge')
    expect(option({ cookie: { maxAge: '401d' } })).toBe('cookie.maxAge')
    expect(option({ cookie: { maxAge: 'a day' } })).toBe('cookie.maxAge')
    expect(option({ cookie: { maxage: '1d' } })).toBe('maxage')
    expect(option({ cookie: { name: 'a b' } })).toBe('cookie.name')
    expect(option({ cookie: { sameSite: 'sometimes' } })).toBe('cookie.sameSite')
    expect(option({ cookie: { sameSite: 'None', secure: false } })).toBe('cookie.secure')
    expect(option({ cookie: { path: 'x;y' } })).toBe('cookie.path')
    expect(option({ renewAfter: -1 })).toBe('renewAfter')
    expect(option({ trustProxy: 'yes' })).toBe('trustProxy')
    expect(option({ prefix: '' })).toBe('prefix')
  })
})

describe('loading', () => {
  it('importing cachekit and cachekit/hono does not load express-session (only cachekit/session does)', () => {
    const script = (entry: string) => `
      await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)})
      await import(${JSON.stringify(new URL(entry, import.meta.url).href)})
      const { createRequire } = await import('node:module')
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('/express-session/'))
      process.stdout.write(String(loaded))`
    const run = (entry: string) => execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(entry)], { encoding: 'utf8', timeout: 60_000 })
    expect(run('../src/http/hono.ts')).toBe('false')
    expect(run('../src/session/store.ts')).toBe('true') // the control: the check sees it when it is loaded
  }, 90_000)
})

describe('signed ids', () => {
  it('ids have 192 random bits; a signature verifies under any of the secrets, and nothing else does', async () => {
    const ids = new Set(Array.from({ length: 1000 }, newSessionId))
    expect(ids.size).toBe(1000)
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{32}$/) // 32 base64url characters: 24 bytes
    const id = newSessionId()
    const signed = await new Signer([SECRET]).sign(id)
    expect(await new Signer([SECRET]).verify(signed)).toBe(id)
    expect(await new Signer([OTHER_SECRET, SECRET]).verify(signed)).toBe(id)
    expect(await new Signer([OTHER_SECRET]).verify(signed)).toBeUndefined()
    const [, signature = ''] = signed.split('.')
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
    for (const bad of [`${id}.${flipped}`, `${newSessionId()}.${signature}`, id, `${id}.`, `${id}.${signature}x`, '', 'a.b', `${id}.${signature}.x`]) {
      expect(await new Signer([SECRET]).verify(bad)).toBeUndefined()
    }
  })

  it('a signature whose last character differs only in the 2 bits decoding drops is refused (every such variant)', async () => {
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const bytes = (text: string) => Buffer.from(text, 'base64url')
    for (let round = 0; round < 20; round++) {
      const id = newSessionId()
      const signed = await new Signer([SECRET]).sign(id)
      const signature = signed.split('.')[1] as string
      const last = ALPHABET.indexOf(signature.at(-1) as string)
      // The 43rd character holds 4 bits of the MAC and 2 that decoding drops: its 3 siblings decode the same.
      const siblings = [1, 2, 3].map((flip) => signature.slice(0, -1) + ALPHABET[last ^ flip])
      for (const sibling of siblings) {
        expect(bytes(sibling)).toEqual(bytes(signature)) // the control: same bytes, so a byte comparison accepts it
        expect(await new Signer([SECRET]).verify(`${id}.${sibling}`)).toBeUndefined()
      }
      expect(await new Signer([SECRET]).verify(signed)).toBe(id)
    }
  })

  it('compares signatures in constant time over their length', () => {
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true)
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false)
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false)
  })
})

describe('session() over HTTP', () => {
  it('sets a cookie with only a signed id: HttpOnly, SameSite=Lax, Path=/, Max-Age from a Duration, Secure only over HTTPS', async () => {
    const { cache } = await sqliteCache()
    const url = await serveApp(cache, { cookie: { maxAge: '1d' } })
    const jar = new CookieJar()
    const login = await send<{ id: string }>(`${url}/login?user=ann`, jar, { method: 'POST' })
    expect(login.setCookies).toHaveLength(1)
    const [pair, ...attributes] = (login.setCookies[0] as string).split('; ')
    expect(pair).toMatch(/^sid=[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{43}$/)
    expect(pair?.slice(4, 36)).toBe(login.body.id)
    expect(attributes.sort()).toEqual(['HttpOnly', 'Max-Age=86400', 'Path=/', 'SameSite=Lax'])
    // Behind a proxy: its X-Forwarded-Proto counts only when the app says it trusts the proxy.
    const https = { 'x-forwarded-proto': 'https' }
    expect((await send(`${url}/login`, new CookieJar(), { method: 'POST', headers: https })).setCookies[0]).not.toContain('Secure')
    const trusting = await serveApp(cache, { trustProxy: true })
    expect((await send(`${trusting}/login`, new CookieJar(), { method: 'POST', headers: https })).setCookies[0]).toContain('; Secure')
    expect((await send(`${trusting}/login`, new CookieJar(), { method: 'POST', headers: { 'x-forwarded-proto': 'http' } })).setCookies[0]).not.toContain('Secure')
    const always = await serveApp(cache, { cookie: { secure: true, sameSite: 'Strict', name: 'app.sid' } })
    const strict = (await send(`${always}/login`, new CookieJar(), { method: 'POST' })).setCookies[0] as string
    expect(strict).toMatch(/^app\.sid=/)
    expect(strict).toContain('; Secure')
    expect(strict).toContain('SameSite=Strict')
  })

  it('marks the cookie Secure for a request whose URL is https', async () => {
    const { cache } = await sqliteCache()
    opened.push({ cache })
    const app = new Hono().use(session({ cache, secret: SECRET }))
    app.get('/', async (c) => {
      await c.get('session').set('n', 1)
      return c.text('ok')
    })
    expect((await app.request('https://example.test/')).headers.get('set-cookie')).toContain('; Secure')
    expect((await app.request('http://example.test/')).headers.get('set-cookie')).not.toContain('Secure')
  })

  it('an unchanged session gets no Set-Cookie and writes nothing; a request without a cookie reads nothing', async () => {
    const { cache, clock } = await sqliteCache()
    const url = await serveApp(cache, { cookie: { maxAge: '1h' } }, (app) => {
      app.get('/peek', async (c) => c.json({ n: (await c.get('session').get('n')) ?? null }))
    })
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    const id = (jar.get('sid') as string).split('.')[0] as string
    let writes = 0
    let reads = 0
    cache.on('set', () => writes++)
    cache.on('hit', () => reads++)
    cache.on('miss', () => reads++)
    clock.advance(1000)
    for (const path of ['/me', '/ping', '/peek']) {
      const answer = await send(`${url}${path}`, jar)
      expect(answer.status).toBe(200)
      expect(answer.setCookies).toEqual([])
    }
    expect(writes).toBe(0)
    // Not touched either: its time left went down by exactly the time that passed.
    expect(await cache.namespace('sess:').ttl(id)).toBe(3_600_000 - 1000)
    reads = 0
    for (const path of ['/me', '/ping', '/peek']) expect((await send(`${url}${path}`, new CookieJar())).setCookies).toEqual([])
    expect(reads).toBe(0)
    expect(writes).toBe(0)
  })

  it('rolling expiry: a request renews the expiry (a touch and a cookie) once renewAfter has passed, never the data', async () => {
    const { cache, clock } = await sqliteCache()
    const sessions = cache.namespace('sess:')
    const url = await serveApp(cache, { cookie: { maxAge: '1h' } }) // renewAfter: a tenth, 6 minutes
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    const id = (jar.get('sid') as string).split('.')[0] as string
    clock.advance(5 * 60_000)
    expect((await send(`${url}/me`, jar)).setCookies).toEqual([])
    expect(await sessions.ttl(id)).toBe(55 * 60_000)
    clock.advance(60_000)
    const renewed = await send<{ user: string }>(`${url}/me`, jar)
    expect(renewed.body.user).toBe('ann')
    expect(renewed.setCookies).toHaveLength(1)
    expect(renewed.setCookies[0]).toContain('Max-Age=3600')
    expect(await sessions.ttl(id)).toBe(3_600_000)
    // Renewed again and again, it outlives its first hour; idle for an hour, it is gone.
    for (let i = 0; i < 12; i++) {
      clock.advance(10 * 60_000)
      expect((await send<{ user: string }>(`${url}/me`, jar)).body.user).toBe('ann')
    }
    clock.advance(3_600_000)
    expect((await send<{ user: string | null }>(`${url}/me`, jar)).body.user).toBeNull()

    const fixed = await serveApp(cache, { cookie: { maxAge: '1h' }, rolling: false })
    const other = new CookieJar()
    await send(`${fixed}/login`, other, { method: 'POST' })
    clock.advance(50 * 60_000)
    expect((await send(`${fixed}/me`, other)).setCookies).toEqual([])
    clock.advance(10 * 60_000)
    expect((await send<{ user: string | null }>(`${fixed}/me`, other)).body.user).toBeNull()
  })

  it('a tampered, forged or unknown cookie is a fresh, empty session (200, no error), and its id is never taken up', async () => {
    const { cache } = await sqliteCache()
    const url = await serveApp(cache)
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    const good = jar.get('sid') as string
    const [id = '', signature = ''] = good.split('.')
    const forgedId = newSessionId()
    const candidates = [
      `${id}.${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`,
      `${forgedId}.${signature}`,
      await new Signer([OTHER_SECRET]).sign(id),
      id,
      'garbage',
      '%%%',
      `${good}.${good}`,
      await new Signer([SECRET]).sign(forgedId), // well signed, but no such session
    ]
    for (const value of candidates) {
      const tampered = new CookieJar()
      tampered.set('sid', value)
      const me = await send<{ user: string | null; id: string }>(`${url}/me`, tampered)
      expect(me.status).toBe(200)
      expect(me.body.user).toBeNull()
      expect(me.body.id).not.toBe(id)
      expect(me.body.id).not.toBe(forgedId)
      expect(me.setCookies).toEqual([])
    }
    expect((await send<{ user: string }>(`${url}/me`, jar)).body.user).toBe('ann')
  })

  it('regenerate moves the session to a new id and removes the old entry (fixation); destroy removes it and clears the cookie', async () => {
    const { cache } = await sqliteCache()
    const sessions = cache.namespace('sess:')
    const url = await serveApp(cache)
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    const planted = jar.get('sid') as string
    const plantedId = planted.split('.')[0] as string
    const again = await send<{ id: string }>(`${url}/login?user=ann`, jar, { method: 'POST' })
    expect(again.body.id).not.toBe(plantedId)
    expect(await sessions.has(plantedId)).toBe(false)
    expect(await sessions.has(again.body.id)).toBe(true)
    const attacker = new CookieJar()
    attacker.set('sid', planted)
    expect((await send<{ user: string | null }>(`${url}/me`, attacker)).body.user).toBeNull()
    expect((await send<{ user: string }>(`${url}/me`, jar)).body.user).toBe('ann')

    const out = await send(`${url}/logout`, jar, { method: 'POST' })
    expect(out.setCookies).toHaveLength(1)
    expect(out.setCookies[0]).toMatch(/^sid=; Max-Age=0; Path=\/; HttpOnly; SameSite=Lax$/)
    expect(jar.get('sid')).toBeUndefined()
    expect(await sessions.has(again.body.id)).toBe(false)
  })

  it('values keep their types from request to request; deleting the last one removes the session', async () => {
    const { cache } = await sqliteCache()
    const when = new Date('2024-01-02T03:04:05.678Z')
    const url = await serveApp(cache, {}, (app) => {
      app.post('/put', async (c) => {
        const s = c.get('session')
        await s.set('when', when)
        await s.set('tags', new Map([['a', new Set([1n, 2n])]]))
        await s.set('__proto__', 'an own member, not a prototype')
        return c.json({ ok: true })
      })
      app.get('/types', async (c) => {
        const s = c.get('session')
        const seen = await s.get<Date>('when')
        const tags = await s.get<Map<string, Set<bigint>>>('tags')
        return c.json({
          date: seen instanceof Date && seen.getTime() === when.getTime(),
          map: tags instanceof Map && tags.get('a') instanceof Set && tags.get('a')?.has(2n) === true,
          proto: await s.get('__proto__'),
          missing: (await s.get('constructor')) ?? null,
        })
      })
      app.post('/forget', async (c) => {
        const s = c.get('session')
        for (const name of ['when', 'tags', '__proto__']) await s.delete(name)
        return c.json({ ok: true })
      })
      app.post('/undefined', async (c) => {
        await c.get('session').set('x', undefined).catch((e: unknown) => {
          expect(e).toBeInstanceOf(CacheArgumentError)
        })
        return c.json({ ok: true })
      })
    })
    const jar = new CookieJar()
    await send(`${url}/put`, jar, { method: 'POST' })
    expect((await send(`${url}/types`, jar)).body).toEqual({ date: true, map: true, proto: 'an own member, not a prototype', missing: null })
    const id = (jar.get('sid') as string).split('.')[0] as string
    const forget = await send(`${url}/forget`, jar, { method: 'POST' })
    expect(forget.setCookies[0]).toContain('Max-Age=0')
    expect(await cache.namespace('sess:').has(id)).toBe(false)
    const none = await send(`${url}/undefined`, new CookieJar(), { method: 'POST' })
    expect(none.status).toBe(200)
    expect(none.setCookies).toEqual([])
  })

  it('a value that cannot be encoded fails the request (500) and leaves the stored session as it was', async () => {
    const { cache } = await sqliteCache()
    const url = await serveApp(cache, {}, (app) => {
      app.post('/bad', async (c) => {
        await c.get('session').set('user', 'mallory')
        await c.get('session').set('pattern', /no JSON form/)
        return c.json({ ok: true })
      })
    })
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    const bad = await send<{ error: string }>(`${url}/bad`, jar, { method: 'POST' })
    expect(bad.status).toBe(500)
    expect(bad.body.error).toBe('CACHE_SERIALIZATION')
    expect(bad.setCookies).toEqual([])
    expect((await send<{ user: string }>(`${url}/me`, jar)).body.user).toBe('ann')
  })

  it('rotates secrets: the first signs, any verifies', async () => {
    const { cache } = await sqliteCache()
    const before = await serveApp(cache, { secret: OTHER_SECRET })
    const rotating = await serveApp(cache, { secret: [SECRET, OTHER_SECRET] })
    const after = await serveApp(cache, { secret: SECRET })
    const jar = new CookieJar()
    await send(`${before}/login?user=ann`, jar, { method: 'POST' })
    expect((await send<{ user: string | null }>(`${after}/me`, jar)).body.user).toBeNull()
    expect((await send<{ user: string }>(`${rotating}/me`, jar)).body.user).toBe('ann')
    await send(`${rotating}/login?user=bob`, jar, { method: 'POST' }) // signed with the first secret
    expect((await send<{ user: string }>(`${after}/me`, jar)).body.user).toBe('bob')
  })

  it('a touch racing a write keeps the write; a save racing a logout stays logged out', async () => {
    const { cache } = await sqliteCache()
    // A request held in its handler, after the middleware loaded its session: `reached` says it got there.
    const holds = new Map<string, { reached: () => void; gate: Promise<void> }>()
    const hold = (name: string) => {
      let open = () => {}
      let reached = () => {}
      const gate = new Promise<void>((resolve) => (open = resolve))
      const arrived = new Promise<void>((resolve) => (reached = resolve))
      holds.set(name, { reached, gate })
      return { open, arrived }
    }
    const wait = async (name: string) => {
      const h = holds.get(name)
      h?.reached()
      await h?.gate
    }
    const url = await serveApp(cache, { renewAfter: 0 }, (app) => {
      app.get('/slow-read', async (c) => {
        await wait('read')
        return c.json({ user: (await c.get('session').get('user')) ?? null })
      })
      app.post('/slow-write', async (c) => {
        await wait('write')
        await c.get('session').set('cart', ['pear'])
        return c.json({ ok: true })
      })
      app.post('/rename', async (c) => {
        await c.get('session').set('user', 'bob')
        return c.json({ ok: true })
      })
    })
    const jar = new CookieJar()
    await send(`${url}/login?user=ann`, jar, { method: 'POST' })
    // The slow request loads "ann" and is held; another renames the user; the slow one ends with a touch.
    const read = hold('read')
    const slow = send(`${url}/slow-read`, jar)
    await read.arrived
    await send(`${url}/rename`, jar, { method: 'POST' })
    read.open()
    const renewal = await slow
    expect(renewal.body).toEqual({ user: 'ann' })
    expect(renewal.setCookies).toHaveLength(1) // it did renew (renewAfter: 0)
    expect((await send<{ user: string }>(`${url}/me`, jar)).body.user).toBe('bob')

    const write = hold('write')
    const stale = send(`${url}/slow-write`, jar, { method: 'POST' })
    await write.arrived
    const id = (jar.get('sid') as string).split('.')[0] as string
    await send(`${url}/logout`, jar.copy(), { method: 'POST' })
    write.open()
    expect((await stale).status).toBe(200)
    expect(await cache.namespace('sess:').has(id)).toBe(false)
    expect((await send<{ user: string | null }>(`${url}/me`, jar)).body.user).toBeNull()
  })

  it("types c.get('session') through Hono's Variables", async () => {
    const cache = createCache({ type: 'memory' })
    opened.push({ cache })
    const app = new Hono().use(session({ cache, secret: SECRET }))
    app.get('/', async (c) => {
      const s: Session = c.get('session')
      const user: string | undefined = await s.get<string>('user')
      return c.text(`${s.id}:${user ?? ''}`)
    })
    const typed = new Hono<SessionEnv>()
    typed.use(session({ cache, secret: SECRET }))
    typed.get('/', (c) => c.text(c.get('session').id))
    expect((await app.request('/')).status).toBe(200)
    expect((await (await typed.request('/')).text())).toMatch(/^[A-Za-z0-9_-]{32}$/)
  })
})
