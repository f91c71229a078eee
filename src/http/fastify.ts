/**
 * Cached responses for Fastify 5: `app.get('/x', { ...cached({ ttl: '1m' }) }, handler)`, or app-wide
 * defaults with `app.register(cachedRoutes, { ttl: '1m' })` and `config: { cached: true }` per route.
 * @module cachekit/fastify
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { type CachedOptions, resolveCachedOptions } from './common.js'
import { decide, type Fill } from './flow.js'

export { deleteCached, type CachedOptions, type CachedResponse, type DeleteCachedOptions } from './common.js'
export { canonicalQuery, httpCacheKey, requestTargetKey, type HttpKeyParts, type RequestTargetKeyOptions } from './keys.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** With {@link cachedRoutes} registered: cache this route (`true`: the plugin's defaults; an object: some of them replaced). */
    cached?: boolean | CachedOptions<FastifyRequest>
  }
}

/** The route hooks of {@link cached}: spread them into a route's options. */
export interface CachedHooks {
  /** Serves a hit (after the route's own `onRequest` to `preValidation` hooks: authentication runs first). */
  preHandler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
  /** Stores the response of a miss, as Fastify is about to send it. */
  onSend: (request: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>
  /** Ends the miss's flight (its waiters go on) once the response has gone. */
  onResponse: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  /** Ends the flight of a miss whose client went away. */
  onRequestAbort: (request: FastifyRequest) => Promise<void>
}

const HOOKS = ['preHandler', 'onSend', 'onResponse', 'onRequestAbort'] as const

/** The bytes of an `onSend` payload: a string, a Buffer, a Node or web stream; `undefined` for anything else. */
async function bytesOf(payload: unknown): Promise<Buffer | undefined> {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8')
  if (Buffer.isBuffer(payload)) return payload
  if (typeof payload !== 'object' || payload === null) return undefined
  if (typeof (payload as NodeJS.ReadableStream).pipe === 'function') {
    const chunks: Buffer[] = []
    for await (const chunk of payload as AsyncIterable<string | Uint8Array>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk))
    return Buffer.concat(chunks)
  }
  if (typeof (payload as ReadableStream).getReader === 'function') return Buffer.from(await new Response(payload as ReadableStream).arrayBuffer())
  return undefined
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * The route hooks that cache the handler's response (status, headers, body) and serve it to later
 * requests without running the handler, by HTTP's caching rules (see docs/http.md): only `GET` responses
 * with status 200 are stored by default, never one with `Set-Cookie`, `Cache-Control: private`/`no-store`,
 * `Vary: *` or a 5xx status; a `HEAD` request (Fastify's own HEAD route) is served from
 * the `GET` entry; concurrent misses run the handler once. A route with hooks of the same names of its own
 * lists both: `preHandler: [auth, hooks.preHandler]`.
 *
 * @example app.get('/report', { ...cached({ ttl: '5m', xCache: true }) }, async () => build())
 * @throws {CacheConfigError} for an unknown or invalid option (when the app is set up, not per request).
 */
export function cached(options: CachedOptions<FastifyRequest> = {}): CachedHooks {
  const opts = resolveCachedOptions(options, 'cached() (cachekit/fastify)')
  const fills = new WeakMap<FastifyRequest, Fill>()
  const end = (request: FastifyRequest) => {
    fills.get(request)?.done()
    fills.delete(request)
  }
  return {
    async preHandler(request, reply) {
      // The request-target as received, which the router matched (never resolved or decoded).
      const decision = await decide(opts, request, { method: request.method, target: request.raw.url ?? request.url, header: (name) => header(request, name) })
      if (decision.kind === 'pass') return
      if (decision.kind === 'fill') {
        fills.set(request, decision.fill)
        // A hijacked reply runs neither onSend nor onResponse: the socket's end still ends the flight.
        reply.raw.once('close', decision.fill.done)
        if (opts.xCache) reply.header('x-cache', 'MISS')
        return
      }
      const { status, headers, body } = decision.response
      reply.code(status)
      const grouped = new Map<string, string[]>()
      for (const [name, value] of headers) grouped.set(name, [...(grouped.get(name) ?? []), value])
      for (const [name, values] of grouped) reply.header(name, values.length === 1 ? (values[0] as string) : values)
      // For HEAD, Fastify's HEAD route sends no body and frames the response from this one.
      return reply.send(body === null ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength))
    },
    async onSend(request, reply, payload) {
      // The fill stays in the map until onResponse (or onRequestAbort) ends it, even if this hook fails.
      const fill = fills.get(request)
      if (fill === undefined) return payload
      const headers: [string, string][] = []
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value === undefined) continue
        for (const v of Array.isArray(value) ? value : [value]) headers.push([name.toLowerCase(), String(v)])
      }
      // A response that will not be stored (an event stream, a cookie, an error) goes out as it is.
      if (!fill.wants(reply.statusCode, headers)) {
        fill.done()
        return payload
      }
      // A stream that may be stored is read whole first, as the Hono middleware does: its bytes are sent then.
      const bytes = await bytesOf(payload)
      if (bytes === undefined) {
        fill.done()
        return payload
      }
      await fill.store({ status: reply.statusCode, headers, body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) }).catch(() => {})
      return bytes
    },
    async onResponse(request) {
      end(request)
    },
    async onRequestAbort(request) {
      end(request)
    },
  }
}

/** Options the plugin receives that are Fastify's own (`app.register(plugin, { prefix })`), not cached()'s. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * The plugin form, for app-wide defaults: `await app.register(cachedRoutes, { cache, ttl: '1m' })`, then
 * every route registered after it with `config: { cached: true }` (or `{ cached: { ttl: '5m' } }`, the
 * defaults with some replaced) gets the hooks of {@link cached}, after its own. Not encapsulated (as
 * `fastify-plugin` would make it, without needing it): it applies to routes of the whole app.
 *
 * @example await app.register(cachedRoutes, { ttl: '1m' }); app.get('/r', { config: { cached: true } }, handler)
 * @throws {CacheConfigError} at `register` for an unknown or invalid option.
 */
export const cachedRoutes: FastifyPluginCallback<CachedOptions<FastifyRequest>> = (app, options, done) => {
  const defaults = Object.fromEntries(Object.entries(options).filter(([name]) => !REGISTER_OPTIONS.has(name))) as CachedOptions<FastifyRequest>
  try {
    resolveCachedOptions(defaults, 'cachedRoutes (cachekit/fastify)')
  } catch (error) {
    // Through `done`: a callback plugin's throw is not Fastify's to catch.
    done(error as Error)
    return
  }
  app.addHook('onRoute', (route: RouteOptions) => {
    const wanted = route.config?.cached
    if (wanted === undefined || wanted === false) return
    const hooks = cached(wanted === true ? defaults : { ...defaults, ...wanted })
    const target = route as unknown as Record<string, unknown>
    for (const name of HOOKS) {
      const own = target[name]
      target[name] = [...(own === undefined ? [] : Array.isArray(own) ? own : [own]), hooks[name]]
    }
  })
  done()
}
// What fastify-plugin sets: the plugin's hook applies outside its own encapsulation context.
Object.assign(cachedRoutes, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'cachekit/fastify' })
