import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { Cache, CacheConfigError, configFromEnv, createCache, DEFAULTS } from '../src/index.js'
import { resolveConfig, suggest } from '../src/config/index.js'
import { sqliteAdapter } from '../adapters/sqlite/index.js'
import { ENGINE } from '../src/engine.js'
import { CacheArgumentError } from '../src/errors.js'
import { parseSize } from '../src/size.js'

function configError(fn: () => unknown): CacheConfigError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(CacheConfigError)
    return error as CacheConfigError
  }
  throw new Error('expected a CacheConfigError')
}

describe('config validation', () => {
  it('an unknown type names it and suggests the likely one', () => {
    const e = configError(() => createCache({ type: 'memroy' }))
    expect(e.message).toContain('"memroy"')
    expect(e.message).toContain('Did you mean `memory`?')
    expect(e.option).toBe('type')
    expect(e.code).toBe('CACHE_CONFIG')
  })

  it('an unknown option names it and suggests the cachekit name', () => {
    const e = configError(() => createCache({ type: 'memory', ttl: 5 } as never))
    expect(e.message).toContain('`ttl`')
    expect(e.message).toContain('Did you mean `defaultTtl`?')
    expect(e.option).toBe('ttl')
    expect(configError(() => createCache({ type: 'memory', keyPrefx: 'a' } as never)).message).toContain('`keyPrefix`')
    expect(configError(() => createCache({ type: 'memory', prefix: 'a' } as never)).message).toContain('`keyPrefix`')
  })

  it('publishStats is off, or a period from 100ms to 1h', () => {
    expect(() => createCache({ type: 'memory', publishStats: 0 }).close()).not.toThrow()
    const e = configError(() => createCache({ type: 'memory', publishStats: '50ms' }))
    expect(e.option).toBe('publishStats')
    expect(e.message).toContain('from 100ms to 1h')
    // Longer than a timer can wait (2^31 ms) would fire every millisecond: refused.
    expect(configError(() => createCache({ type: 'memory', publishStats: '30d' })).option).toBe('publishStats')
    expect(configError(() => createCache({ type: 'memory', publishStats: 'often' as never })).option).toBe('publishStats')
  })

  it('publishStats on a backend no other process reads warns once and writes nothing', async () => {
    const c = createCache({ type: 'memory', publishStats: 100 })
    const warnings: string[] = []
    c.on('warning', (m) => warnings.push(m))
    await c.ready()
    // The first period's write finds the backend unshared: wait for that (no fixed sleep), then two periods more.
    const end = Date.now() + 10_000
    while (!warnings.some((w) => w.includes('publishStats')) && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
    await new Promise((r) => setTimeout(r, 200))
    expect(warnings.filter((w) => w.includes('publishStats'))).toEqual([expect.stringContaining('not shared between processes')])
    // The backend itself holds no report (keys() would hide one: the adapter's own listing does not).
    const adapter = (await c[ENGINE]()).adapter!
    const stored: string[] = []
    for await (const key of adapter.keys('')) stored.push(key)
    expect(stored).toEqual([])
    await c.close()
  })

  it('publishStats with l1 writes around the memory tier: the report takes none of its entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachekit-publish-'))
    const c = createCache({ type: 'sqlite', path: join(dir, 'p.sqlite'), l1: true, publishStats: 100 })
    try {
      await c.ready()
      await c.set('k', 1)
      const adapter = (await c[ENGINE]()).adapter!
      const reports = async () => {
        const found: string[] = []
        for await (const key of adapter.keys('')) if (key.includes('|ck:stats:')) found.push(key)
        return found
      }
      const end = Date.now() + 10_000
      while ((await reports()).length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
      expect(await reports()).toHaveLength(1)
      expect(c.stats().l1).toMatchObject({ entries: 1 })
    } finally {
      await c.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('publishStats writes its first report once the backend is there, not a period later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachekit-publish-'))
    // A backend that takes 300 ms to be ready: longer than the timer's first try (50 ms).
    const c = createCache({
      publishStats: '1h',
      adapter: (context) => {
        const real = sqliteAdapter({ path: join(dir, 'slow.sqlite') }, context)
        const ready = real.ready!.bind(real)
        return Object.assign(real, {
          ready: async () => {
            await new Promise((r) => setTimeout(r, 300))
            await ready()
          },
        })
      },
    })
    try {
      await c.ready()
      const adapter = (await c[ENGINE]()).adapter!
      const end = Date.now() + 10_000
      let found: string[] = []
      while (found.length === 0 && Date.now() < end) {
        found = []
        for await (const key of adapter.keys('')) if (key.includes('|ck:stats:')) found.push(key)
        if (found.length === 0) await new Promise((r) => setTimeout(r, 20))
      }
      expect(found).toHaveLength(1)
    } finally {
      await c.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a missing type says what to write', () => {
    expect(configError(() => createCache({ defaultTtl: 5 })).message).toMatch(/no `type`/)
  })

  it('option values of the wrong kind name the option', () => {
    expect(configError(() => createCache({ type: 'memory', failOpen: 'yes' as never })).option).toBe('failOpen')
    expect(configError(() => createCache({ type: 'memory', threshold: -1 })).option).toBe('threshold')
    expect(configError(() => createCache({ type: 'memory', threshold: 1.5 })).option).toBe('threshold')
    expect(configError(() => createCache({ type: 'memory', defaultTtl: -1 })).option).toBe('defaultTtl')
    expect(configError(() => createCache({ type: 'memory', defaultTtl: '5 parsecs' })).message).toContain('5 parsecs')
    expect(configError(() => createCache({ type: 'memory', serializer: 'yaml' as never })).option).toBe('serializer')
    expect(configError(() => createCache({ type: 'memory', now: 5 as never })).option).toBe('now')
  })

  it("a backend's duration options are parsed at init, not later", () => {
    const e = configError(() => createCache({ type: 'sqlite', path: ':memory:', busyTimeout: '5 parsecs' }))
    expect(e.option).toBe('busyTimeout')
    expect(e.message).toContain('5 parsecs')
    expect(configError(() => createCache({ type: 'filesystem', dir: '.cache/x', purgeInterval: -1 })).option).toBe('purgeInterval')
  })

  it('a non-object, non-string config is refused', () => {
    configError(() => createCache(42 as never))
    configError(() => createCache(null as never))
  })

  it('URLs select the backend', () => {
    expect(resolveConfig('memory:').type).toBe('memory')
    expect(resolveConfig('null:').type).toBe('null')
    const e = configError(() => resolveConfig('mongodb://user:secret@host/db'))
    expect(e.message).toContain('***')
    expect(e.message).not.toContain('secret')
  })

  it('a type and a URL of another backend are refused, never one of them dropped', () => {
    for (const [config, said] of [
      [{ type: 'memory', url: 'redis://127.0.0.1:6379' }, 'a redis URL'],
      [{ type: 'sqlite', url: 'file:./cache' }, 'a filesystem URL'],
      [{ type: 'keyv', url: 'sqlite:./a.db' }, 'takes no URL'],
      [{ type: 'memory', url: 'ftp://x' }, 'no known backend'],
    ] as const) {
      const e = configError(() => resolveConfig(config as never))
      expect(e.option).toBe('url')
      expect(e.message).toContain(said)
    }
    expect(resolveConfig({ type: 'RedisCache', url: 'redis://127.0.0.1:6379' }).type).toBe('redis')
    expect(resolveConfig({ type: 'memory', url: 'memory:' }).type).toBe('memory')
  })

  it('a malformed Redis URL says what is wrong with it, password hidden', () => {
    const cases: [string, RegExp][] = [
      ['redis://app:Pa55/W0rd@host:6379', /contains `\/`.*Percent-encode/],
      ['redis://app:Pa55#W0rd@host:6379', /contains `\/`, `\?` or `#`/],
      ['redis://app:Pa55W0rd@host:port', /port must be a number/],
      ['redis://app:Pa55W0rd@[::1:6379', /IPv6 host goes in brackets/],
      ['redis://app:Pa55%zzW0rd@host', /not a percent-escape/],
      ['redis:app:Pa55W0rd@host', /write it as redis:\/\//],
      ['redis://app:Pa55W0rd@host/abc', /database number/],
    ]
    for (const [url, reason] of cases) {
      const e = configError(() => resolveConfig(url))
      expect(e.option).toBe('url')
      expect(e.message).toMatch(reason)
      expect(e.message).toContain('app:***@')
      expect(e.message).not.toMatch(/Pa55|W0rd/)
      expect(e.cause).toBeUndefined()
    }
    // A password with @ parses (the last @ ends the userinfo) and is shown hidden whole.
    expect(resolveConfig('redis://app:p@ss@127.0.0.1:6379').adapterOptions.url).toBe('redis://app:p@ss@127.0.0.1:6379')
  })

  it('a file: or sqlite: URL with a user or password is refused before it names a file', () => {
    for (const url of ['file://app:secret@host/cache', 'sqlite://app:secret@host/a.db', 'sqlite:app:secret@a.db']) {
      const e = configError(() => resolveConfig(url))
      expect(e.option).toBe('url')
      expect(e.message).toContain('app:***@')
      expect(e.message).not.toContain('secret')
    }
    expect(resolveConfig('sqlite:./data@2x.db').adapterOptions).toEqual({ path: './data@2x.db' })
    expect(resolveConfig('file:///var/cache@2').adapterOptions).toEqual({ dir: '/var/cache@2' })
  })

  it("Flask-Caching's type names work", () => {
    expect(resolveConfig({ type: 'SimpleCache' }).type).toBe('memory')
    expect(resolveConfig({ type: 'NullCache' }).type).toBe('null')
  })

  it('never mutates the caller object, and fills defaults from one place', () => {
    const input = Object.freeze({ type: 'memory' })
    const resolved = resolveConfig(input)
    expect(input).toEqual({ type: 'memory' })
    expect(resolved.defaultTtl).toBe(DEFAULTS.defaultTtl)
    expect(resolved.threshold).toBe(DEFAULTS.threshold)
    expect(resolved.failOpen).toBe(true)
    expect(resolved.keyPrefix).toBe('')
  })

  it('durations: numbers are ms, strings have units, 0 never expires', () => {
    expect(resolveConfig({ type: 'memory', defaultTtl: '1.5h' }).defaultTtl).toBe(5_400_000)
    expect(resolveConfig({ type: 'memory', defaultTtl: 250 }).defaultTtl).toBe(250)
    expect(resolveConfig({ type: 'memory', defaultTtl: 0 }).defaultTtl).toBe(0)
  })

  it('suggest finds close names only', () => {
    expect(suggest('thresold', ['threshold', 'type'])).toBe('threshold')
    expect(suggest('banana', ['threshold', 'type'])).toBeUndefined()
  })
})

describe('sizes', () => {
  it('a number is bytes; a string is a number and a binary unit', () => {
    expect(parseSize(0)).toBe(0)
    expect(parseSize(1500)).toBe(1500)
    expect(parseSize('512b')).toBe(512)
    expect(parseSize('64mb')).toBe(64 * 2 ** 20)
    expect(parseSize('64 MiB')).toBe(64 * 2 ** 20)
    expect(parseSize('1.5kb')).toBe(1536)
    expect(parseSize('2G')).toBe(2 * 2 ** 30)
    expect(parseSize('1tb')).toBe(2 ** 40)
    expect(parseSize(' 10k ')).toBe(10_240)
    // A fraction of a byte rounds down: a bound is never raised by rounding.
    expect(parseSize('1.0001kb')).toBe(1024)
  })

  it('anything else is refused, naming the value', () => {
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 60, '12 parsecs', '', 'mb', '-5mb', '5 m b', {} as never, null as never]) {
      expect(() => parseSize(bad, '`maxBytes`')).toThrow(CacheArgumentError)
      expect(() => parseSize(bad, '`maxBytes`')).toThrow(/`maxBytes`/)
    }
    expect(() => parseSize('12 parsecs')).toThrow(/"12 parsecs".*'64mb'/)
  })

  it('maxBytes is parsed at init and named when bad; it is an option of the memory backend only', () => {
    expect(resolveConfig({ type: 'memory', maxBytes: '1mb' }).adapterOptions).toEqual({ maxBytes: 2 ** 20 })
    for (const bad of ['12 parsecs', -1, true]) {
      const e = configError(() => resolveConfig({ type: 'memory', maxBytes: bad as never }))
      expect(e.option).toBe('maxBytes')
    }
    expect(configError(() => resolveConfig({ type: 'sqlite', maxBytes: '1mb' } as never)).message).toMatch(/option of the `memory` backend/)
    expect(configError(() => resolveConfig({ type: 'memory', maxSize: '1mb' } as never)).message).toContain('Did you mean `maxBytes`?')
  })
})

