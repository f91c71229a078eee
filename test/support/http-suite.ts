/**
 * The HTTP middleware tests, shared by Express and Hono: each file builds an app with the same routes
 * (see ROUTES) on a real server listening on a free port, and this suite fetches from it.
 */
import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '../../src/cache.js'
import type { CachedOptions } from '../../src/http/common.js'
import { httpCacheKey } from '../../src/http/keys.js'
import { createCache } from '../../src/singleton.js'

/** How many times each route's handler ran, by route name. */
export type Runs = Record<string, number>

/** The bytes `/bin` answers with: every byte value, so no encoding could pass them unchanged by chance. */
export const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1024)])

/** Routes every app must have (all with `cached({ cache, ttl: '1m', xCache: true })` unless said):
 * - GET /text: 'hello' text, header `x-custom: yes`
 * - GET /json: `{ run, query }` as JSON (the query as the handler saw it)
 * - GET /bin: BINARY as application/octet-stream
 * - GET /stream: the text 'part1-part2' written in two chunks
 * - GET /cookie: text with a Set-Cookie header
 * - GET /private: text with Cache-Control: private
 * - GET /missing: status 404
 * - POST /text: the same middleware; a POST is never cached
 * - GET /forced: `cached({ forcedUpdate: (req) => header x-refresh === '1' })`, answers its run number
 * - GET /unless: `cached({ unless: (req) => header x-bypass === '1' })`, answers its run number
 * - GET /etag: text 'tagged' with `ETag: "v1"`
 * - GET /singleton: `cached({ ttl: '1m' })` without `cache`: the singleton (the test inits it)
 * - and every route of RULE_ROUTES, mounted by {@link RuleRoute}'s contract
 */
export interface App {
  url: string
  runs: Runs
  close(): Promise<void>
}

/** What a rule route's handler sees of the request. */
export interface RuleRequest {
  header(name: string): string | undefined
  query: URLSearchParams
}

/** What a rule route's handler answers: the framework sends it as it is. */
export interface RuleReply {
  status?: number
  headers?: Record<string, string>
  body: string | Buffer
}

/**
 * A route of the RFC 9111 rules, the same on every framework: each test file mounts it as
 * `GET path` with `cached({ cache, ttl: '1m', xCache: true, ...options })`, counts its runs under
 * `runs[path]` (before `handle`, which gets the run number), waits `delay` ms, and sends the reply.
 */
export interface RuleRoute {
  path: string
  options?: Omit<CachedOptions<unknown>, 'cache' | 'unless' | 'forcedUpdate'>
  delay?: number
  handle(req: RuleRequest, run: number): RuleReply
}

const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT'
const authorized = (req: RuleRequest, run: number): RuleReply => ({ body: `for ${req.header('authorization') ?? 'nobody'} #${run}` })
const plain = (name: string) => (_req: RuleRequest, run: number): RuleReply => ({ body: `${name} #${run}` })
/** A reply whose headers the query names (`?cc=` Cache-Control, `?expires=`, `?age=`, `?status=`). */
const fromQuery = (req: RuleRequest, run: number): RuleReply => {
  const headers: Record<string, string> = {}
  const cc = req.query.get('cc')
  if (cc !== null) headers['cache-control'] = cc
  const expires = req.query.get('expires')
  if (expires !== null) headers.expires = expires
  const age = req.query.get('age')
  if (age !== null) headers.age = age
  return { status: Number(req.query.get('status') ?? 200), headers, body: `answer #${run}` }
}

