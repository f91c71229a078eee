import { mysqlDefinition } from '../adapters/mysql/definition.js'
import { postgresDefinition } from '../adapters/postgres/definition.js'
import type { AdapterFactory } from './adapter.js'
import { CacheConfigError } from './errors.js'
import { memcachedDefinition } from '../adapters/memcached/definition.js'
import { redactText, redactUrl } from './redact.js'

/**
 * The kind of an adapter option, checked at `init` before the adapter (and its driver) is loaded.
 * `'duration'` accepts a {@link Duration} and `'size'` a {@link Size}, both parsed at `init` (the adapter
 * receives milliseconds or bytes); `'any'` is checked by the adapter itself.
 */
export type OptionKind = 'string' | 'number' | 'boolean' | 'duration' | 'size' | 'object' | 'function' | 'any'

/**
 * How the Cache knows an adapter without loading it: its option names (to catch misspellings at `init`),
 * its URL schemes and environment variables, and a lazy `load` so that importing cachekit for a memory
 * cache never loads a native module or a Redis client.
 */
export interface AdapterDefinition {
  /** The `type` users write, e.g. `'sqlite'`. */
  type: string
  /** Other names for `type` (`'file'` for `'filesystem'`). */
  aliases?: readonly string[]
  /** The adapter's own options and their kinds. */
  options: Readonly<Record<string, OptionKind>>
  /** URL schemes (without the colon) that select this adapter. */
  schemes?: readonly string[]
  /** Adapter options from a URL of one of `schemes`. */
  fromUrl?(url: string): Record<string, unknown>
  /** Environment variables read by `configFromEnv`, mapped to an option name. */
  env?: Readonly<Record<string, string>>
  /** Load the adapter's factory (and its driver). */
  load(): Promise<AdapterFactory<Record<string, unknown>>>
}

/** Strip a URL scheme and return the rest as a path: `sqlite:./a.db` and `sqlite://./a.db` give `./a.db`. */
export function pathFromUrl(url: string): string {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:/i, '')
  return decodeURIComponent(rest.startsWith('//') ? rest.slice(2) : rest)
}

const REDIS_URL_FORM = 'write it as redis://[user:password@]host:port[/db] (or rediss:// for TLS)'

/**
 * Refuse a Redis URL that would not connect where it says, before anything connects, with a message that
 * says what is wrong and never shows the password (the URL parser's own error carries the whole input, so
 * it is not kept as the cause). A userinfo is everything before the last `@`, as the parser reads it.
 */
