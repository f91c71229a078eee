/**
 * The HTTP middleware tests, shared by Express and Hono: each file builds an app with the same routes
 * (see ROUTES) on a real server listening on a free port, and this suite fetches from it.
 */
import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Cache } from '../../src/cache.js'
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
 */
export interface App {
  url: string
  runs: Runs
  close(): Promise<void>
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
  const headersOf = (res: globalThis.Response) => {
    const h = Object.fromEntries(res.headers)
    // Per delivery, never part of the resource: the date, and the HIT/MISS marker itself.
    delete h.date
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
}
