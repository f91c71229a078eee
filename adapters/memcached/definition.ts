/**
 * The memcached backend as the registry knows it, without loading its driver: options, URL, environment,
 * and a lazy `load()`. memjs is imported only when a memcached cache is opened.
 */
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import type { AdapterDefinition, OptionKind } from '../../src/definition.js'
import type { MemjsModule } from './driver.js'

/** The memcached options (`type: 'memcached'`). */
export interface MemcachedOptions {
  /**
   * memcached: the servers, as `host:port` (port 11211 if omitted; `[::1]:11211` for IPv6), an array or a
   * comma-separated string. Keys are spread over them by consistent hashing (a server added or removed moves
   * about 1/n of the keys). Environment: `CACHE_MEMCACHED_SERVERS` (comma-separated, as Flask-Caching names it).
   * @default ['127.0.0.1:11211']
   */
  servers?: string | readonly string[]
  /**
   * memcached: the SASL user (PLAIN, over the binary protocol), for a server started with `-S`.
   * A URL says it as `memcached://user:password@host:11211`. Environment: `CACHE_MEMCACHED_USERNAME`.
   */
  username?: string
  /**
   * memcached: the SASL password. Never shown in messages, errors or events. Environment:
   * `CACHE_MEMCACHED_PASSWORD`.
   */
  password?: string
  /**
   * memcached: how long `ready()` waits for every server to answer, and how long one connection attempt may take.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * memcached: the longest one command may take. A server that has failed is not asked again for 1 s
   * (calls to it fail at once), then one call tries it again; so a down server costs nobody a timeout twice.
   * Inside one `getOrSet` or memoized call, commands share one deadline (this value unless the cache's
   * `operationTimeout` is set, which also bounds each command).
   * @default '1s'
   */
  commandTimeout?: Duration
  /**
   * memcached: how long a process may go on using what it last read of the clear registry (the one
   * entry recording which prefixes `clear()` has cleared). `0` reads it with every operation, in the same
   * round trip, so a `clear()` in one process is seen by the very next call in every other; more saves that
   * read, and another process's `clear()` may then be seen that much later.
   * @default 0
   */
  clearCheckInterval?: Duration
  /**
   * memcached: allow `clear()` with an empty `keyPrefix`. It then clears every cachekit entry in the pool,
   * other caches' (with other prefixes) included; other programs' keys are never touched. Refused unless true.
   * @default false
   */
  clearAll?: boolean
  /** A `memcached://` URL: `memcached://[user:password@]host[:port][,host[:port]...]`. */
  url?: string
}

/** The defaults of {@link MemcachedOptions}, in one place. */
export { MEMCACHED_DEFAULTS, memcachedOptionsFromUrl, normalizeServer, parseServers } from './options.js'
import { memcachedOptionsFromUrl } from './options.js'

function isMissing(error: unknown, name: string): boolean {
  const e = error as { code?: string; message?: string }
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && e.message?.includes(name) === true
}

const kinds = {
  servers: 'any',
  username: 'string',
  // Checked by the adapter, so that a wrong value is never repeated in a message.
  password: 'any',
  connectTimeout: 'duration',
  commandTimeout: 'duration',
  clearCheckInterval: 'duration',
  clearAll: 'boolean',
} satisfies Record<Exclude<keyof MemcachedOptions, 'url'>, OptionKind>

/** The memcached backend: `memcached://` and `memcache://` URLs, `type: 'memcached'` (or `'memcache'`). */
export const memcachedDefinition: AdapterDefinition = {
  type: 'memcached',
  // Flask-Caching's MemcachedCache and SASLMemcachedCache reach it through the lowercase, strip-"cache" rule.
  aliases: ['memcache', 'saslmemcached'],
  options: kinds,
  schemes: ['memcached', 'memcache'],
  fromUrl: memcachedOptionsFromUrl,
  env: { CACHE_MEMCACHED_SERVERS: 'servers', CACHE_MEMCACHED_USERNAME: 'username', CACHE_MEMCACHED_PASSWORD: 'password' },
  async load() {
    let driver: MemjsModule
    // A name in a variable: the type checker and bundlers must not require memjs to be installed.
    const name = 'memjs'
    try {
      const imported = (await import(name)) as { default?: MemjsModule } & MemjsModule
      driver = imported.default ?? imported
    } catch (error) {
      if (isMissing(error, name)) {
        throw new CacheConfigError('The memcached backend needs memjs: run `npm install memjs`.', { option: 'type', cause: error })
      }
      throw error
    }
    const { memcachedAdapter } = await import('./index.js')
    return (options, context) => memcachedAdapter(options as MemcachedOptions, context, driver)
  },
}