export const RULE_ROUTES: RuleRoute[] = [
  { path: '/r/auth', handle: authorized },
  { path: '/r/auth-public', handle: (req, run) => ({ ...authorized(req, run), headers: { 'cache-control': 'public, max-age=60' } }) },
  { path: '/r/auth-s-maxage', handle: (req, run) => ({ ...authorized(req, run), headers: { 'cache-control': 's-maxage=60' } }) },
  { path: '/r/auth-revalidate', handle: (req, run) => ({ ...authorized(req, run), headers: { 'cache-control': 'must-revalidate' } }) },
  { path: '/r/auth-opt-in', options: { cacheAuthorized: true }, handle: authorized },
  { path: '/r/vary-star', handle: (_req, run) => ({ headers: { vary: '*' }, body: `any #${run}` }) },
  {
    // What a compression middleware does: gzip for a client that accepts it, and `Vary: Accept-Encoding`.
    path: '/r/gzip',
    handle: (req, run): RuleReply =>
      /\bgzip\b/.test(req.header('accept-encoding') ?? '')
        ? { headers: { vary: 'Accept-Encoding', 'content-encoding': 'gzip', 'content-type': 'text/plain' }, body: gzipSync(`gzip #${run}`) }
        : { headers: { vary: 'Accept-Encoding', 'content-type': 'text/plain' }, body: `plain #${run}` },
  },
  {
    // The `vary` option names one header, the response another as well.
    path: '/r/vary-both',
    options: { vary: ['accept-language'] },
    handle: (req, run) => ({ headers: { vary: 'Accept-Language, X-Tenant' }, body: `${req.header('accept-language') ?? '-'} ${req.header('x-tenant') ?? '-'} #${run}` }),
  },
  { path: '/r/age', handle: plain('aged') },
  { path: '/r/head', handle: plain('head') },
  { path: '/r/modified', handle: (_req, run) => ({ headers: { 'last-modified': LAST_MODIFIED, etag: '"m1"', 'cache-control': 'public, max-age=60' }, body: `modified #${run}` }) },
  { path: '/r/auto', options: { ttl: 'auto' }, handle: fromQuery },
  { path: '/r/error', options: { responseFilter: () => true }, handle: fromQuery },
  { path: '/r/slow', delay: 300, handle: plain('slow') },
  { path: '/r/slow-off', options: { singleFlight: false }, delay: 300, handle: plain('slow') },
  // Tagged, slow enough to invalidate its tag while it runs (one route per test: each test starts cold).
  { path: '/r/slow-tagged-a', options: { tags: ['slow-a'] }, delay: 1500, handle: plain('tagged-a') },
  { path: '/r/slow-tagged-b', options: { tags: ['slow-b'] }, delay: 3000, handle: plain('tagged-b') },
  // A handler far slower than its flight's `wait`: the flight ends at `wait`, and its waiters run their own.
  { path: '/r/slow-wait', options: { singleFlight: { wait: '200ms' } }, delay: 3000, handle: plain('slow-wait') },
  { path: '/r/slow-cookie', delay: 300, handle: (_req, run) => ({ headers: { 'set-cookie': `sid=${run}` }, body: `cookie #${run}` }) },
  { path: '/r/slow-private', delay: 300, handle: (_req, run) => ({ headers: { 'cache-control': 'private' }, body: `private #${run}` }) },
  {
    path: '/r/slow-throw',
    delay: 300,
    handle: () => {
      throw new Error('the handler failed')
    },
  },
  { path: '/r/slow-error', delay: 300, handle: (_req, run) => (run === 1 ? { status: 500, body: `failed #${run}` } : { body: `ok #${run}` }) },
]

/** The methods each rule route answers, all through its one `cached()`. */
export const RULE_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const

/** Run a rule route's handler: count the run, wait its delay, make the reply. */
export async function runRule(route: RuleRoute, runs: Runs, req: RuleRequest): Promise<RuleReply> {
  const run = (runs[route.path] = (runs[route.path] ?? 0) + 1)
  if (route.delay !== undefined) await sleep(route.delay)
  return route.handle(req, run)
}

