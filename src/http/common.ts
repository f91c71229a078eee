import type { Cache } from '../cache.js'
import { checkOptionNames } from '../config/suggest.js'
import { durationOption, type Duration, type Milliseconds } from '../duration.js'
import { LEASE_DEFAULTS, type LeaseOptions } from '../getorset.js'
import { CacheConfigError } from '../errors.js'
import { cache as singleton } from '../singleton.js'
import { checkTags } from '../tags.js'
import { HTTP_KEY_PREFIX, httpCacheKey, requestTargetKey } from './keys.js'

/** A response as it is cached: what a later request gets back, byte for byte. */
export interface CachedResponse {
  status: number
  /** Header names in lower case, in order; a repeated header appears once per value. */
  headers: [string, string][]
  body: Uint8Array
}

/** Options of `cached(...)`, the same for Express, Hono and Fastify; `Req` is the framework's request (or context). */
export interface CachedOptions<Req> {
  /**
   * How long a response is kept. `'auto'`: as long as the response itself says it is fresh for a shared
   * cache (RFC 9111): `Cache-Control: s-maxage`, else `max-age`, else `Expires`, less any `Age` it came
   * with; a response that says `no-cache`, or is no longer fresh, is not stored; one that says nothing gets
   * the cache's `defaultTtl`.
   * @default the cache's `defaultTtl`
   */
  ttl?: Duration | 'auto'
  /** The cache to use. @default the `cache` singleton */
  cache?: Cache
  /** Put before the request path in the key. @default 'view/' */
  keyPrefix?: string
  /**
   * Whether the query string is part of the key (sorted, then hashed: `?a=1&b=2` and `?b=2&a=1` share an
   * entry). Unlike Flask-Caching (whose default ignores the query), on by default: a query that changes the
   * response must never be served another query's entry.
   * @default true
   */
  queryString?: boolean
  /** When it returns true, the request bypasses the cache (not read, not stored). */
  unless?: (req: Req) => boolean | Promise<boolean>
  /** When it returns true, the handler runs and its response replaces the cached one. */
  forcedUpdate?: (req: Req) => boolean | Promise<boolean>
  /**
   * Which responses to store. Whatever it says, a `5xx`, a response with `Set-Cookie`, `Cache-Control:
   * private` or `no-store`, or `Vary: *` is never stored, and only `GET` requests store (a `HEAD` is served
   * from `GET`'s entry).
   * @default only status 200
   */
  responseFilter?: (response: CachedResponse) => boolean
  /**
   * Request headers the response depends on (`accept-language`): one entry per combination of values.
   * The headers a response names in its own `Vary` are added to its key without being listed here.
   */
  vary?: readonly string[]
  /** Add `X-Cache: HIT` or `X-Cache: MISS` to responses. @default false */
  xCache?: boolean
  /**
   * Cache the responses to requests that carry `Authorization` like any other: the route answers every
   * user alike. Without it (RFC 9111 3.5) such a request is served from the cache, and its response stored,
   * only if that response says `Cache-Control: public`, `s-maxage` or `must-revalidate`.
   * @default false
   */
  cacheAuthorized?: boolean
  /**
   * One handler run per stampede: concurrent misses of one entry wait for the first request's handler
   * and are served its stored response; across processes on a shared, atomic backend (SQLite, filesystem,
   * Redis, memcached, PostgreSQL, MySQL), by the same lease as `getOrSet` (`ttl`: how long the lease outlives a holder
   * that died; `wait`: the longest a request waits before it runs the handler itself). A waiter whose
   * first request's response is not stored (a cookie, `private`, an error) runs its own handler.
   * @default true ({ ttl: '10s', wait: '60s' })
   */
  singleFlight?: boolean | LeaseOptions
  /**
   * Tags of a stored response, to invalidate it with `cache.invalidateTags(tags)`: a list, or a function of
   * the request, e.g. `(req) => [\`org:${req.params.id}\`]`. Their versions are read before the handler runs,
   * so a response built across an invalidation is stored as already stale (see docs/tags.md).
   * @default no tags
   */
  tags?: readonly string[] | ((req: Req) => readonly string[])
}

/** The options after the checks done once, when the middleware is built. @internal */
export interface ResolvedCached<Req> extends Required<Pick<CachedOptions<Req>, 'keyPrefix' | 'queryString' | 'xCache' | 'responseFilter' | 'cacheAuthorized'>> {
  ttl: Duration | 'auto' | undefined
  cache: () => Cache
  unless: CachedOptions<Req>['unless']
  forcedUpdate: CachedOptions<Req>['forcedUpdate']
  /** Whether `responseFilter` was given (else only a 200 is stored, which is known before the body is read). */
  customFilter: boolean
  /** Lower case, in the order given. */
  vary: string[]
  singleFlight: { ttl: Milliseconds; wait: Milliseconds } | false
  tags: CachedOptions<Req>['tags']
}

