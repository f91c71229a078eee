import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { getPath } from 'hono/utils/url'
import { describe, expect, it } from 'vitest'
import { CacheArgumentError, CacheConfigError } from '../src/errors.js'
import { mayStore, notModified, resolveCachedOptions, storableHeaders, type CachedResponse } from '../src/http/common.js'
import { freshness, varyNames } from '../src/http/flow.js'
import { canonicalQuery, httpCacheKey, requestTargetKey, requestTargetOf, splitRequestTarget } from '../src/http/keys.js'

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

/** Every character Node's HTTP parser lets through in a request-target (0x21 to 0x7e; checked over a socket). */
const targetChar = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c))
/** Request-targets built mostly from the characters that matter to routers, so that collisions would show. */
const target = fc
  .array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('/', '.', '..', '%2e', '%2E', '%2F', '%', '?', '#', '\\', 'a', 'b', '=', '&', ';') }, { weight: 1, arbitrary: targetChar }), { maxLength: 12 })
  .map((parts) => '/' + parts.join(''))

describe('the key of a request-target as received (pure)', () => {
  it('keeps the path exactly as received: no dot segment resolved, nothing decoded, //host kept', () => {
    expect(splitRequestTarget('/search/<script>x<%2Fscript>/../../price?q=1')).toEqual(['/search/<script>x<%2Fscript>/../../price', 'q=1'])
    expect(splitRequestTarget('/a/%2e%2e/%2E./price')).toEqual(['/a/%2e%2e/%2E./price', ''])
    expect(splitRequestTarget('//evil.example/report')).toEqual(['//evil.example/report', ''])
    expect(splitRequestTarget('http://evil.example/report?x')).toEqual(['http://evil.example/report', 'x'])
    expect(splitRequestTarget('/a?b?c')).toEqual(['/a', 'b?c'])
    expect(splitRequestTarget('/x#f?q')).toEqual(['/x#f', 'q'])
    expect(splitRequestTarget('/x?')).toEqual(['/x', ''])
    expect(requestTargetKey('/search/<script>x<%2Fscript>/../../price')).toBe('view//search/<script>x<%2Fscript>/../../price')
    expect(requestTargetKey('//evil.example/report')).toBe('view///evil.example/report')
  })

  it('reads the request-target of a URL string where Hono reads its path, without new URL()', () => {
    expect(requestTargetOf('http://127.0.0.1:8080/a/../b?x=1')).toBe('/a/../b?x=1')
    expect(requestTargetOf('http://h//evil.example/report')).toBe('//evil.example/report')
    expect(requestTargetOf('https://h/')).toBe('/')
    // Where Hono's router starts and stops reading: the same characters, never decoded here.
    for (const url of ['http://h/a/../b?c#d', 'http://h:1//x/./y', 'http://h/p#q?r', 'http://h/']) {
      const [path] = splitRequestTarget(requestTargetOf(url))
      expect(path.split('#')[0], url).toBe(getPath({ url } as Request))
    }
  })

  it('an attack never gets the key of the route it aims at', () => {
    const pairs: [string, string][] = [
      ['/search/<script>x<%2Fscript>/../../price', '/price'],
      ['/search/x/%2e%2e/%2e%2e/price', '/price'],
      ['/search/x/%2E%2e/.%2E/price', '/price'],
      ['/search/x/..%2F..%2Fprice', '/price'],
      ['//evil.example/report', '/report'],
      ['http://evil.example/report', '/report'],
      ['/report/', '/report'],
      ['/report;x', '/report'],
      ['/report#x', '/report'],
    ]
    for (const [attack, victim] of pairs) {
      expect(requestTargetKey(attack), attack).not.toBe(requestTargetKey(victim))
      expect(requestTargetKey(attack, { vary: [['accept-language', 'en']] }), attack).not.toBe(requestTargetKey(victim, { vary: [['accept-language', 'en']] }))
    }
  })

  it('a path holding what looks like a key suffix never takes the key of another entry', () => {
    // A raw path may hold `#` (Node passes it through): it must not end where a varying entry's suffix begins.
    const lang = [['accept-language', 'en']] as const
    const withVary = httpCacheKey({ path: '/x', vary: lang })
    expect(httpCacheKey({ path: '/x' + withVary.slice('view//x'.length).replace(/^\?/, '') })).not.toBe(withVary)
    const varied = requestTargetKey('/x', { vary: [['accept-language', 'en']] })
    const suffix = varied.slice('view//x'.length)
    expect(requestTargetKey('/x' + suffix)).not.toBe(varied)
    expect(requestTargetKey('/x' + suffix.replace(/^\?/, ''))).not.toBe(varied)
    const queried = requestTargetKey('/x?a=1')
    expect(requestTargetKey('/x' + queried.slice('view//x'.length).replace('?', '#'))).not.toBe(queried)
  })

  it('two request-targets share a key only if their raw paths are equal and their queries canonically equal', () => {
    const options = fc.constantFrom({}, { queryString: false }, { vary: [['accept', 'text/html']] as [string, string][] }, { vary: [] })
    fc.assert(
      fc.property(target, target, options, (a, b, opts) => {
        const [pathA, queryA] = splitRequestTarget(a)
        const [pathB, queryB] = splitRequestTarget(b)
        const same = pathA === pathB && (opts.queryString === false || canonicalQuery(queryA) === canonicalQuery(queryB))
        expect(requestTargetKey(a, opts) === requestTargetKey(b, opts)).toBe(same)
      }),
      { numRuns: 3000 },
    )
  })

  it('targets that Hono routes to different paths never share a key', () => {
    fc.assert(
      fc.property(target, target, (a, b) => {
        const routed = (t: string) => getPath({ url: `http://h${t}` } as Request)
        if (routed(a) !== routed(b)) expect(requestTargetKey(a)).not.toBe(requestTargetKey(b))
      }),
      { numRuns: 3000 },
    )
  })

  it('the same target always gives the same key, in any process (no state, a fixed hash)', () => {
    const sha = (text: string) => createHash('sha256').update(text).digest('base64url')
    expect(requestTargetKey('/s?b=2&a=1')).toBe(`view//s?${sha('a=1&b=2')}`)
    expect(requestTargetKey('/s?b=2&a=1')).toBe(requestTargetKey('/s?b=2&a=1'))
    expect(requestTargetKey('/s?a=1&b=2')).toBe(requestTargetKey('/s?b=2&a=1'))
    expect(requestTargetKey('/x', { vary: [['Accept', 'a']] })).toBe(`view//x?#${sha(JSON.stringify([['accept', 'a']]))}`)
    fc.assert(
      fc.property(target, (t) => {
        expect(requestTargetKey(t)).toBe(requestTargetKey(t))
      }),
    )
  })

  it('refuses a path holding a query, naming it (pass the query as `query`)', () => {
    expect(() => httpCacheKey({ path: '/json?x=1' })).toThrow(CacheArgumentError)
    expect(() => httpCacheKey({ path: '/json?x=1' })).toThrow(/`path`.*\/json\?x=1.*`query`/)
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

  it('never a 5xx or Vary: *, whatever the filter says', () => {
    expect(mayStore(ok([], 500), () => true)).toBe(false)
    expect(mayStore(ok([], 503), () => true)).toBe(false)
    expect(mayStore(ok([['vary', 'Accept-Encoding, *']]), () => true)).toBe(false)
    expect(mayStore(ok([['vary', 'Accept-Encoding']]), () => true)).toBe(true)
  })

  it('If-Modified-Since against the stored Last-Modified; If-None-Match takes precedence; 2xx only', () => {
    const dated = ok([['last-modified', 'Wed, 21 Oct 2015 07:28:00 GMT'], ['etag', '"m"']])
    expect(notModified(dated, undefined, 'Wed, 21 Oct 2015 07:28:00 GMT')).toBe(true)
    expect(notModified(dated, undefined, 'Thu, 22 Oct 2015 00:00:00 GMT')).toBe(true)
    expect(notModified(dated, undefined, 'Tue, 20 Oct 2015 00:00:00 GMT')).toBe(false)
    expect(notModified(dated, undefined, 'yesterday')).toBe(false)
    expect(notModified(dated, '"other"', 'Thu, 22 Oct 2015 00:00:00 GMT')).toBe(false)
    expect(notModified(dated, '"m"', 'Tue, 20 Oct 2015 00:00:00 GMT')).toBe(true)
    expect(notModified(ok([]), undefined, 'Thu, 22 Oct 2015 00:00:00 GMT')).toBe(false)
    expect(notModified(ok([['etag', '"m"']], 404), '"m"')).toBe(false)
  })

  it("ttl: 'auto' reads s-maxage, max-age, then Expires, less Age; no-cache or stale stores nothing", () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')
    expect(freshness([['cache-control', 'max-age=60']], now)).toBe(60_000)
    expect(freshness([['cache-control', 'max-age=60, s-maxage=10']], now)).toBe(10_000)
    expect(freshness([['cache-control', 'max-age="60"']], now)).toBe(60_000)
    expect(freshness([['cache-control', 'max-age=60'], ['age', '15']], now)).toBe(45_000)
    expect(freshness([['expires', 'Wed, 21 Oct 2015 07:29:00 GMT']], now)).toBe(60_000)
    expect(freshness([['expires', 'Wed, 21 Oct 2015 07:29:00 GMT'], ['date', 'Wed, 21 Oct 2015 07:28:30 GMT']], now)).toBe(30_000)
    expect(freshness([['cache-control', 'max-age=30'], ['expires', 'Wed, 21 Oct 2015 08:00:00 GMT']], now)).toBe(30_000)
    expect(freshness([['content-type', 'text/plain']], now)).toBeUndefined()
    for (const stale of [[['cache-control', 'no-cache']], [['cache-control', 'max-age=0']], [['cache-control', 'max-age=soon']], [['expires', '0']], [['expires', 'Wed, 21 Oct 2015 07:00:00 GMT']], [['cache-control', 'max-age=10'], ['age', '10']]] as [string, string][][]) {
      expect(freshness(stale, now), JSON.stringify(stale)).toBeNull()
    }
  })

  it('reads the names of Vary in lower case, sorted, once each', () => {
    expect(varyNames([['vary', 'Accept-Encoding, accept-language'], ['vary', 'ACCEPT-ENCODING'], ['etag', 'x']])).toEqual(['accept-encoding', 'accept-language'])
    expect(varyNames([])).toEqual([])
  })

  it('drops per-delivery headers and lower-cases names', () => {
    expect(storableHeaders([['Date', 'x'], ['Age', '3'], ['Connection', 'close'], ['Transfer-Encoding', 'chunked'], ['X-Cache', 'MISS'], ['ETag', '"a"']])).toEqual([['etag', '"a"']])
  })

  it('checks the options when the middleware is built', () => {
    expect(() => resolveCachedOptions({ tll: 1 } as never, 'cached()')).toThrow(CacheConfigError)
    expect(() => resolveCachedOptions({ tll: 1 } as never, 'cached()')).toThrow(/cached\(\): unknown option `tll`\. Did you mean `ttl`\?/)
    expect(() => resolveCachedOptions({ queryStrings: false } as never, 'cached()')).toThrow(/unknown option `queryStrings`\. Did you mean `queryString`\?/)
    expect(() => resolveCachedOptions({ ttl: '5 minutes' }, 'cached()')).toThrow(/5 minutes/)
    expect(() => resolveCachedOptions({ vary: 'accept' } as never, 'cached()')).toThrow(/`vary`/)
    expect(resolveCachedOptions({}, 'cached()')).toMatchObject({ keyPrefix: 'view/', queryString: true, xCache: false, cacheAuthorized: false, singleFlight: { ttl: 10_000, wait: 60_000 } })
    expect(resolveCachedOptions({ ttl: 'auto', singleFlight: false }, 'cached()')).toMatchObject({ ttl: 'auto', singleFlight: false })
    expect(resolveCachedOptions({ singleFlight: { wait: '2s' } }, 'cached()')).toMatchObject({ singleFlight: { ttl: 10_000, wait: 2000 } })
    expect(() => resolveCachedOptions({ singleFlight: { ttl: 0 } }, 'cached()')).toThrow(/`singleFlight.ttl`/)
    expect(() => resolveCachedOptions({ singleFlight: { wiat: 1 } } as never, 'cached()')).toThrow(/`wiat`/)
    expect(() => resolveCachedOptions({ singleFlight: 'yes' } as never, 'cached()')).toThrow(/`singleFlight`/)
    expect(() => resolveCachedOptions({ cacheAuthorized: 'yes' } as never, 'cached()')).toThrow(/`cacheAuthorized`/)
    // A list of tags is checked when the middleware is built; a function of the request, per request.
    expect(() => resolveCachedOptions({ tags: [''] }, 'cached()')).toThrow(CacheConfigError)
    expect(() => resolveCachedOptions({ tags: 'org:7' } as never, 'cached()')).toThrow(/`tags`/)
    expect(resolveCachedOptions({ tags: ['org:7'] }, 'cached()')).toMatchObject({ tags: ['org:7'] })
    expect(typeof resolveCachedOptions({ tags: () => ['org:7'] }, 'cached()').tags).toBe('function')
  })
})
