import { CacheArgumentError } from '../errors.js'
import { sha256 } from '../hash.js'

/** What identifies a cached response. */
export interface HttpKeyParts {
  /**
   * The request path as the client sent it, without the query string (`/users/7`, `/caf%C3%A9`): never
   * resolved (`..`) or decoded, since the router matched that text. It cannot hold a `?`.
   */
  path: string
  /**
   * The query: a string (with or without the leading `?`), a `URLSearchParams` or a record. Ignored when
   * `queryString` is false.
   */
  query?: string | URLSearchParams | Record<string, string | readonly string[]>
  /** Put before the path. @default 'view/' */
  keyPrefix?: string
  /** Whether the query string is part of the key. @default true */
  queryString?: boolean
  /** Request headers the response depends on, as `[name, value]` (see the `vary` option). */
  vary?: readonly (readonly [string, string])[]
}

/** The default `keyPrefix` of cached responses, as Flask-Caching's `view/`. */
export const HTTP_KEY_PREFIX = 'view/'

function toParams(query: NonNullable<HttpKeyParts['query']>): URLSearchParams {
  if (query instanceof URLSearchParams) return query
  if (typeof query === 'string') return new URLSearchParams(query.startsWith('?') ? query.slice(1) : query)
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) {
    for (const v of typeof value === 'string' ? [value] : value) params.append(name, v)
  }
  return params
}

/**
 * The query string in canonical form: parameters sorted by name (a stable sort, so repeated parameters keep
 * their order, which may matter to the handler), each name and value percent-encoded the same way.
 * `?b=2&a=1` and `?a=1&b=2` give the same text; `''` for no parameters.
 */
export function canonicalQuery(query: HttpKeyParts['query']): string {
  if (query === undefined) return ''
  const pairs = [...toParams(query)]
  pairs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
  return pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
}

/**
 * The cache key of a response: `keyPrefix` + path; then, if there is a query or a varying header, `?`, the
 * SHA-256 of the canonical query (so that long or sensitive query strings never appear in keys), and `#` and
 * the SHA-256 of the varying headers. The path cannot hold a `?`, so the first `?` ends it: a path that
 * holds `#` (a raw path may) never takes the key of another path's varying entry. Pure: the same parts give
 * the same key in every process.
 *
 * @example httpCacheKey({ path: '/search', query: '?q=x&page=2' }) // 'view//search?<43 characters>'
 * @example httpCacheKey({ path: '/x', vary: [['accept-language', 'en']] }) // 'view//x?#<43 characters>'
 * @throws {CacheArgumentError} if `path` holds a `?` (pass the query as `query`).
 */
export function httpCacheKey(parts: HttpKeyParts): string {
  if (parts.path.includes('?')) {
    throw new CacheArgumentError(`httpCacheKey: the \`path\` ${JSON.stringify(parts.path)} holds a \`?\`; pass the query string as \`query\` instead.`, { option: 'path' })
  }
  return keyOf(parts.keyPrefix ?? HTTP_KEY_PREFIX, parts.path, parts.queryString === false ? undefined : parts.query, parts.vary)
}

/** {@link httpCacheKey} once the path is known to hold no `?`. */
function keyOf(prefix: string, path: string, query: HttpKeyParts['query'], vary: HttpKeyParts['vary']): string {
  const canonical = query === undefined || query === '' ? '' : canonicalQuery(query)
  const varies = vary !== undefined && vary.length > 0
  if (canonical === '' && !varies) return prefix + path
  let key = `${prefix}${path}?`
  if (canonical !== '') key += sha256(canonical)
  if (varies) {
    const headers = vary.map(([name, value]) => [name.toLowerCase(), value] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    key += `#${sha256(JSON.stringify(headers))}`
  }
  return key
}

/**
 * A request-target as the server received it (`/a/../b?x=1`, Node's `req.url`) split into its path and its
 * query (without the `?`), at the first `?` and nowhere else: no `..` or `%2e%2e` resolved, nothing
 * decoded, `//host/x` kept as a path, an absolute-form target (`http://host/x`) kept whole. Two targets
 * with different paths here are two different texts, so no router can have matched them as one. One
 * `indexOf`: no parsing per request.
 *
 * @example splitRequestTarget('/search/x/../../price?q=1') // ['/search/x/../../price', 'q=1']
 */
export function splitRequestTarget(target: string): [path: string, query: string] {
  const q = target.indexOf('?')
  return q === -1 ? [target, ''] : [target.slice(0, q), target.slice(q + 1)]
}

/**
 * The request-target inside an absolute URL string (a fetch `Request`'s `url`): from the first `/` after
 * `scheme://` and a host, which is where Hono's router starts reading the path; the text is not parsed
 * again (`new URL()` would resolve `..` and `%2e%2e` in a URL that still holds them).
 *
 * @example requestTargetOf('http://127.0.0.1:8080//evil.example/report') // '//evil.example/report'
 */
export function requestTargetOf(url: string): string {
  const start = url.indexOf('/', url.indexOf(':') + 4)
  // No path at all (never from a WHATWG Request or @hono/node-server): keep the whole text, still distinct.
  return start === -1 ? url : url.slice(start)
}

/** What {@link requestTargetKey} needs besides the target. */
export type RequestTargetKeyOptions = Omit<HttpKeyParts, 'path' | 'query'>

/**
 * The cache key of a request-target as received (`req.originalUrl` in Express, `req.url` in Node and
 * Fastify, {@link requestTargetOf} of a fetch `Request`'s `url`): {@link splitRequestTarget}, then
 * {@link httpCacheKey}. Pure: the same target always gives the same key, and two targets share a key only
 * if their raw paths are equal and their queries canonically equal (or the query is ignored).
 *
 * @example requestTargetKey('/search/<b>/../../price') // 'view//search/<b>/../../price', never 'view//price'
 */
export function requestTargetKey(target: string, options: RequestTargetKeyOptions = {}): string {
  const [path, query] = splitRequestTarget(target)
  return keyOf(options.keyPrefix ?? HTTP_KEY_PREFIX, path, options.queryString === false ? undefined : query, options.vary)
}