/** The names of `cached(...)`'s options. @internal */
export const CACHED_OPTIONS = ['ttl', 'cache', 'keyPrefix', 'queryString', 'unless', 'forcedUpdate', 'responseFilter', 'vary', 'xCache', 'cacheAuthorized', 'singleFlight', 'tags']

/** Check `cached(...)`'s options once, at config time. @throws {CacheConfigError} naming the option. */
export function resolveCachedOptions<Req>(options: CachedOptions<Req>, where: string): ResolvedCached<Req> {
  if (typeof options !== 'object' || options === null) throw new CacheConfigError(`${where}: the options must be an object.`)
  checkOptionNames(options, CACHED_OPTIONS, where, (message, option) => new CacheConfigError(message, { option }))
  if (options.ttl !== undefined && options.ttl !== 'auto') durationOption(options.ttl, 'ttl', { where })
  for (const name of ['unless', 'forcedUpdate', 'responseFilter'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw new CacheConfigError(`${where}: \`${name}\` must be a function.`, { option: name })
  }
  if (options.vary !== undefined && (!Array.isArray(options.vary) || options.vary.some((h) => typeof h !== 'string' || h === ''))) {
    throw new CacheConfigError(`${where}: \`vary\` must be an array of header names.`, { option: 'vary' })
  }
  if (options.cacheAuthorized !== undefined && typeof options.cacheAuthorized !== 'boolean') {
    throw new CacheConfigError(`${where}: \`cacheAuthorized\` must be true or false.`, { option: 'cacheAuthorized' })
  }
  if (options.tags !== undefined && typeof options.tags !== 'function') {
    try {
      checkTags(options.tags, where, undefined)
    } catch (error) {
      throw new CacheConfigError(`${(error as Error).message.replace(`${where}: `, `${where}: \`tags\`: `)}`, { option: 'tags', cause: error })
    }
  }
  const chosen = options.cache
  return {
    ttl: options.ttl,
    cache: () => chosen ?? singleton,
    keyPrefix: options.keyPrefix ?? HTTP_KEY_PREFIX,
    queryString: options.queryString ?? true,
    xCache: options.xCache ?? false,
    responseFilter: options.responseFilter ?? ((r) => r.status === 200),
    customFilter: options.responseFilter !== undefined,
    unless: options.unless,
    forcedUpdate: options.forcedUpdate,
    vary: (options.vary ?? []).map((h) => h.toLowerCase()),
    cacheAuthorized: options.cacheAuthorized ?? false,
    singleFlight: singleFlightOption(options.singleFlight, where),
    tags: options.tags,
  }
}

function singleFlightOption(value: CachedOptions<unknown>['singleFlight'], where: string): ResolvedCached<unknown>['singleFlight'] {
  if (value === undefined || value === true) return { ...LEASE_DEFAULTS }
  if (value === false) return false
  if (typeof value !== 'object' || value === null) throw new CacheConfigError(`${where}: \`singleFlight\` must be true, false or { ttl, wait }.`, { option: 'singleFlight' })
  checkOptionNames(value, ['ttl', 'wait'], `${where}, \`singleFlight\``, (message) => new CacheConfigError(message, { option: 'singleFlight' }))
  return {
    ttl: durationOption(value.ttl, 'singleFlight.ttl', { where, fallback: LEASE_DEFAULTS.ttl, notZero: 'the lease of a holder that died would never expire' }),
    wait: durationOption(value.wait, 'singleFlight.wait', { where, fallback: LEASE_DEFAULTS.wait }),
  }
}

/**
 * Headers that describe one connection or one delivery, not the resource: never stored. `Age` is
 * computed when the entry is served (from the time it was stored, and the `Age` the response came with).
 */
const NOT_STORED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'date', 'age', 'x-cache'])

/** The headers to store, in order, lower-cased. */
export function storableHeaders(headers: Iterable<readonly [string, string]>): [string, string][] {
  const out: [string, string][] = []
  for (const [name, value] of headers) {
    const lower = name.toLowerCase()
    if (!NOT_STORED.has(lower)) out.push([lower, value])
  }
  return out
}

/**
 * Whether a response may be stored: never a `5xx`, never with `Set-Cookie` (one user's session must not
 * reach another), `Cache-Control: private` or `no-store`, or `Vary: *`; then whatever `responseFilter` says.
 */
export function mayStore(response: CachedResponse, filter: (r: CachedResponse) => boolean): boolean {
  return response.status < 500 && headersMayStore(response.headers) && filter(response)
}

/**
 * The part of {@link mayStore} that needs no body: checked before a body is read, so that a response that
 * will not be stored (a cookie, `no-store`, an event stream) is never buffered. Names in lower case.
 */
