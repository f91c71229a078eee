import { sha256 } from '../keys-canonical.js'

/** What identifies a cached response. */
export interface HttpKeyParts {
  /** The request path, without the query string (`/users/7`). */
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
 * The cache key of a response: `keyPrefix` + path, then `?` and the SHA-256 of the canonical query (so that
 * long or sensitive query strings never appear in keys), then `#` and the SHA-256 of the varying headers.
 * Pure: the same parts give the same key in every process.
 *
 * @example httpCacheKey({ path: '/search', query: '?q=x&page=2' }) // 'view//search?<43 characters>'
 */
export function httpCacheKey(parts: HttpKeyParts): string {
  let key = (parts.keyPrefix ?? HTTP_KEY_PREFIX) + parts.path
  if (parts.queryString !== false) {
    const query = canonicalQuery(parts.query)
    if (query !== '') key += `?${sha256(query)}`
  }
  if (parts.vary !== undefined && parts.vary.length > 0) {
    const headers = parts.vary.map(([name, value]) => [name.toLowerCase(), value] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    key += `#${sha256(JSON.stringify(headers))}`
  }
  return key
}
