/**
 * Cached responses for Express (4 and 5): `app.get('/x', cached({ ttl: '1m' }), handler)`.
 * @module cachekit/express
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { type CachedOptions, type CachedResponse, headersMayStore, mayStore, NOT_MODIFIED_HEADERS, notModified, requestKey, resolveCachedOptions, storableHeaders, storeLater } from './common.js'

export { deleteCached, type CachedOptions, type CachedResponse, type DeleteCachedOptions } from './common.js'
export { canonicalQuery, httpCacheKey, requestTargetKey, type HttpKeyParts, type RequestTargetKeyOptions } from './keys.js'

/**
 * A middleware that caches the handler's response (status, headers, body) and serves it to later requests
 * without running the handler. Only `GET` responses with status 200 are stored by default, never one with
 * `Set-Cookie` or `Cache-Control: private`/`no-store`; a `HEAD` request is served from the `GET` entry.
 *
 * @example app.get('/report', cached({ ttl: '5m', xCache: true }), (req, res) => res.json(build()))
 * @throws {CacheConfigError} for an unknown or invalid option (when the app is set up, not per request).
 */
export function cached(options: CachedOptions<Request> = {}): RequestHandler {
  const opts = resolveCachedOptions(options, 'cached() (cachekit/express)')
  return (req: Request, res: Response, next: NextFunction) => {
    handle(req, res, next).catch(next)
  }

  async function handle(req: Request, res: Response, next: NextFunction): Promise<void> {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || (await opts.unless?.(req)) === true) return next()
    const cache = opts.cache()
    // The request-target as received, which the router matched: `new URL()` would resolve `..` and
    // `%2e%2e` and read `//host/x` as a host, and so store one route's page under another's key.
    const key = requestKey(opts, req.originalUrl, (name) => req.get(name))
    if ((await opts.forcedUpdate?.(req)) !== true) {
      const hit = await cache.get<CachedResponse>(key)
      if (hit !== undefined) return send(res, hit, req.method === 'HEAD', opts.xCache, notModified(hit, req.get('if-none-match')))
    }
    if (opts.xCache) res.setHeader('X-Cache', 'MISS')
    // A HEAD response has no body to store (Express skips it), so only GET fills the cache.
    if (req.method === 'GET') {
      const store = await storeLater(opts, cache, key, req)
      capture(res, async (response) => {
        if (mayStore(response, opts.responseFilter)) await store(response)
      })
    }
    next()
  }
}

function send(res: Response, hit: CachedResponse, head: boolean, xCache: boolean, unchanged: boolean): void {
  res.status(unchanged ? 304 : hit.status)
  const grouped = new Map<string, string[]>()
  for (const [name, value] of hit.headers) {
    if (!unchanged || NOT_MODIFIED_HEADERS.has(name)) grouped.set(name, [...(grouped.get(name) ?? []), value])
  }
  for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? (values[0] as string) : values)
  if (xCache) res.setHeader('X-Cache', 'HIT')
  if (unchanged) {
    res.end()
    return
  }
  const body = Buffer.from(hit.body.buffer, hit.body.byteOffset, hit.body.byteLength)
  if (!res.hasHeader('content-length')) res.setHeader('Content-Length', body.byteLength)
  res.end(head ? undefined : body)
}

type Chunk = string | Uint8Array

function headerList(res: Response): [string, string][] {
  const headers: [string, string][] = []
  for (const [name, value] of Object.entries(res.getHeaders())) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) headers.push([name, String(v)])
  }
  return headers
}

/**
 * Collect what the handler writes and, when it ends the response, store it before the last bytes leave:
 * the next request then finds the entry (one cache write of latency, on misses only).
 */
function capture(res: Response, store: (response: CachedResponse) => Promise<void>): void {
  const chunks: Buffer[] = []
  const toBuffer = (chunk: Chunk, encoding?: BufferEncoding): Buffer =>
    typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)

  const writeHead = res.writeHead
  // Headers given to writeHead bypass getHeaders(): move them into setHeader so they are seen and stored.
  res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
    const message = typeof rest[0] === 'string' ? rest[0] : undefined
    const headers = (message === undefined ? rest[0] : rest[1]) as Record<string, string | string[] | number> | (string | string[])[] | undefined
    if (headers !== undefined && !this.headersSent) {
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2) this.appendHeader(String(headers[i]), headers[i + 1] as string | string[])
      } else {
        for (const [name, value] of Object.entries(headers)) this.setHeader(name, value)
      }
    }
    return (writeHead as (...a: unknown[]) => Response).apply(this, message === undefined ? [status] : [status, message])
  } as Response['writeHead']

  // Decided at the first write, when the headers are known: a response that will not be stored (an event
  // stream, a cookie, no-store) is passed through without keeping its bytes.
  let collecting: boolean | undefined
  const write = res.write
  res.write = function (this: Response, chunk: Chunk, ...rest: unknown[]) {
    collecting ??= headersMayStore(headerList(this))
    if (collecting && chunk !== undefined && chunk !== null) chunks.push(toBuffer(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : undefined))
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest)
  } as Response['write']

  const end = res.end
  res.end = function (this: Response, ...args: unknown[]) {
    const chunk = typeof args[0] === 'function' ? undefined : (args[0] as Chunk | undefined | null)
    if (chunk !== undefined && chunk !== null) chunks.push(toBuffer(chunk, typeof args[1] === 'string' ? (args[1] as BufferEncoding) : undefined))
    res.end = end
    if (collecting === false) return (end as (...a: unknown[]) => Response).apply(this, args)
    const headers = headerList(this)
    const body = Buffer.concat(chunks)
    const response: CachedResponse = { status: this.statusCode, headers: storableHeaders(headers), body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) }
    // A failed store is the cache's concern (fail-open emits 'error'); the response goes out regardless.
    store(response)
      .catch(() => {})
      .finally(() => (end as (...a: unknown[]) => void).apply(this, args))
    return this
  } as Response['end']
}
