import type { Cache } from '../cache.js'
import { checkOptionNames } from '../config/suggest.js'
import { durationOption, type Duration } from '../duration.js'
import { ENGINE } from '../engine.js'
import { CacheConfigError } from '../errors.js'
import { checkTags } from '../tags.js'
import { cache as singleton } from '../singleton.js'
import { HTTP_KEY_PREFIX, httpCacheKey, requestTargetKey } from './keys.js'

/** A response as it is cached: what a later request gets back, byte for byte. */
export interface CachedResponse {
  status: number
  /** Header names in lower case, in order; a repeated header appears once per value. */
  headers: [string, string][]
  body: Uint8Array
}

/** Options of `cached(...)`, the same for Express and Hono; `Req` is the framework's request (or context). */
export interface CachedOptions<Req> {
  /** How long a response is kept. @default the cache's `defaultTtl` */
  ttl?: Duration
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
   * Which responses to store. Whatever it says, a response with `Set-Cookie` or `Cache-Control: private`
   * or `no-store` is never stored, and only `GET` requests store (a `HEAD` is served from `GET`'s entry).
   * @default only status 200
   */
  responseFilter?: (response: CachedResponse) => boolean
  /** Request headers the response depends on (`accept-language`): one entry per combination of values. */
  vary?: readonly string[]
  /** Add `X-Cache: HIT` or `X-Cache: MISS` to responses. @default false */
  xCache?: boolean
  /**
   * Tags of a stored response, to invalidate it with `cache.invalidateTags(tags)`: a list, or a function of
   * the request, e.g. `(req) => [\`org:${req.params.id}\`]`. Their versions are read before the handler runs,
   * so a response built across an invalidation is stored as already stale (see docs/tags.md).
   * @default no tags
   */
  tags?: readonly string[] | ((req: Req) => readonly string[])
}

/** The options after the checks done once, when the middleware is built. @internal */
export interface ResolvedCached<Req> extends Required<Pick<CachedOptions<Req>, 'keyPrefix' | 'queryString' | 'xCache' | 'responseFilter'>> {
  ttl: Duration | undefined
  cache: () => Cache
  unless: CachedOptions<Req>['unless']
  forcedUpdate: CachedOptions<Req>['forcedUpdate']
  vary: string[]
  tags: CachedOptions<Req>['tags']
}

const KNOWN = ['ttl', 'cache', 'keyPrefix', 'queryString', 'unless', 'forcedUpdate', 'responseFilter', 'vary', 'xCache', 'tags']

/** Check `cached(...)`'s options once, at config time. @throws {CacheConfigError} naming the option. */
export function resolveCachedOptions<Req>(options: CachedOptions<Req>, where: string): ResolvedCached<Req> {
  if (typeof options !== 'object' || options === null) throw new CacheConfigError(`${where}: the options must be an object.`)
  checkOptionNames(options, KNOWN, where, (message, option) => new CacheConfigError(message, { option }))
  if (options.ttl !== undefined) durationOption(options.ttl, 'ttl', { where })
  for (const name of ['unless', 'forcedUpdate', 'responseFilter'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw new CacheConfigError(`${where}: \`${name}\` must be a function.`, { option: name })
  }
  if (options.vary !== undefined && (!Array.isArray(options.vary) || options.vary.some((h) => typeof h !== 'string' || h === ''))) {
    throw new CacheConfigError(`${where}: \`vary\` must be an array of header names.`, { option: 'vary' })
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
    unless: options.unless,
    forcedUpdate: options.forcedUpdate,
    vary: (options.vary ?? []).map((h) => h.toLowerCase()),
    tags: options.tags,
  }
}

/**
 * How to store the response of a request that missed, decided before its handler runs: with `tags`, their
 * versions are read now, so that a response built from data an invalidation replaced meanwhile is stored as
 * already stale (the rule of getOrSet, docs/tags.md). @internal
 * @throws {CacheArgumentError} if the `tags` function gives bad tags (naming the tag and the key).
 */
export async function storeLater<Req>(opts: ResolvedCached<Req>, cache: Cache, key: string, req: Req): Promise<(response: CachedResponse) => Promise<void>> {
  const given = opts.tags
  const tags = given === undefined ? [] : checkTags(typeof given === 'function' ? given(req) : given, `cached() of ${JSON.stringify(key)}`, key)
  if (tags.length === 0) return async (response) => void (await cache.set(key, response, opts.ttl))
  const engine = await cache[ENGINE]()
  const { stamp } = await engine.readTagged([], tags, engine.budget())
  return async (response) => {
    // No versions (the backend failed, fail-open): store nothing rather than blind.
    if (stamp !== undefined && (await engine.set(key, response, opts.ttl, engine.budget(), stamp))) engine.record('set', key)
  }
}

/** Headers that describe one connection or one delivery, not the resource: never stored. */
const NOT_STORED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'date', 'x-cache'])

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
 * Whether a response may be stored: never with `Set-Cookie` (one user's session must not reach another),
 * never with `Cache-Control: private` or `no-store`; then whatever `responseFilter` says.
 */
export function mayStore(response: CachedResponse, filter: (r: CachedResponse) => boolean): boolean {
  return headersMayStore(response.headers) && filter(response)
}

/**
 * The part of {@link mayStore} that needs no body: checked before a body is read, so that a response that
 * will not be stored (a cookie, `no-store`, an event stream) is never buffered.
 */
export function headersMayStore(headers: CachedResponse['headers']): boolean {
  for (const [name, value] of headers) {
    if (name === 'set-cookie') return false
    if (name === 'cache-control' && /(^|[\s,])(private|no-store)(\s*(=|,|$))/i.test(value)) return false
    if (name === 'content-type' && /^text\/event-stream/i.test(value)) return false
  }
  return true
}

/**
 * True if a conditional request (`If-None-Match`) already holds the cached response's `ETag`: it is then
 * answered `304 Not Modified` without a body, as the handler's framework would have.
 */
export function notModified(hit: CachedResponse, ifNoneMatch: string | undefined): boolean {
  if (ifNoneMatch === undefined || ifNoneMatch === '') return false
  const etag = hit.headers.find(([name]) => name === 'etag')?.[1]
  if (etag === undefined) return false
  const weak = (tag: string) => tag.trim().replace(/^W\//, '')
  return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => weak(tag) === weak(etag))
}

/** The headers a 304 keeps (RFC 9110 15.4.5): the validators and what caches need. */
export const NOT_MODIFIED_HEADERS = new Set(['etag', 'cache-control', 'content-location', 'expires', 'vary', 'last-modified'])

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
