import { mysqlDefinition } from '../adapters/mysql/definition.js'
import { postgresDefinition } from '../adapters/postgres/definition.js'
import type { AdapterFactory } from './adapter.js'
import { CacheConfigError } from './errors.js'

/**
 * The kind of an adapter option, checked at `init` before the adapter (and its driver) is loaded.
 * `'duration'` accepts a {@link Duration}; `'any'` is checked by the adapter itself.
 */
export type OptionKind = 'string' | 'number' | 'boolean' | 'duration' | 'object' | 'function' | 'any'

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

/** A URL's scheme is known; refuse one that is not a URL at all before anything connects. */
function checkRedisUrl(url: string): Record<string, unknown> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (cause) {
    throw new CacheConfigError(`Invalid Redis URL: write it as redis://[user:password@]host:port[/db] (or rediss:// for TLS).`, { option: 'url', cause })
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d+$/.test(parsed.pathname)) {
    throw new CacheConfigError(`Invalid Redis URL: the path must be a database number such as /0, not ${JSON.stringify(parsed.pathname)}.`, { option: 'url' })
  }
  return {}
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
  const path = pathFromUrl(url)
  if (path.trim() === '') {
    throw new CacheConfigError(`The URL ${JSON.stringify(url)} has no path: write e.g. 'sqlite:./.cache/app.sqlite' or 'sqlite::memory:'.`, { option: 'url' })
  }
  return { path }
}

/** Every adapter cachekit ships, by type. Later adapters add one entry each. */
export const ADAPTERS: readonly AdapterDefinition[] = [
  {
    type: 'memory',
    aliases: ['simple'],
    options: {},
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
      const dir = pathFromUrl(url)
      if (dir === '') throw new CacheConfigError(`The URL ${JSON.stringify(url)} names no folder: write file:./cache or file:///var/cache/app.`, { option: 'url' })
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
    options: { path: 'string', table: 'string', busyTimeout: 'duration', purgeInterval: 'duration', purgeBatchSize: 'number' },
    schemes: ['sqlite', 'sqlite3'],
    fromUrl: sqliteOptionsFromUrl,
    env: { CACHE_SQLITE_PATH: 'path' },
    // better-sqlite3 itself is loaded by the factory, so a missing native module is a clear error at `ready()`.
    load: async () => (await import('../adapters/sqlite.js')).sqliteAdapter as AdapterFactory<Record<string, unknown>>,
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
  postgresDefinition,
  mysqlDefinition,
]

/** The definition for a type or alias, or `undefined`. */
export function findAdapter(type: string): AdapterDefinition | undefined {
  return ADAPTERS.find((d) => d.type === type || d.aliases?.includes(type))
}
