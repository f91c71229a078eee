/** The options every cache has, their kinds and their defaults: the one place for each. */
import { resolve as resolvePath } from 'node:path'
import type { BuiltinAdapterOptions } from '../../adapters/index.js'
import type { AdapterContext, CacheAdapter } from '../adapter.js'
import type { SerializerOption } from '../codec.js'
import type { OptionKind } from '../definition.js'
import type { Duration } from '../duration.js'
import type { L1Option } from '../tier/options.js'

/** Options every cache has, whatever its backend. */
export interface CommonOptions {
  /**
   * The backend: `'memory'`, `'null'`, or one a later section of the README names. Optional when `adapter`
   * is given, or when `url` says it.
   */
  type?: string
  /**
   * Your own backend instead of `type`: a function that builds it from the cache's context (its clock,
   * `threshold` and event channel, so that `now` reaches it), or an adapter you have already built.
   *
   * @example createCache({ adapter: (context) => myAdapter({ url }, context) })
   */
  adapter?: CacheAdapter | ((context: AdapterContext) => CacheAdapter)
  /**
   * The TTL of entries written without one. `0` means never expire.
   * @default '5m'
   */
  defaultTtl?: Duration
  /**
   * Prepended to every key. Two caches with different prefixes never see each other's keys, and `clear()`
   * removes only keys under its own prefix.
   * @default ''
   */
  keyPrefix?: string
  /**
   * The most entries a local backend keeps (memory, filesystem, SQLite); `0` means unbounded.
   * @default 10000
   */
  threshold?: number
  /**
   * On a backend failure, reads are misses and writes return `false` (both emit `'error'`) instead of
   * throwing. `inc`, `dec` and `add` always throw: a counter is never faked.
   * @default true
   */
  failOpen?: boolean
  /**
   * The longest one call (`get`, `set`, `getOrSet`, a memoized call, ...) waits for the backend: every
   * command it sends shares this one deadline, and the factory's (or memoized function's) own time does not
   * count. A call that reaches it, or whose command fails, sends nothing more and goes on as on a backend
   * failure (with `failOpen`, `getOrSet` returns the factory's value without storing it). On backends that
   * time their commands (Redis, the keyv bridge) one command never waits longer than this either.
   * @default the backend's `commandTimeout` (Redis, keyv: '1s'); none on the local backends
   */
  operationTimeout?: Duration
  /**
   * How values become payloads: `'json'` (JSON plus Date, Map, Set, BigInt, Buffer), `'v8'` (structured
   * clone), or `{ encode, decode }`. Integers are stored as decimal text with every serializer.
   * @default 'json'
   */
  serializer?: SerializerOption
  /**
   * The clock for every expiry decision, in ms since the epoch. Inject one in tests so TTLs need no sleep.
   * A second `init` counts it equal only if it is the same function (as for every function option).
   * @default Date.now
   */
  now?: () => number
  /**
   * A memory tier in this process in front of a shared backend (SQLite, Redis; memcached and the keyv
   * bridge bounded by `l1.ttl` alone): reads of values read before cost no round trip and no decode, and
   * other processes' writes reach it through the backend's invalidation channel. `true` for the defaults,
   * or options (see docs/tiered.md).
   *
   * @example cache.init({ type: 'redis', url, l1: { threshold: 50_000, maxBytes: '64mb', ttl: '1m' } })
   * @default false
   */
  l1?: L1Option
  /**
   * Every this often (from 100ms to 1h), write this process's counters (`stats()`: hits, misses, sets,
   * deletes, errors, the memory tier's) to the backend, under a bookkeeping key of its own, so that
   * `cachekit stats --watch` shows every process's hit rate and ops/s beside the backend's own figures; a
   * report three periods old counts as gone. On a backend that is not shared (memory, null) or cannot list
   * its keys (memcached) it warns once and writes nothing. `0` or left out: nothing is written.
   *
   * @example cache.init({ url, publishStats: '5s' })
   * @default 0
   */
  publishStats?: Duration
}

/** The option every backend with a URL scheme reads. */
export interface UrlOption {
  /**
   * A URL that selects and configures the backend (`redis://...`, `sqlite:./app.db`, `file:./cache`).
   * For Redis: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @default 'redis://127.0.0.1:6379' for `type: 'redis'` without `client`, `cluster` or `sentinel`
   */
  url?: string
}

/**
 * Options of the built-in backends, as each declares them in its `adapters/<name>/definition.ts`. Each is
 * read only by the backend that declares it.
 */
export type AdapterOptions = UrlOption & BuiltinAdapterOptions

/** A cache's config: an options object, or a URL such as `'memory:'`. */
export type CacheConfig = (CommonOptions & AdapterOptions) | string

/** Every default, in one place. */
export const DEFAULTS = {
  defaultTtl: 5 * 60_000,
  keyPrefix: '',
  threshold: 10_000,
  failOpen: true,
  serializer: 'json',
  now: Date.now,
} as const

/**
 * What `cache.init()` uses when no `CACHE_*` variable is set: a SQLite file under the working directory,
 * created as needed and shared by every process on the machine that runs there (cluster workers, PM2).
 * @default { type: 'sqlite', path: '.cache/cachekit.sqlite' }
 */
export const EMBEDDED_DEFAULT: CommonOptions & AdapterOptions & { type: string } = Object.freeze({ type: 'sqlite', path: '.cache/cachekit.sqlite' })

/** How the start-up notice names the embedded default: the backend and, for a file, its absolute path. */
export function describeEmbeddedDefault(): string {
  const path = EMBEDDED_DEFAULT.path
  return path === undefined ? EMBEDDED_DEFAULT.type : `${EMBEDDED_DEFAULT.type} at ${resolvePath(path)}`
}

/** The kind of each common option, checked by `resolveConfig`. */
export const COMMON_KINDS: Readonly<Record<keyof CommonOptions, OptionKind>> = {
  type: 'string',
  adapter: 'any',
  defaultTtl: 'duration',
  keyPrefix: 'string',
  threshold: 'number',
  failOpen: 'boolean',
  operationTimeout: 'duration',
  serializer: 'any',
  now: 'function',
  l1: 'any',
  publishStats: 'duration',
}

/** Environment variables read by `configFromEnv`, beside each backend's own. */
export const COMMON_ENV: readonly string[] = ['CACHE_URL', 'CACHE_TYPE', 'CACHE_DEFAULT_TTL', 'CACHE_DEFAULT_TIMEOUT', 'CACHE_KEY_PREFIX', 'CACHE_THRESHOLD', 'CACHE_FAIL_OPEN', 'CACHE_L1', 'CACHE_L1_THRESHOLD', 'CACHE_L1_MAX_BYTES', 'CACHE_L1_TTL', 'CACHE_L1_STALENESS', 'CACHE_PUBLISH_STATS']
