import { describe, expect, it } from 'vitest'
import { CacheConfigError } from '../src/errors.js'
import { mayStore, notModified, resolveCachedOptions, storableHeaders, type CachedResponse } from '../src/http/common.js'
import { canonicalQuery, httpCacheKey } from '../src/http/keys.js'

describe('httpCacheKey (pure)', () => {
  it('is view/ + path by default, and hashes a sorted query', () => {
    expect(httpCacheKey({ path: '/users/7' })).toBe('view//users/7')
    const k = httpCacheKey({ path: '/s', query: '?b=2&a=1' })
    expect(k).toMatch(/^view\/\/s\?[A-Za-z0-9_-]{43}$/)
    expect(httpCacheKey({ path: '/s', query: 'a=1&b=2' })).toBe(k)
    expect(httpCacheKey({ path: '/s', query: new URLSearchParams({ a: '1', b: '2' }) })).toBe(k)
    expect(httpCacheKey({ path: '/s', query: { b: '2', a: '1' } })).toBe(k)
    expect(httpCacheKey({ path: '/s', query: '?a=1&b=3' })).not.toBe(k)
    expect(httpCacheKey({ path: '/s', query: '?' })).toBe('view//s')
  })

  it('keeps repeated parameters in order, and never confuses encodings', () => {
    expect(canonicalQuery('?tag=b&x=1&tag=a')).toBe('tag=b&tag=a&x=1')
    expect(httpCacheKey({ path: '/s', query: 'tag=a&tag=b' })).not.toBe(httpCacheKey({ path: '/s', query: 'tag=b&tag=a' }))
    expect(canonicalQuery('a=%26&b=1')).not.toBe(canonicalQuery('a=&&b=1'))
    expect(canonicalQuery('q=a+b')).toBe(canonicalQuery('q=a%20b'))
  })

  it('honours keyPrefix, queryString: false and vary', () => {
    expect(httpCacheKey({ path: '/x', query: '?a=1', keyPrefix: 'page:', queryString: false })).toBe('page:/x')
    const en = httpCacheKey({ path: '/x', vary: [['Accept-Language', 'en']] })
    expect(en).not.toBe(httpCacheKey({ path: '/x', vary: [['accept-language', 'fr']] }))
    expect(en).toBe(httpCacheKey({ path: '/x', vary: [['accept-language', 'en']] }))
    expect(httpCacheKey({ path: '/x', vary: [['a', '1'], ['b', '2']] })).toBe(httpCacheKey({ path: '/x', vary: [['b', '2'], ['a', '1']] }))
  })
})

describe('what is stored', () => {
  const ok = (headers: [string, string][], status = 200): CachedResponse => ({ status, headers, body: new Uint8Array() })
  const only200 = (r: CachedResponse) => r.status === 200

  it('never Set-Cookie, Cache-Control private or no-store; the filter decides the rest', () => {
    expect(mayStore(ok([['content-type', 'text/plain']]), only200)).toBe(true)
    expect(mayStore(ok([['set-cookie', 's=1']]), () => true)).toBe(false)
    expect(mayStore(ok([['cache-control', 'private, max-age=60']]), () => true)).toBe(false)
    expect(mayStore(ok([['cache-control', 'no-store']]), () => true)).toBe(false)
    expect(mayStore(ok([['cache-control', 'public, max-age=60']]), only200)).toBe(true)
    expect(mayStore(ok([], 404), only200)).toBe(false)
    expect(mayStore(ok([], 404), () => true)).toBe(true)
  })

  it('matches If-None-Match against the stored ETag (weak comparison, lists, *)', () => {
    const tagged = ok([['etag', 'W/"abc"']])
    expect(notModified(tagged, '"abc"')).toBe(true)
    expect(notModified(tagged, '"x", W/"abc"')).toBe(true)
    expect(notModified(tagged, '*')).toBe(true)
    expect(notModified(tagged, '"abd"')).toBe(false)
    expect(notModified(tagged, undefined)).toBe(false)
    expect(notModified(ok([]), '*')).toBe(false)
  })

  it('drops per-delivery headers and lower-cases names', () => {
    expect(storableHeaders([['Date', 'x'], ['Connection', 'close'], ['Transfer-Encoding', 'chunked'], ['X-Cache', 'MISS'], ['ETag', '"a"']])).toEqual([['etag', '"a"']])
  })

  it('checks the options when the middleware is built', () => {
    expect(() => resolveCachedOptions({ tll: 1 } as never, 'cached()')).toThrow(CacheConfigError)
    expect(() => resolveCachedOptions({ tll: 1 } as never, 'cached()')).toThrow(/unknown option `tll`/)
    expect(() => resolveCachedOptions({ ttl: '5 minutes' }, 'cached()')).toThrow(/5 minutes/)
    expect(() => resolveCachedOptions({ vary: 'accept' } as never, 'cached()')).toThrow(/`vary`/)
    expect(resolveCachedOptions({}, 'cached()')).toMatchObject({ keyPrefix: 'view/', queryString: true, xCache: false })
  })
})