/** A server that was told to listen on a free port, once it does: its URL and a close that waits. */
export async function served(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A response read by {@link rawGet}. */
export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/**
 * A GET whose request line carries `target` exactly as given. `fetch` (and `new URL`) would resolve `..` and
 * `%2e%2e` and read `//host/x` as another host before sending; node:http sends the path it is given.
 */
export function rawGet(base: string, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: 'GET', path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** `count` copies of a request sent at once. */
function stampede(count: number, send: () => Promise<globalThis.Response>): Promise<{ status: number; body: string; cookie: string | null; xCache: string | null }[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const res = await send()
      return { status: res.status, body: await res.text(), cookie: res.headers.get('set-cookie'), xCache: res.headers.get('x-cache') }
    }),
  )
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export function httpSuite(start: (cache: Cache) => Promise<App>, singleton: Cache): void {
  let app: App
  let cache: Cache
  beforeAll(async () => {
    cache = createCache({ type: 'memory' })
    if (!singleton.initialized) singleton.init({ type: 'memory' })
    app = await start(cache)
  })
  afterAll(async () => {
    await app.close()
    await cache.close()
    await singleton.close()
  })

  const get = (path: string, init?: RequestInit) => fetch(app.url + path, init)
  /** How many times a route's handler has started (read afresh each call, for the tests that poll it). */
  const runsOf = (path: string): number | undefined => app.runs[path]
  const headersOf = (res: globalThis.Response) => {
    const h = Object.fromEntries(res.headers)
    // Per delivery, never part of the resource: the date, and the HIT/MISS marker itself.
    delete h.date
    delete h.age
    delete h['x-cache']
    delete h['keep-alive']
    delete h.connection
    // Framing: a streamed original is chunked, its cached copy has a known length (checked below).
    delete h['transfer-encoding']
    delete h['content-length']
    return h
  }

  it('runs the handler once for repeated requests; the cached status, headers and bytes equal the original', async () => {
    for (const path of ['/text', '/json?x=1', '/bin', '/stream']) {
      const first = await get(path)
      const firstBody = Buffer.from(await first.arrayBuffer())
      const second = await get(path)
      const secondBody = Buffer.from(await second.arrayBuffer())
      expect(first.headers.get('x-cache'), path).toBe('MISS')
      expect(second.headers.get('x-cache'), path).toBe('HIT')
      expect(second.status, path).toBe(first.status)
      expect(headersOf(second), path).toEqual(headersOf(first))
      expect(secondBody.equals(firstBody), path).toBe(true)
      expect(second.headers.get('content-length'), path).toBe(String(firstBody.byteLength))
      if (first.headers.has('content-length')) expect(second.headers.get('content-length'), path).toBe(first.headers.get('content-length'))
    }
    expect(app.runs).toMatchObject({ text: 1, json: 1, bin: 1, stream: 1 })
  })

  it('caches text, JSON and binary bodies exactly', async () => {
    const text = await get('/text')
    expect(await text.text()).toBe('hello')
    expect(text.headers.get('x-custom')).toBe('yes')
    const bin = Buffer.from(await (await get('/bin')).arrayBuffer())
    expect(bin.equals(BINARY)).toBe(true)
    const json = (await (await get('/json?x=1')).json()) as { run: number; query: Record<string, string> }
    expect(json).toEqual({ run: 1, query: { x: '1' } })
    expect(await (await get('/stream')).text()).toBe('part1-part2')
  })

  it('query order does not split entries; another query is another entry', async () => {
    const a = (await (await get('/json?a=1&b=2')).json()) as { run: number }
    const b = (await (await get('/json?b=2&a=1')).json()) as { run: number }
    expect(b.run).toBe(a.run)
    const c = (await (await get('/json?a=1&b=3')).json()) as { run: number }
    expect(c.run).toBe(a.run + 1)
  })

  it('serves HEAD from the GET entry, without a body', async () => {
    const before = app.runs.text
    const head = await get('/text', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('x-cache')).toBe('HIT')
    expect(head.headers.get('x-custom')).toBe('yes')
    expect(head.headers.get('content-length')).toBe('5')
    expect((await head.arrayBuffer()).byteLength).toBe(0)
    expect(app.runs.text).toBe(before)
  })

  it('answers a conditional request for the cached ETag with 304 and no body', async () => {
    const first = await get('/etag')
    const etag = first.headers.get('etag')
    expect(etag).toBe('"v1"')
    const again = await get('/etag', { headers: { 'if-none-match': 'W/"other", "v1"' } })
    expect(again.status).toBe(304)
    expect(again.headers.get('x-cache')).toBe('HIT')
    expect(again.headers.get('etag')).toBe('"v1"')
    expect((await again.arrayBuffer()).byteLength).toBe(0)
    const other = await get('/etag', { headers: { 'if-none-match': '"v0"' } })
    expect(other.status).toBe(200)
    expect(await other.text()).toBe('tagged')
    expect(app.runs.etag).toBe(1)
  })

  it('never caches Set-Cookie, Cache-Control private, a 404 or a POST', async () => {
    for (const path of ['/cookie', '/private', '/missing']) {
      await get(path)
      const again = await get(path)
      expect(again.headers.get('x-cache'), path).toBe('MISS')
    }
    expect(app.runs).toMatchObject({ cookie: 2, private: 2, missing: 2 })
    const before = app.runs.text ?? 0
    await get('/text', { method: 'POST' })
    await get('/text', { method: 'POST' })
    expect(app.runs.text).toBe(before + 2)
    expect(await cache.has('view//cookie')).toBe(false)
  })

  it('forcedUpdate replaces the entry; unless bypasses the cache', async () => {
    expect(await (await get('/forced')).text()).toBe('1')
    expect(await (await get('/forced')).text()).toBe('1')
    expect(await (await get('/forced', { headers: { 'x-refresh': '1' } })).text()).toBe('2')
    expect(await (await get('/forced')).text()).toBe('2')
    expect(await (await get('/unless')).text()).toBe('1')
    expect(await (await get('/unless', { headers: { 'x-bypass': '1' } })).text()).toBe('2')
    expect(await (await get('/unless')).text()).toBe('1')
  })

  it('deleteCached removes one response (its query too)', async () => {
    const { deleteCached } = await import('../../src/http/common.js')
    await get('/json?page=1&sort=asc')
    const run = app.runs.json ?? 0
    expect(await deleteCached('/json', { sort: 'asc', page: '1' }, { cache })).toBe(true)
    await get('/json?page=1&sort=asc')
    expect(app.runs.json).toBe(run + 1)
    expect(await deleteCached('/json', '?nothing=here', { cache })).toBe(false)
    // A query inside the path never matched an entry: it is refused, naming the fix.
    await expect(deleteCached('/json?page=1&sort=asc', undefined, { cache })).rejects.toThrow(/holds a `\?`; pass the query string as `query`/)
  })

  it('tags: invalidateTags forgets the responses of a tag, and only them', async () => {
    expect(await (await get('/orgs/7')).text()).toBe('7:1')
    expect(await (await get('/orgs/7?tab=a')).text()).toBe('7:2')
    expect(await (await get('/orgs/8')).text()).toBe('8:1')
    expect(await (await get('/orgs/7')).text()).toBe('7:1')
    await cache.invalidateTags(['org:7'])
    expect(await (await get('/orgs/7')).text()).toBe('7:3')
    expect(await (await get('/orgs/7?tab=a')).text()).toBe('7:4')
    expect(await (await get('/orgs/8')).text()).toBe('8:1')
  })

  it('uses the cache singleton when no cache is given', async () => {
    await get('/singleton')
    await get('/singleton')
    expect(app.runs.singleton).toBe(1)
    expect(await singleton.has('view//singleton')).toBe(true)
  })

  describe('Authorization (RFC 9111 3.5)', () => {
    const as = (path: string, who?: string) => get(path, who === undefined ? undefined : { headers: { authorization: `Bearer ${who}` } })

    it('a request with Authorization is neither stored nor served from the cache', async () => {
      expect(await (await as('/r/auth', 'ann')).text()).toBe('for Bearer ann #1')
      expect(await cache.has('view//r/auth')).toBe(false)
      const again = await as('/r/auth', 'ann')
      expect(again.headers.get('x-cache')).toBe('MISS')
      expect(await again.text()).toBe('for Bearer ann #2')
      expect(await (await as('/r/auth', 'bob')).text()).toBe('for Bearer bob #3')
      // An anonymous response is stored, and served to anonymous requests only.
      expect(await (await as('/r/auth')).text()).toBe('for nobody #4')
      expect(await (await as('/r/auth')).text()).toBe('for nobody #4')
      expect(await (await as('/r/auth', 'ann')).text()).toBe('for Bearer ann #5')
      expect(app.runs['/r/auth']).toBe(5)
    })

    it('unless the response says public, s-maxage or must-revalidate', async () => {
      for (const path of ['/r/auth-public', '/r/auth-s-maxage', '/r/auth-revalidate']) {
        expect(await (await as(path, 'ann')).text(), path).toBe('for Bearer ann #1')
        const other = await as(path, 'bob')
        expect(other.headers.get('x-cache'), path).toBe('HIT')
        expect(await other.text(), path).toBe('for Bearer ann #1')
        expect(app.runs[path], path).toBe(1)
      }
    })

    it('or the route opts in with cacheAuthorized', async () => {
      expect(await (await as('/r/auth-opt-in', 'ann')).text()).toBe('for Bearer ann #1')
      expect(await (await as('/r/auth-opt-in', 'bob')).text()).toBe('for Bearer ann #1')
      expect(app.runs['/r/auth-opt-in']).toBe(1)
    })
  })

  describe('Vary', () => {
    it('a response with Vary: * is never stored', async () => {
      expect((await get('/r/vary-star')).headers.get('x-cache')).toBe('MISS')
      const again = await get('/r/vary-star')
      expect(again.headers.get('x-cache')).toBe('MISS')
      expect(await again.text()).toBe('any #2')
      expect(await cache.has('view//r/vary-star')).toBe(false)
    })

    it('the request headers a stored response names in Vary are part of its key: no gzip for a client that did not ask', async () => {
      const gzip = { 'accept-encoding': 'gzip' }
      const identity = { 'accept-encoding': 'identity' }
      const first = await rawGet(app.url, '/r/gzip', gzip)
      expect(first.headers['content-encoding']).toBe('gzip')
      const plainFirst = await rawGet(app.url, '/r/gzip', identity)
      expect(plainFirst.headers['content-encoding']).toBeUndefined()
      expect(plainFirst.body).toBe('plain #2')
      const gzipAgain = await rawGet(app.url, '/r/gzip', gzip)
      expect(gzipAgain.headers['x-cache']).toBe('HIT')
      expect(gzipAgain.headers['content-encoding']).toBe('gzip')
      const plainAgain = await rawGet(app.url, '/r/gzip', identity)
      expect(plainAgain.headers['x-cache']).toBe('HIT')
      expect(plainAgain.headers['content-encoding']).toBeUndefined()
      expect(plainAgain.body).toBe('plain #2')
      // No Accept-Encoding at all is a third request header value, a third entry.
      const none = await rawGet(app.url, '/r/gzip')
      expect(none.headers['content-encoding']).toBeUndefined()
      expect(none.body).toBe('plain #3')
      expect(app.runs['/r/gzip']).toBe(3)
    })

    it('deleteCached removes every variant; a variant stored before is never served again', async () => {
      const { deleteCached } = await import('../../src/http/common.js')
      const before = app.runs['/r/gzip'] ?? 0
      await rawGet(app.url, '/r/gzip', { 'accept-encoding': 'identity' })
      expect(app.runs['/r/gzip']).toBe(before)
      expect(await deleteCached('/r/gzip', undefined, { cache })).toBe(true)
      expect((await rawGet(app.url, '/r/gzip', { 'accept-encoding': 'gzip' })).headers['x-cache']).toBe('MISS')
      const plainAfter = await rawGet(app.url, '/r/gzip', { 'accept-encoding': 'identity' })
      expect(plainAfter.headers['x-cache']).toBe('MISS')
      expect(plainAfter.body).toBe(`plain #${before + 2}`)
    })

    it('the vary option and the response Vary add up', async () => {
      const ask = (lang: string, tenant: string) => rawGet(app.url, '/r/vary-both', { 'accept-language': lang, 'x-tenant': tenant })
      expect((await ask('en', 'a')).body).toBe('en a #1')
      expect((await ask('en', 'b')).body).toBe('en b #2')
      expect((await ask('fr', 'a')).body).toBe('fr a #3')
      expect((await ask('en', 'a')).body).toBe('en a #1')
      expect((await ask('en', 'b')).body).toBe('en b #2')
      expect(app.runs['/r/vary-both']).toBe(3)
    })
  })

  it('a response served from the cache carries Age, the seconds since it was stored', async () => {
    const first = await get('/r/age')
    expect(first.headers.get('age')).toBeNull()
    expect((await get('/r/age')).headers.get('age')).toMatch(/^[01]$/)
    await sleep(1100)
    const later = await get('/r/age')
    expect(later.headers.get('x-cache')).toBe('HIT')
    expect(Number(later.headers.get('age'))).toBeGreaterThanOrEqual(1)
    // A response that came with an Age keeps counting from it.
    await get('/r/auto?cc=max-age%3D600&age=100')
    expect(Number((await get('/r/auto?cc=max-age%3D600&age=100')).headers.get('age'))).toBeGreaterThanOrEqual(100)
  })

  it('a HEAD miss runs the handler and stores nothing; the GET after it fills the entry', async () => {
    const head = await get('/r/head', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await cache.has('view//r/head')).toBe(false)
    expect((await get('/r/head')).headers.get('x-cache')).toBe('MISS')
    expect((await get('/r/head', { method: 'HEAD' })).headers.get('x-cache')).toBe('HIT')
  })

  describe('validation', () => {
    const LATER = 'Thu, 22 Oct 2015 07:28:00 GMT'
    const EARLIER = 'Tue, 20 Oct 2015 07:28:00 GMT'
    const ask = (headers: Record<string, string>) => get('/r/modified', { headers })

    it('If-Modified-Since no earlier than the stored Last-Modified answers 304 with the validators and Cache-Control', async () => {
      expect((await get('/r/modified')).status).toBe(200)
      for (const since of [LAST_MODIFIED, LATER]) {
        const res = await ask({ 'if-modified-since': since })
        expect(res.status, since).toBe(304)
        expect(res.headers.get('x-cache')).toBe('HIT')
        expect(res.headers.get('etag')).toBe('"m1"')
        expect(res.headers.get('last-modified')).toBe(LAST_MODIFIED)
        expect(res.headers.get('cache-control')).toBe('public, max-age=60')
        expect((await res.arrayBuffer()).byteLength).toBe(0)
      }
      for (const since of [EARLIER, 'not a date']) {
        const res = await ask({ 'if-modified-since': since })
        expect(res.status, since).toBe(200)
        expect(await res.text()).toBe('modified #1')
      }
      expect(app.runs['/r/modified']).toBe(1)
    })

    it('If-None-Match takes precedence over If-Modified-Since', async () => {
      const other = await ask({ 'if-none-match': '"other"', 'if-modified-since': LATER })
      expect(other.status).toBe(200)
      expect(await other.text()).toBe('modified #1')
      const same = await ask({ 'if-none-match': '"m1"', 'if-modified-since': EARLIER })
      expect(same.status).toBe(304)
      expect(same.headers.get('cache-control')).toBe('public, max-age=60')
      expect(app.runs['/r/modified']).toBe(1)
    })
  })

  describe("ttl: 'auto', the response's own freshness", () => {
    const keyOf = (query: Record<string, string>) => httpCacheKey({ path: '/r/auto', query })
    const fill = async (query: Record<string, string>) => {
      await get(`/r/auto?${new URLSearchParams(query)}`)
      return cache.ttl(keyOf(query))
    }

    it('s-maxage, else max-age, else Expires set the TTL, less the Age it came with', async () => {
      const maxAge = await fill({ cc: 'public, max-age=120' })
      expect(maxAge).toBeGreaterThan(110_000)
      expect(maxAge).toBeLessThanOrEqual(120_000)
      const shared = await fill({ cc: 's-maxage=30, max-age=120' })
      expect(shared).toBeGreaterThan(20_000)
      expect(shared).toBeLessThanOrEqual(30_000)
      const expires = await fill({ expires: new Date(Date.now() + 60_000).toUTCString() })
      expect(expires).toBeGreaterThan(50_000)
      expect(expires).toBeLessThanOrEqual(60_000)
      const aged = await fill({ cc: 'max-age=120', age: '100' })
      expect(aged).toBeGreaterThan(10_000)
      expect(aged).toBeLessThanOrEqual(20_000)
    })

    it('no-cache, max-age=0, an Expires in the past or invalid, or an Age beyond max-age store nothing', async () => {
      const stale: Record<string, string>[] = [{ cc: 'no-cache' }, { cc: 'public, no-cache, max-age=60' }, { cc: 'max-age=0' }, { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }, { expires: '0' }, { cc: 'max-age=60', age: '61' }]
      for (const query of stale) {
        await get(`/r/auto?${new URLSearchParams(query)}`)
        const again = await get(`/r/auto?${new URLSearchParams(query)}`)
        expect(again.headers.get('x-cache'), JSON.stringify(query)).toBe('MISS')
        expect(await cache.has(keyOf(query)), JSON.stringify(query)).toBe(false)
      }
    })

    it("a response that says nothing gets the cache's defaultTtl", async () => {
      await get('/r/auto?plain=1')
      expect((await get('/r/auto?plain=1')).headers.get('x-cache')).toBe('HIT')
    })
  })

  it('a 5xx is never stored, whatever responseFilter says; other methods never read or fill', async () => {
    for (const status of ['500', '503']) {
      await get(`/r/error?status=${status}`)
      const again = await get(`/r/error?status=${status}`)
      expect(again.status).toBe(Number(status))
      expect(again.headers.get('x-cache')).toBe('MISS')
    }
    expect(app.runs['/r/error']).toBe(4)
    // A 404 is stored here: the filter says so.
    await get('/r/error?status=404')
    expect((await get('/r/error?status=404')).headers.get('x-cache')).toBe('HIT')
    // The rule routes take every method of RULE_METHODS through the same middleware.
    const before = app.runs['/r/error'] ?? 0
    for (const method of RULE_METHODS.filter((m) => m !== 'GET')) {
      const res = await get('/r/error?status=404', { method })
      expect(res.status, method).toBe(404)
      expect(res.headers.get('x-cache'), method).not.toBe('HIT')
    }
    expect(app.runs['/r/error']).toBe(before + RULE_METHODS.length - 1)
    expect((await get('/r/error?status=404')).headers.get('x-cache')).toBe('HIT')
  })

  describe('one handler run per stampede', () => {
    it('20 concurrent identical misses run the handler once; every client gets the body', async () => {
      const answers = await stampede(20, () => get('/r/slow'))
      expect(app.runs['/r/slow']).toBe(1)
      expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 20 }, () => 'slow #1'))
      expect(answers.filter((a) => a.xCache === 'MISS')).toHaveLength(1)
    })

    it('the control: with singleFlight: false they each run it', async () => {
      await stampede(20, () => get('/r/slow-off'))
      expect(app.runs['/r/slow-off']).toBeGreaterThan(1)
    })

    it('a waiter whose leader set a cookie or said private runs its own handler and never gets the leader response', async () => {
      const cookies = await stampede(20, () => get('/r/slow-cookie'))
      expect(app.runs['/r/slow-cookie']).toBe(20)
      for (const answer of cookies) expect(answer.cookie).toBe(`sid=${answer.body.replace('cookie #', '')}`)
      expect(new Set(cookies.map((a) => a.body)).size).toBe(20)
      const privates = await stampede(20, () => get('/r/slow-private'))
      expect(app.runs['/r/slow-private']).toBe(20)
      expect(new Set(privates.map((a) => a.body)).size).toBe(20)
    })

    it('a handler that throws ends its flight: nothing stored, every waiter runs its own handler at once', async () => {
      const started = Date.now()
      const answers = await stampede(5, () => get('/r/slow-throw'))
      expect(answers.map((a) => a.status)).toEqual([500, 500, 500, 500, 500])
      expect(app.runs['/r/slow-throw']).toBe(5)
      expect((await get('/r/slow-throw')).status).toBe(500)
      expect(app.runs['/r/slow-throw']).toBe(6)
      // Nobody waited out singleFlight's 60 s `wait`.
      expect(Date.now() - started).toBeLessThan(10_000)
    })

    it("a tagged response whose tag was invalidated while its handler ran is stored as stale: its tags' versions were read before", async () => {
      const running = get('/r/slow-tagged-a')
      // Once its handler runs (its versions were read just before), and while it still does.
      while (runsOf('/r/slow-tagged-a') !== 1) await sleep(10)
      await cache.invalidateTags(['slow-a'])
      expect(await (await running).text()).toBe('tagged-a #1')
      // Read at store time, the versions would be the new ones and this a hit of the response built before.
      expect(await (await get('/r/slow-tagged-a')).text()).toBe('tagged-a #2')
      expect(await (await get('/r/slow-tagged-a')).text()).toBe('tagged-a #2')
    })

    it('a request after an invalidation of its tags does not wait for a handler that started before it', async () => {
      let leaderDone = false
      const leader = get('/r/slow-tagged-b').then(async (res) => {
        leaderDone = true
        return res.text()
      })
      while (runsOf('/r/slow-tagged-b') !== 1) await sleep(10)
      await cache.invalidateTags(['slow-b'])
      const after = get('/r/slow-tagged-b').then((res) => res.text())
      // Its own handler starts while the leader's still runs; had it joined the leader's flight, it would
      // start only after the leader's ended (its stored response stale by then).
      while (runsOf('/r/slow-tagged-b') !== 2 && !leaderDone) await sleep(20)
      expect(leaderDone).toBe(false)
      expect([await leader, await after]).toEqual(['tagged-b #1', 'tagged-b #2'])
    })

    it("a flight lasts at most singleFlight's wait: a handler slower than that no longer holds its waiters", async () => {
      const leader = get('/r/slow-wait')
      await sleep(50)
      // Were they held until the leader's handler ended (3 s), they would be served its stored response and
      // the handler would have run once; let go at 200 ms, each runs its own. (Two bounds let them go: a
      // waiter's own wait, and the leader's flight ending at `wait`; with both taken out this fails, 1 run.)
      const waiters = await stampede(3, () => get('/r/slow-wait'))
      expect((await leader).status).toBe(200)
      expect(waiters.map((a) => a.status)).toEqual([200, 200, 200])
      expect(app.runs['/r/slow-wait']).toBe(4)
      // The responses that came late were still stored: the next request is a hit.
      expect(await (await get('/r/slow-wait')).text()).toMatch(/^slow-wait #[1-4]$/)
      expect(app.runs['/r/slow-wait']).toBe(4)
    })

    it('a waiter whose leader failed runs its own handler: only the leader client gets the error', async () => {
      const answers = await stampede(20, () => get('/r/slow-error'))
      expect(answers.filter((a) => a.status === 500).map((a) => a.body)).toEqual(['failed #1'])
      expect(answers.filter((a) => a.status === 200)).toHaveLength(19)
      expect(app.runs['/r/slow-error']).toBeGreaterThan(1)
    })
  })
}
