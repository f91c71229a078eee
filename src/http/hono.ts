/**
 * Cached responses for Hono: `app.get('/x', cached({ ttl: '1m' }), handler)`; server-side sessions:
 * `app.use(session({ secret }))`.
 * @module cachekit/hono
 */
import type { Context, MiddlewareHandler } from 'hono'
import { type CachedOptions, type CachedResponse, headersMayStore, mayStore, NOT_MODIFIED_HEADERS, notModified, requestKey, resolveCachedOptions, storableHeaders, storeLater } from './common.js'
import { requestTargetOf } from './keys.js'

export { deleteCached, type CachedOptions, type CachedResponse, type DeleteCachedOptions } from './common.js'
export { canonicalQuery, httpCacheKey, requestTargetKey, type HttpKeyParts, type RequestTargetKeyOptions } from './keys.js'
export { session, type Session, type SessionCookieOptions, type SessionEnv, type SessionOptions } from '../session/hono.js'

/**
 * A middleware that caches the handler's response (status, headers, body) and serves it to later requests
 * without running the handler. Only `GET` responses with status 200 are stored by default, never one with
 * `Set-Cookie` or `Cache-Control: private`/`no-store`; a `HEAD` request is served from the `GET` entry.
 * Works on every runtime Hono runs on whose cache backend is reachable (Node: `@hono/node-server`).
 *
 * @example app.get('/report', cached({ ttl: '5m', xCache: true }), (c) => c.json(build()))
 * @throws {CacheConfigError} for an unknown or invalid option (when the app is set up, not per request).
 */
export function cached(options: CachedOptions<Context> = {}): MiddlewareHandler {
  const opts = resolveCachedOptions(options, 'cached() (cachekit/hono)')
  return async (c, next) => {
    const method = c.req.method
    if ((method !== 'GET' && method !== 'HEAD') || (await opts.unless?.(c)) === true) return next()
    const cache = opts.cache()
    // The path Hono's router read, as text: parsing `c.req.url` again with `new URL()` would resolve the `..`
    // a runtime may have left in it (and cost a parse per request).
    const key = requestKey(opts, requestTargetOf(c.req.url), (name) => c.req.header(name))
    if ((await opts.forcedUpdate?.(c)) !== true) {
      const hit = await cache.get<CachedResponse>(key)
      if (hit !== undefined) {
        const headers = new Headers()
        const unchanged = notModified(hit, c.req.header('if-none-match'))
        for (const [name, value] of hit.headers) if (!unchanged || NOT_MODIFIED_HEADERS.has(name)) headers.append(name, value)
        if (opts.xCache) headers.set('X-Cache', 'HIT')
        if (unchanged) return new Response(null, { status: 304, headers })
        if (!headers.has('content-length')) headers.set('content-length', String(hit.body.byteLength))
        return new Response(method === 'HEAD' ? null : (hit.body as Uint8Array<ArrayBuffer>), { status: hit.status, headers })
      }
    }
    const store = method === 'GET' ? await storeLater(opts, cache, key, c) : undefined
    await next()
    // Hono runs the GET handler for a HEAD request and drops the body afterwards; store from GET only, as
    // Express does, so both behave alike.
    if (method === 'GET') {
      const res = c.res
      const headers = storableHeaders(res.headers)
      // Read the body only for a response that may be stored: never a stream or a response with a cookie.
      if (headersMayStore(headers) && (options.responseFilter !== undefined || res.status === 200)) {
        const response: CachedResponse = { status: res.status, headers, body: new Uint8Array(await res.clone().arrayBuffer()) }
        if (mayStore(response, opts.responseFilter)) await store?.(response)
      }
    }
    if (opts.xCache) c.header('X-Cache', 'MISS')
  }
}
