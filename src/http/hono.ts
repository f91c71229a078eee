/**
 * Cached responses for Hono: `app.get('/x', cached({ ttl: '1m' }), handler)`; server-side sessions:
 * `app.use(session({ secret }))`.
 * @module cachekit/hono
 */
import type { Context, MiddlewareHandler } from 'hono'
import { type CachedOptions, resolveCachedOptions } from './common.js'
import { decide } from './flow.js'
import { requestTargetOf } from './keys.js'

export { deleteCached, type CachedOptions, type CachedResponse, type DeleteCachedOptions } from './common.js'
export { canonicalQuery, httpCacheKey, requestTargetKey, type HttpKeyParts, type RequestTargetKeyOptions } from './keys.js'
export { session, type Session, type SessionCookieOptions, type SessionEnv, type SessionOptions } from '../session/hono.js'

/**
 * A middleware that caches the handler's response (status, headers, body) and serves it to later requests
 * without running the handler, by HTTP's caching rules (see docs/http.md): only `GET` responses with
 * status 200 are stored by default, never one with `Set-Cookie`, `Cache-Control: private`/`no-store`,
 * `Vary: *` or a 5xx status; a `HEAD` request is served from the `GET` entry; concurrent misses run the
 * handler once. Works on every runtime Hono runs on whose cache backend is reachable (Node:
 * `@hono/node-server`).
 *
 * @example app.get('/report', cached({ ttl: '5m', xCache: true }), (c) => c.json(build()))
 * @throws {CacheConfigError} for an unknown or invalid option (when the app is set up, not per request).
 */
export function cached(options: CachedOptions<Context> = {}): MiddlewareHandler {
  const opts = resolveCachedOptions(options, 'cached() (cachekit/hono)')
  return async (c, next) => {
    // The path Hono's router read, as text: parsing `c.req.url` again with `new URL()` would resolve the `..`
    // a runtime may have left in it (and cost a parse per request).
    const decision = await decide(opts, c, { method: c.req.method, target: requestTargetOf(c.req.url), header: (name) => c.req.header(name) })
    if (decision.kind === 'pass') return next()
    if (decision.kind === 'serve') {
      const { status, headers, body, head } = decision.response
      // A plain object, which @hono/node-server writes as it is (an array or a Headers is copied first).
      const record: Record<string, string> = {}
      for (const [name, value] of headers) record[name] = record[name] === undefined ? value : `${record[name]}, ${value}`
      return new Response(head ? null : (body as Uint8Array<ArrayBuffer> | null), { status, headers: record })
    }
    const { fill } = decision
    try {
      await next()
      // Hono runs the GET handler for a HEAD request and drops the body afterwards; only a GET fills.
      const res = c.res
      const headers: [string, string][] = [...res.headers]
      // Read the body only for a response that may be stored: never a stream or a response with a cookie.
      if (fill.wants(res.status, headers)) await fill.store({ status: res.status, headers, body: new Uint8Array(await res.clone().arrayBuffer()) })
    } finally {
      fill.done()
    }
    if (opts.xCache) c.header('X-Cache', 'MISS')
  }
}