describe('configFromEnv', () => {
  it('is undefined when no CACHE_* variable is set', () => {
    expect(configFromEnv({ PATH: '/bin' })).toBeUndefined()
  })

  it('reads every common variable', () => {
    expect(
      configFromEnv({
        CACHE_TYPE: 'memory',
        CACHE_DEFAULT_TTL: '10m',
        CACHE_KEY_PREFIX: 'app:',
        CACHE_THRESHOLD: '500',
        CACHE_FAIL_OPEN: 'false',
      }),
    ).toEqual({ type: 'memory', defaultTtl: 600_000, keyPrefix: 'app:', threshold: 500, failOpen: false })
  })

  it('CACHE_PUBLISH_STATS is publishStats; a value that is no duration names the variable', () => {
    expect(configFromEnv({ CACHE_TYPE: 'memory', CACHE_PUBLISH_STATS: '5s' })).toEqual({ type: 'memory', publishStats: 5_000 })
    const e = configError(() => configFromEnv({ CACHE_TYPE: 'memory', CACHE_PUBLISH_STATS: 'often' }))
    expect(e.message).toContain('CACHE_PUBLISH_STATS')
    expect(e.message).toContain('often')
  })

  it("takes Flask-Caching's CACHE_DEFAULT_TIMEOUT in seconds", () => {
    expect(configFromEnv({ CACHE_TYPE: 'SimpleCache', CACHE_DEFAULT_TIMEOUT: '300' })).toEqual({ type: 'memory', defaultTtl: 300_000 })
  })

  it('CACHE_URL selects the backend', () => {
    expect(configFromEnv({ CACHE_URL: 'memory:' })).toEqual({ url: 'memory:' })
  })

  it('a malformed variable is a CacheConfigError naming it', () => {
    const cases: [Record<string, string>, string][] = [
      [{ CACHE_TYPE: 'memory', CACHE_DEFAULT_TIMEOUT: 'abc' }, 'CACHE_DEFAULT_TIMEOUT'],
      [{ CACHE_TYPE: 'memory', CACHE_DEFAULT_TTL: '5 parsecs' }, 'CACHE_DEFAULT_TTL'],
      [{ CACHE_TYPE: 'memory', CACHE_THRESHOLD: 'many' }, 'CACHE_THRESHOLD'],
      [{ CACHE_TYPE: 'memory', CACHE_FAIL_OPEN: 'maybe' }, 'CACHE_FAIL_OPEN'],
      [{ CACHE_TYPE: 'memroy' }, 'CACHE_TYPE'],
      [{ CACHE_URL: 'ftp://x' }, 'CACHE_URL'],
    ]
    for (const [env, variable] of cases) {
      const e = configError(() => configFromEnv(env))
      expect(e.option).toBe(variable)
      expect(e.message).toContain(variable)
    }
  })

  it('common variables alone apply to the embedded default, and a bad one is still named', () => {
    expect(configFromEnv({ CACHE_KEY_PREFIX: 'app:', CACHE_DEFAULT_TIMEOUT: '60' })).toEqual({
      type: 'sqlite',
      path: '.cache/cachekit.sqlite',
      keyPrefix: 'app:',
      defaultTtl: 60_000,
    })
    expect(configError(() => configFromEnv({ CACHE_DEFAULT_TIMEOUT: 'abc' })).option).toBe('CACHE_DEFAULT_TIMEOUT')
  })

  it('a CACHE_KEY_PREFIX of white space only is refused, naming it; an empty one is no prefix', () => {
    for (const env of [{ CACHE_KEY_PREFIX: '   ' }, { CACHE_TYPE: 'memory', CACHE_KEY_PREFIX: ' \t' }]) {
      const e = configError(() => configFromEnv(env))
      expect(e.option).toBe('CACHE_KEY_PREFIX')
      expect(e.message).toMatch(/CACHE_KEY_PREFIX.*white space/)
    }
    expect(configFromEnv({ CACHE_TYPE: 'memory', CACHE_KEY_PREFIX: '' })).toEqual({ type: 'memory' })
    expect(configFromEnv({ CACHE_TYPE: 'memory', CACHE_KEY_PREFIX: 'app:' })).toEqual({ type: 'memory', keyPrefix: 'app:' })
  })

  it('variables the chosen backend does not read are named in a warning, never silently dropped', () => {
    const warnings: string[] = []
    const warn = (m: string) => warnings.push(m)
    expect(configFromEnv({ CACHE_TYPE: 'memory', CACHE_DIR: '/srv/cache', CACHE_SQLITE_PATH: '/srv/a.db' }, { warn })).toEqual({ type: 'memory' })
    expect(configFromEnv({ CACHE_URL: 'sqlite:./a.db', CACHE_REDIS_URL: 'redis://app:s3cret@h' }, { warn })).toEqual({ url: 'sqlite:./a.db' })
    expect(configFromEnv({ CACHE_TYPE: 'memory', CACHE_DEFAULT_TTL: '1m', CACHE_DEFAULT_TIMEOUT: '30' }, { warn })).toEqual({ type: 'memory', defaultTtl: 60_000 })
    expect(warnings).toHaveLength(3)
    expect(warnings[0]).toMatch(/CACHE_DIR and CACHE_SQLITE_PATH are set but ignored.*memory.*CACHE_TYPE/)
    expect(warnings[1]).toMatch(/CACHE_REDIS_URL is set but ignored.*sqlite.*CACHE_URL/)
    expect(warnings[2]).toMatch(/CACHE_DEFAULT_TIMEOUT is set but ignored.*CACHE_DEFAULT_TTL/)
    // Values are not repeated: a variable may hold a password.
    expect(warnings.join('\n')).not.toMatch(/srv|s3cret/)
    // Nothing to say when every variable set is read.
    configFromEnv({ CACHE_TYPE: 'filesystem', CACHE_DIR: '/srv/cache' }, { warn })
    expect(warnings).toHaveLength(3)
  })

  it('without a warn option the warning goes to the console once; init() emits it as a warning event', () => {
    const spy = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      configFromEnv({ CACHE_TYPE: 'memory', CACHE_DIR: '/srv/cache' })
      expect(spy.mock.calls.map((c) => String(c[0]))).toEqual([expect.stringMatching(/^cachekit: CACHE_DIR is set but ignored/)])
    } finally {
      spy.mockRestore()
    }
    vi.stubEnv('CACHE_TYPE', 'memory')
    vi.stubEnv('CACHE_DIR', '/srv/cache')
    try {
      const warnings: string[] = []
      const c = new Cache()
      c.on('warning', (m) => warnings.push(m))
      c.init()
      expect(warnings).toEqual([expect.stringMatching(/CACHE_DIR is set but ignored/)])
      void c.close()
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('CACHE_URL and a variable of its backend that say different places are refused', () => {
    for (const [env, variable] of [
      [{ CACHE_URL: 'file:./a', CACHE_DIR: './b' }, 'CACHE_DIR'],
      [{ CACHE_URL: 'redis://127.0.0.1:6379', CACHE_REDIS_URL: 'redis://app:s3cret@10.0.0.1:6379' }, 'CACHE_REDIS_URL'],
    ] as const) {
      const e = configError(() => configFromEnv(env))
      expect(e.option).toBe(variable)
      expect(e.message).toContain('CACHE_URL')
      expect(e.message).not.toContain('s3cret')
    }
    expect(configFromEnv({ CACHE_URL: 'file:./a', CACHE_DIR: './a' })).toMatchObject({ url: 'file:./a' })
  })

  it('a misspelled type in CACHE_TYPE gets a suggestion', () => {
    expect(configError(() => configFromEnv({ CACHE_TYPE: 'memroy' })).message).toContain('Did you mean `memory`?')
  })
})
