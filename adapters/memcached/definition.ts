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
export const MEMCACHED_DEFAULTS = {
  servers: ['127.0.0.1:11211'] as readonly string[],
  port: 11211,
  connectTimeout: 5_000,
  commandTimeout: 1_000,
  clearCheckInterval: 0,
  clearAll: false,
} as const

const SCHEME = /^(memcached|memcache):\/\//i

/** `host:port` checked, with the default port added; IPv6 in brackets. */
export function normalizeServer(server: string, option = 'servers'): string {
  const s = server.trim()
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/@,]+)(?::(\d{1,5}))?$/.exec(s)
  const port = m?.[2] === undefined ? MEMCACHED_DEFAULTS.port : Number(m[2])
  if (m === null || port < 1 || port > 65535) {
    throw new CacheConfigError(`Invalid memcached server ${JSON.stringify(s)} in \`${option}\`: write host:port, e.g. '127.0.0.1:11211'.`, { option })
  }
  return `${m[1]}:${port}`
}

/** The servers of a `servers` option (an array, or one comma-separated string). */
export function parseServers(value: unknown, option = 'servers'): string[] {
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? (value as unknown[]) : undefined
  if (list === undefined || list.some((s) => typeof s !== 'string')) {
    throw new CacheConfigError(`Option \`${option}\` must be 'host:port', a comma-separated list of them, or an array of them.`, { option })
  }
  const servers = (list as string[]).filter((s) => s.trim() !== '').map((s) => normalizeServer(s, option))
  if (servers.length === 0) throw new CacheConfigError(`Option \`${option}\` names no server: write e.g. '127.0.0.1:11211'.`, { option })
  return servers
}

/**
 * Options from `memcached://[user:password@]host[:port][,host[:port]...]` (or `memcache://`). The user and
 * password are percent-decoded; the message of a malformed URL never repeats the password.
 */
export function memcachedOptionsFromUrl(url: string): Record<string, unknown> {
  const rest = url.replace(SCHEME, '')
  const at = rest.lastIndexOf('@')
  const userinfo = at === -1 ? undefined : rest.slice(0, at)
  const hosts = (at === -1 ? rest : rest.slice(at + 1)).replace(/\/$/, '')
  const shown = userinfo === undefined ? url : url.replace(userinfo, userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:***` : userinfo)
  if (!SCHEME.test(url) || hosts === '' || /[/?#]/.test(hosts)) {
    throw new CacheConfigError(`Invalid memcached URL ${JSON.stringify(shown)}: write memcached://[user:password@]host:port[,host:port...].`, { option: 'url' })
  }
  const options: Record<string, unknown> = { servers: parseServers(hosts, 'url') }
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    try {
      options.username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon))
      if (colon !== -1) options.password = decodeURIComponent(userinfo.slice(colon + 1))
    } catch {
      throw new CacheConfigError(`Invalid memcached URL ${JSON.stringify(shown)}: the user or password has a malformed %-escape.`, { option: 'url' })
    }
  }
  return options
}

/** Whether an import failed because `name` is not installed. */
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
