/** The memcached backend's pure parts: URL and env config, item names, expirations, the ring, the registry. */
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { cleared, MAX_REGISTRY_BYTES, Registry } from '../adapters/memcached/clears.js'
import { memcachedOptionsFromUrl, parseServers } from '../adapters/memcached/definition.js'
import { decodeEntry, encodeEntry } from '../adapters/memcached/entry.js'
import { itemName, MAX_KEY_BYTES } from '../adapters/memcached/keys.js'
import { exptimeFor, RELATIVE_LIMIT_S } from '../adapters/memcached/protocol.js'
import { Ring } from '../adapters/memcached/ring.js'
import { configFromEnv, resolveConfig } from '../src/config/index.js'
import { CacheConfigError } from '../src/errors.js'

describe('memcached config', () => {
  it('a URL gives several servers (default port 11211) and SASL credentials, percent-decoded', () => {
    expect(memcachedOptionsFromUrl('memcached://user:p%40ss@cache-a:11211,cache-b,[::1]:11300')).toEqual({
      servers: ['cache-a:11211', 'cache-b:11211', '[::1]:11300'],
      username: 'user',
      password: 'p@ss',
    })
    expect(memcachedOptionsFromUrl('memcache://127.0.0.1:11211/')).toEqual({ servers: ['127.0.0.1:11211'] })
  })

  it('init with a memcached:// or memcache:// URL selects the backend, and the URL becomes options', () => {
    const r = resolveConfig('memcached://u:pw@a:1,b:2')
    expect(r.type).toBe('memcached')
    expect(r.adapterOptions).toEqual({ servers: ['a:1', 'b:2'], username: 'u', password: 'pw' })
    expect(resolveConfig('memcache://a').type).toBe('memcached')
  })

  it("types 'memcached', 'memcache' and Flask-Caching's MemcachedCache and SASLMemcachedCache", () => {
    for (const type of ['memcached', 'memcache', 'MemcachedCache', 'SASLMemcachedCache']) expect(resolveConfig({ type }).type).toBe('memcached')
  })

  it('CACHE_MEMCACHED_SERVERS (comma-separated), _USERNAME and _PASSWORD select and configure it', () => {
    const config = configFromEnv({ CACHE_MEMCACHED_SERVERS: 'a:1, b:2', CACHE_MEMCACHED_USERNAME: 'u', CACHE_MEMCACHED_PASSWORD: 'pw' })
    expect(config).toMatchObject({ type: 'memcached', servers: 'a:1, b:2', username: 'u', password: 'pw' })
    expect(parseServers(config?.servers)).toEqual(['a:1', 'b:2'])
    expect(configFromEnv({ CACHE_URL: 'memcached://h:3' })).toMatchObject({ url: 'memcached://h:3' })
  })

  it('a misspelled option gets a suggestion; a bad server or URL is a CacheConfigError that never shows the password', () => {
    expect(() => resolveConfig({ type: 'memcached', server: 'a:1' } as never)).toThrow(/Did you mean `servers`/)
    expect(() => parseServers(['a:99999'])).toThrow(CacheConfigError)
    expect(() => parseServers('')).toThrow(/names no server/)
    for (const url of ['memcached://alice:s3cret-pw@host:1/db', 'memcached://alice:s3cret-pw@', 'memcached://alice:s3cret-pw@host:1?x=1']) {
      let error: unknown
      try {
        resolveConfig(url)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(CacheConfigError)
      expect(String((error as Error).message)).toContain('alice:***@')
      expect(JSON.stringify(error) + String((error as Error).message) + String((error as Error).stack)).not.toContain('s3cret-pw')
    }
  })
})

describe('memcached item names', () => {
  const token = 'AbCdEfGh.0'

  it('a printable key that fits is stored as is; a long, spaced, control-character or non-ASCII key under a hash', () => {
    expect(itemName(token, 'app:user:1')).toEqual({ name: `k${token}:app:user:1`, hashed: false })
    for (const key of ['x'.repeat(MAX_KEY_BYTES), 'a b', 'tab\there', 'nul\u0000', 'del\u007f', 'ünï']) {
      const { name, hashed } = itemName(token, key)
      expect(hashed).toBe(true)
      expect(name.length).toBeLessThanOrEqual(MAX_KEY_BYTES)
      expect(name).toMatch(/^h[!-~]+$/)
    }
  })

  it('no two keys share a name: as-is names start with k, hashed ones with h', () => {
    const keys = ['a b', 'a_b', 'x'.repeat(300), `${'x'.repeat(300)}y`, `h${token}:x`, `k${token}:x`, 'x', 'X']
    const names = keys.map((k) => itemName(token, k).name)
    expect(new Set(names).size).toBe(keys.length)
    // A key that spells a hashed name is still stored as is, under k...: it cannot take the hashed name.
    const hashedName = itemName(token, 'a b').name
    expect(itemName(token, hashedName.slice(`h${token}:`.length)).name).not.toBe(hashedName)
  })

  it('an entry keeps the exact expiry, the full key of a hashed name, and the payload byte-exact', () => {
    const bytes = new Uint8Array([0, 255, 1])
    expect(decodeEntry(encodeEntry(bytes, 1_700_000_000_123.5, 'long key'))).toEqual({ expiresAt: 1_700_000_000_123.5, key: 'long key', payload: Buffer.from(bytes) })
    expect(decodeEntry(encodeEntry('42', null, undefined))).toEqual({ expiresAt: null, key: undefined, payload: Buffer.from('42') })
    expect(decodeEntry(Buffer.from('42'))).toBeUndefined()
  })
})

describe('memcached expirations', () => {
  const now = 1_700_000_000_000

  it('whole seconds rounded up plus one (the server drops an item up to a second early), 0 for never', () => {
    expect(exptimeFor(null, now)).toBe(0)
    expect(exptimeFor(1, now)).toBe(2)
    expect(exptimeFor(1000, now)).toBe(2)
    expect(exptimeFor(1001, now)).toBe(3)
    expect(exptimeFor(-5, now)).toBe(2)
  })

  it('beyond 30 days an absolute unix time, as the protocol requires; past 2106, never (the entry still expires)', () => {
    const days29 = 29 * 86_400_000
    expect(exptimeFor(days29, now)).toBe(29 * 86_400 + 1)
    const days40 = 40 * 86_400_000
    expect(exptimeFor(days40, now)).toBe(now / 1000 + 40 * 86_400 + 1)
    expect(exptimeFor(days40, now)).toBeGreaterThan(RELATIVE_LIMIT_S)
    expect(exptimeFor(200 * 365 * 86_400_000, now)).toBe(0)
  })
})

describe('memcached consistent hashing', () => {
  const keys = Array.from({ length: 3000 }, (_, i) => `key:${i}`)

  it('spreads keys over every server, whatever order the servers are listed in', () => {
    const a = new Ring(['h1:11211', 'h2:11211', 'h3:11211'])
    const b = new Ring(['h3:11211', 'h1:11211', 'h2:11211'])
    const counts = [0, 0, 0]
    for (const k of keys) {
      const owner = a.owner(k)
      counts[owner]!++
      expect(b.servers[b.owner(k)]).toBe(a.servers[owner])
    }
    for (const c of counts) expect(c).toBeGreaterThan(keys.length / 6)
  })

  it('adding a server moves about a quarter of the keys, not nearly all as hash % n would', () => {
    const three = new Ring(['h1:11211', 'h2:11211', 'h3:11211'])
    const four = new Ring(['h1:11211', 'h2:11211', 'h3:11211', 'h4:11211'])
    const moved = keys.filter((k) => three.servers[three.owner(k)] !== four.servers[four.owner(k)]).length
    expect(moved / keys.length).toBeGreaterThan(0.1)
    expect(moved / keys.length).toBeLessThan(0.45)
  })
})

describe('memcached clear registry', () => {
  const base = { v: 1 as const, e: 'AbCdEfGh', c: 0, p: [] as [string, number][] }
  const registry = (s: typeof base) => new Registry(Buffer.from(JSON.stringify(s)), s)

  it('a key takes the highest generation of the cleared prefixes it starts with; others keep theirs', () => {
    const s1 = cleared(base, 'app:')
    const s2 = cleared(s1, 'app:users:')
    const r = registry(s2)
    expect(r.token('app:users:1')).toBe('AbCdEfGh.2')
    expect(r.token('app:other')).toBe('AbCdEfGh.1')
    expect(r.token('ap')).toBe('AbCdEfGh.0')
    expect(r.token('other:app:')).toBe('AbCdEfGh.0')
  })

  it('clearing a prefix forgets the prefixes under it, and every key under it still gets a token never used before', () => {
    const before = cleared(cleared(base, 'app:users:'), 'app:users:1:')
    const tokensBefore = new Set(['app:users:1:x', 'app:users:2', 'app:'].map((k) => registry(before).token(k)))
    const after = cleared(before, 'app:')
    expect(after.p).toEqual([['app:', 3]])
    for (const k of ['app:users:1:x', 'app:users:2', 'app:']) expect(tokensBefore.has(registry(after).token(k))).toBe(false)
  })

  it("clear('') and a registry past its size limit start a new epoch", () => {
    expect(cleared(cleared(base, 'a:'), '').e).not.toBe(base.e)
    let s = base
    for (let i = 0; JSON.stringify(s).length < MAX_REGISTRY_BYTES - 100; i++) s = cleared(s, `tenant:${i}:${'x'.repeat(40)}:`)
    const reset = cleared(s, `tenant:last:${'x'.repeat(200)}:`)
    expect(reset.e).not.toBe(base.e)
    expect(reset.p).toEqual([])
  })
})

describe('memcached without memjs installed', () => {
  it('init works, and ready() rejects with a CacheConfigError saying what to install', () => {
    const dir = fileURLToPath(new URL('./fixtures/no-memjs/', import.meta.url))
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--import', join(dir, 'register.mjs'), join(dir, 'main.ts')], { encoding: 'utf8' })
    const error = JSON.parse(out) as { name: string; code: string; message: string }
    expect(error).toMatchObject({ name: 'CacheConfigError', code: 'CACHE_CONFIG' })
    expect(error.message).toContain('npm install memjs')
  }, 30_000)
})