function checkRedisUrl(url: string): Record<string, unknown> {
  const shown = JSON.stringify(redactUrl(url))
  const scheme = /^rediss?:\/\//i.exec(url)
  if (scheme === null) throw new CacheConfigError(`Invalid Redis URL ${shown}: ${REDIS_URL_FORM}.`, { option: 'url' })
  const rest = url.slice(scheme[0].length)
  const at = rest.lastIndexOf('@')
  const userinfo = at === -1 ? '' : rest.slice(0, at)
  const authority = (at === -1 ? rest : rest.slice(at + 1)).split(/[/?#]/, 1)[0] ?? ''
  if (/[/?#]/.test(userinfo)) {
    throw new CacheConfigError(
      `Invalid Redis URL ${shown}: the user name or password contains \`/\`, \`?\` or \`#\`, which end a URL's host part. ` +
        'Percent-encode the password (encodeURIComponent(password): %2F, %3F, %23), or pass it in `clientOptions: { password }`.',
      { option: 'url' },
    )
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    const port = /^(?:\[[^\]]*\]|[^:[\]]*)(?::(.*))?$/.exec(authority)?.[1]
    const reason = authority.includes('[') && !/^\[[0-9a-f:.]+\](:\d*)?$/i.test(authority)
      ? 'an IPv6 host goes in brackets, e.g. redis://[::1]:6379'
      : port !== undefined && !/^\d*$/.test(port)
        ? 'the port must be a number'
        : /\s/.test(userinfo)
          ? 'percent-encode the user name and password (encodeURIComponent)'
          : REDIS_URL_FORM
    // No cause: the parser's TypeError holds the whole input, password included.
    throw new CacheConfigError(`Invalid Redis URL ${shown}: ${reason}.`, { option: 'url' })
  }
  try {
    decodeURIComponent(parsed.username)
    decodeURIComponent(parsed.password)
  } catch {
    throw new CacheConfigError(`Invalid Redis URL ${shown}: the user name or password has a \`%\` that is not a percent-escape; write it as %25.`, { option: 'url' })
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d+$/.test(parsed.pathname)) {
    throw new CacheConfigError(`Invalid Redis URL ${shown}: the path must be a database number such as /0, not ${JSON.stringify(redactText(parsed.pathname))}.`, { option: 'url' })
  }
  return {}
}

/** A file: or sqlite: URL names a file or folder, never an account: refuse a userinfo before it becomes a name. */
function refuseUserinfo(url: string, example: string): void {
  if (redactUrl(url) === url) return
  throw new CacheConfigError(
    `The URL ${JSON.stringify(redactUrl(url))} has a user or password before an \`@\`: it names a file or folder, never an account. ` +
      `Write e.g. ${example} (for an \`@\` in a name, start with ./).`,
    { option: 'url' },
  )
}

/** Whether an import failed because a package is not installed. */
function isMissing(error: unknown, ...packages: string[]): boolean {
  const e = error as { code?: string; message?: string }
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && packages.some((p) => e.message?.includes(p) === true)
}

/**
 * `sqlite:./app.db`, `sqlite:///var/cache/app.db` (absolute), `sqlite://relative/app.db`,
 * `sqlite::memory:`.
 */
export function sqliteOptionsFromUrl(url: string): Record<string, unknown> {
  refuseUserinfo(url, "'sqlite:./.cache/app.sqlite'")
  const path = pathFromUrl(url)
  if (path.trim() === '') {
    throw new CacheConfigError(`The URL ${JSON.stringify(redactUrl(url))} has no path: write e.g. 'sqlite:./.cache/app.sqlite' or 'sqlite::memory:'.`, { option: 'url' })
  }
  return { path }
}

/** Every adapter cachekit ships, by type. Later adapters add one entry each. */
export const ADAPTERS: readonly AdapterDefinition[] = [
  {
    type: 'memory',
    aliases: ['simple'],
    options: { maxBytes: 'size' },
    schemes: ['memory'],
    load: async () => (await import('../adapters/memory.js')).memoryAdapter as AdapterFactory<Record<string, unknown>>,
  },
  {
    type: 'filesystem',
    // Flask-Caching's `FileSystemCache` (and `filesystemcache`) reach it through the lowercase, strip-"cache" rule.
    aliases: ['file', 'fs', 'files'],
    options: { dir: 'string', dirMode: 'number', fileMode: 'number', lockStaleTimeout: 'duration', purgeInterval: 'duration' },
    schemes: ['file'],
    fromUrl(url) {
      refuseUserinfo(url, "'file:./cache' or 'file:///var/cache/app'")
      const dir = pathFromUrl(url)
      if (dir === '') throw new CacheConfigError(`The URL ${JSON.stringify(redactUrl(url))} names no folder: write file:./cache or file:///var/cache/app.`, { option: 'url' })
      return { dir }
    },
    env: { CACHE_DIR: 'dir' },
    load: async () => (await import('../adapters/filesystem/index.js')).filesystemAdapter as AdapterFactory<Record<string, unknown>>,
  },
  {
    type: 'null',
    aliases: ['none'],
    options: {},
    schemes: ['null'],
    load: async () => (await import('../adapters/null.js')).nullAdapter as AdapterFactory<Record<string, unknown>>,
  },
  {
    type: 'sqlite',
    aliases: ['sqlite3'],
    options: { path: 'string', table: 'string', busyTimeout: 'duration', purgeInterval: 'duration', purgeBatchSize: 'number', driver: 'string' },
    schemes: ['sqlite', 'sqlite3'],
    fromUrl: sqliteOptionsFromUrl,
    env: { CACHE_SQLITE_PATH: 'path' },
    // The binding (better-sqlite3 or node:sqlite) is loaded by the factory, so a missing one is a clear error at `ready()`.
    load: async () => (await import('../adapters/sqlite/index.js')).sqliteAdapter as AdapterFactory<Record<string, unknown>>,
  },
  {
    type: 'redis',
    aliases: ['valkey'],
    options: {
      client: 'object',
      cluster: 'object',
      sentinel: 'object',
      connectTimeout: 'duration',
      commandTimeout: 'duration',
      clearAll: 'boolean',
      clientOptions: 'object',
    },
    schemes: ['redis', 'rediss'],
    fromUrl: checkRedisUrl,
    env: { CACHE_REDIS_URL: 'url' },
    load: async () => {
      try {
        return (await import('../adapters/redis/index.js')).redisAdapter as AdapterFactory<Record<string, unknown>>
      } catch (error) {
        if (isMissing(error, '@keyv/redis', '@redis/client')) {
          throw new CacheConfigError('The redis backend needs @keyv/redis: run `npm install @keyv/redis`.', { option: 'type', cause: error })
        }
        throw error
      }
    },
  },
  {
    type: 'keyv',
    options: { store: 'object', shared: 'boolean', connectTimeout: 'duration', commandTimeout: 'duration' },
    load: async () => (await import('../adapters/keyv.js')).keyvAdapter as unknown as AdapterFactory<Record<string, unknown>>,
  },
  memcachedDefinition,
  postgresDefinition,
  mysqlDefinition,
]

/** The definition for a type or alias, or `undefined`. */
export function findAdapter(type: string): AdapterDefinition | undefined {
  return ADAPTERS.find((d) => d.type === type || d.aliases?.includes(type))
}