export function headersMayStore(headers: CachedResponse['headers']): boolean {
  for (const [name, value] of headers) {
    if (name === 'set-cookie') return false
    if (name === 'cache-control' && /(^|[\s,])(private|no-store)(\s*(=|,|$))/i.test(value)) return false
    if (name === 'content-type' && /^text\/event-stream/i.test(value)) return false
    // `Vary: *`: the response depends on more than the request's headers; no request can be matched to it.
    if (name === 'vary' && value.split(',').some((v) => v.trim() === '*')) return false
  }
  return true
}

/**
 * True if a conditional request already holds the cached response (RFC 9110 13.1): an `If-None-Match`
 * naming its `ETag` (weak comparison), or, only when the request has no `If-None-Match`, an
 * `If-Modified-Since` no earlier than its `Last-Modified`. It is then answered `304 Not Modified` without
 * a body. Only a `2xx` response is answered so.
 */
export function notModified(hit: CachedResponse, ifNoneMatch: string | undefined, ifModifiedSince?: string): boolean {
  if (hit.status < 200 || hit.status > 299) return false
  if (ifNoneMatch !== undefined && ifNoneMatch !== '') {
    const etag = hit.headers.find(([name]) => name === 'etag')?.[1]
    if (etag === undefined) return false
    const weak = (tag: string) => tag.trim().replace(/^W\//, '')
    return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => weak(tag) === weak(etag))
  }
  if (ifModifiedSince === undefined || ifModifiedSince === '') return false
  const lastModified = hit.headers.find(([name]) => name === 'last-modified')?.[1]
  if (lastModified === undefined) return false
  const since = Date.parse(ifModifiedSince)
  const modified = Date.parse(lastModified)
  // An invalid date is ignored (RFC 9110 13.1.3): the full response is sent.
  return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since
}

/** The headers a 304 keeps (RFC 9110 15.4.5): the validators and what caches need. */
export const NOT_MODIFIED_HEADERS = new Set(['etag', 'cache-control', 'content-location', 'expires', 'vary', 'last-modified'])

/**
 * The directives of `Cache-Control` headers (names in lower case; a directive without `=` is `''`; quotes
 * removed). Several headers, or one with commas, add up.
 */
export function cacheControl(headers: CachedResponse['headers']): Map<string, string> {
  const directives = new Map<string, string>()
  for (const [name, value] of headers) {
    if (name !== 'cache-control') continue
    for (const part of value.split(',')) {
      const eq = part.indexOf('=')
      const directive = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase()
      if (directive !== '' && !directives.has(directive)) directives.set(directive, eq === -1 ? '' : part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'))
    }
  }
  return directives
}

/**
 * The key of a request, from its request-target exactly as received (see {@link requestTargetKey}): the
 * text the router matched, never a normalized URL that could name another route. @internal
 */
export function requestKey<Req>(opts: ResolvedCached<Req>, target: string, header: (name: string) => string | undefined): string {
  return requestTargetKey(target, {
    keyPrefix: opts.keyPrefix,
    queryString: opts.queryString,
    vary: opts.vary.length === 0 ? undefined : opts.vary.map((name) => [name, header(name) ?? ''] as const),
  })
}

/** Options of `deleteCached`: the same `cache`, `keyPrefix` and `queryString` the middleware was given. */
export interface DeleteCachedOptions {
  /** @default the `cache` singleton */
  cache?: Cache
  /** @default 'view/' */
  keyPrefix?: string
  /** @default true */
  queryString?: boolean
  /** With a `vary` middleware: the request header values of the entry to remove. */
  headers?: Record<string, string>
}

/**
 * Remove the cached response of `path` (and `query`, if the middleware keys on it). The key holds the path
 * as clients send it, so pass it percent-encoded as on the request line (`/caf%C3%A9`); another spelling
 * of the same route (`/users/7/`, `/users/%37`) is another entry.
 * @example await deleteCached('/users/7')
 * @example await deleteCached('/search', { q: 'cats' }, { cache: pages })
 * @returns true if an entry was removed.
 * @throws {CacheArgumentError} if `path` holds a `?` (pass the query as `query`).
 */
export async function deleteCached(path: string, query?: string | URLSearchParams | Record<string, string | readonly string[]>, options: DeleteCachedOptions = {}): Promise<boolean> {
  const key = httpCacheKey({
    path,
    ...(query === undefined ? {} : { query }),
    keyPrefix: options.keyPrefix ?? HTTP_KEY_PREFIX,
    queryString: options.queryString ?? true,
    vary: Object.entries(options.headers ?? {}).map(([k, v]) => [k, v] as const),
  })
  return (options.cache ?? singleton).delete(key)
}
