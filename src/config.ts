import type { KeyvStoreOption } from '../adapters/keyv.js'
import type { MemcachedOptions } from '../adapters/memcached/definition.js'
import type { MysqlAdapterOptions, MysqlPool } from '../adapters/mysql/definition.js'
import type { PostgresAdapterOptions, PostgresPool } from '../adapters/postgres/definition.js'
import { resolve as resolvePath } from 'node:path'
import type { AdapterContext, CacheAdapter } from './adapter.js'
import type { SerializerOption } from './codec.js'
import { parseDuration, type Duration, type Milliseconds } from './duration.js'
import { CacheConfigError, CacheError } from './errors.js'
import { redactError, redactText, redactUrl } from './redact.js'
import { parseSize, type Size } from './size.js'
import { ADAPTERS, findAdapter, type AdapterDefinition, type OptionKind } from './registry.js'
import { describeLoneSurrogate, isWellFormed, WELL_FORMED_FIX } from './well-formed.js'

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
}

/** A Redis node as @redis/client takes it: `{ url: 'redis://10.0.0.1:6379' }` or `{ socket: { host, port } }`. */
export interface RedisNodeOption {
  url?: string
  socket?: { host?: string; port?: number; tls?: boolean; [option: string]: unknown }
  [option: string]: unknown
}

/** Options of the backends. Each is read only by the backend that names it. memcached's are in {@link MemcachedOptions}. */
export interface AdapterOptions extends MemcachedOptions, Omit<PostgresAdapterOptions, 'pool'>, Omit<MysqlAdapterOptions, 'pool'> {
  /** postgres: an existing pg Pool (or connected Client); mysql: an existing mysql2 pool. cachekit never ends it. */
  pool?: PostgresPool | MysqlPool
  /**
   * A URL that selects and configures the backend (`redis://...`, `sqlite:./app.db`, `file:./cache`).
   * For Redis: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @default 'redis://127.0.0.1:6379' for `type: 'redis'` without `client`, `cluster` or `sentinel`
   */
  url?: string

  /**
   * memory: the most bytes the entries may take, counted as the UTF-8 bytes of each key plus the bytes of
   * its encoded value; least recently used entries go first, as with `threshold` (both bounds hold). A
   * number of bytes or a string such as `'64mb'` (binary units: 1mb = 1024 KiB). An entry larger than this
   * is not stored: `set` reports the failure (`false` and an `'error'` event under fail-open), and the
   * key's old value stays. `0` means no byte bound; with `threshold: 0` and no `maxBytes`, the memory cache
   * is unbounded, as before, and warns.
   * @default '64mb'
   */
  maxBytes?: Size

  /**
   * filesystem: the folder of the cache, relative to the working directory or absolute. Created if missing
   * (with `dirMode`). Give each application its own: `clear()` empties only cachekit's entries in it, but
   * every process that opens the folder shares its entries. Not on a network file system. Env `CACHE_DIR`.
   * @default '.cache/cachekit'
   */
  dir?: string
  /**
   * filesystem: the permission mode of the folders cachekit creates (the process umask still applies).
   * Must include 0o700.
   * @default 0o700
   */
  dirMode?: number
  /**
   * filesystem: the permission mode of entry files (the process umask still applies). Must include 0o600.
   * @default 0o600
   */
  fileMode?: number
  /**
   * filesystem: after how long a key's lock counts as abandoned when its holder cannot be checked (a
   * process of another host or container). A holder on this machine that has died is detected at once;
   * a live holder keeps a lock for microseconds.
   * @default '10s'
   */
  lockStaleTimeout?: Duration
  /**
   * keyv: the Keyv store to use: a storage adapter (`new KeyvPostgres(...)`, `new KeyvSqlite(...)`,
   * `new KeyvRedis(...)`), a Keyv instance (its store is used; Keyv's own serializer and namespace are
   * bypassed), a `Map`, or `{ module, options }` to construct one (`{ module: '@keyv/sqlite', options:
   * 'sqlite://app.db' }`), which JSON configs can carry. One store object serves one open cache.
   */
  store?: KeyvStoreOption
  /**
   * keyv: other processes use the same store. The capabilities say so, and `inc`/`add` warn once that
   * they are atomic within one process only on this backend.
   * @default false
   */
  shared?: boolean
  /**
   * redis: a client made by @redis/client (`createClient`, `createCluster` or `createSentinel`). cachekit
   * connects it if it is not open yet (and then closes it on `close()`); one already open stays yours to close.
   */
  client?: object
  /**
   * redis: a Redis Cluster, as @redis/client's `createCluster` takes it. cachekit adds its timeouts and turns
   * the offline queue off in `defaults`.
   * @example { rootNodes: [{ url: 'redis://10.0.0.1:7000' }, { url: 'redis://10.0.0.2:7000' }] }
   */
  cluster?: { rootNodes: RedisNodeOption[]; defaults?: Record<string, unknown>; [option: string]: unknown }
  /**
   * redis: Redis Sentinel, as @redis/client's `createSentinel` takes it: the master's `name` and the
   * sentinels to ask.
   * @example { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.1', port: 26379 }] }
   */
  sentinel?: {
    name: string
    sentinelRootNodes: { host: string; port: number }[]
    nodeClientOptions?: Record<string, unknown>
    sentinelClientOptions?: Record<string, unknown>
    [option: string]: unknown
  }
  /**
   * redis: how long `ready()` waits for the first connection (and each connection attempt may take) before
   * it rejects with a `CacheBackendError` naming the server. cachekit keeps reconnecting in the background.
   * keyv: how long `ready()` waits for the store's first answer; the store stays open and works once it answers.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * redis: the longest any one command may take (it fails at most an eighth of this later, as one sweep
   * checks every command's deadline). A command that times out fails (a miss or `false` with
   * `failOpen`; an error for `inc`, `dec` and `add`). While the server is down commands fail at once.
   * keyv: the same for each call to the Keyv store (each operation, and each step of a `clear()` or `keys()` scan).
   * The commands of one `getOrSet` or memoized call share one deadline, this unless `operationTimeout` is set.
   * @default '1s'
   */
  commandTimeout?: Duration
  /**
   * redis: allow `clear()` with an empty `keyPrefix`, which deletes every key in the database (with SCAN
   * and UNLINK, on every master), other applications' keys included. Refused unless true.
   * @default false
   */
  clearAll?: boolean
  /**
   * redis: more options for @redis/client's `createClient` with `url` (e.g. `{ socket: { ca, cert, key } }`
   * for TLS, `{ database: 2 }`). cachekit's `disableOfflineQueue` and timeouts apply unless set here.
   */
  clientOptions?: Record<string, unknown>
  /**
   * SQLite: the database file, relative to the working directory or absolute (parent folders are created);
   * `':memory:'` for a private in-memory database. Environment: `CACHE_SQLITE_PATH`.
   * @default '.cache/cachekit.sqlite'
   */
  path?: string
  /**
   * SQLite: the table holding the entries (letters, digits, `_`). It is created if missing; a table of
   * another shape is refused, never altered.
   * @default 'cachekit'
   */
  table?: string
  /**
   * SQLite: how long a write waits for another process's lock (then retries as long again without blocking
   * the event loop) before it fails with `CacheBackendError`.
   * @default '5s'
   */
  busyTimeout?: Duration
  /**
   * SQLite and filesystem: how often expired entries are deleted in the background (an unref'd timer);
   * `0` turns it off (`purgeExpired()` still works). On a folder shared by several processes, one of them
   * purges per interval, for all.
   * @default '1m'
   */
  purgeInterval?: Duration
  /**
   * SQLite: the most rows one purge or eviction step deletes before yielding to the event loop.
   * @default 500
   */
  purgeBatchSize?: number
  /**
   * SQLite: the binding, `'better-sqlite3'` (the npm package, a native module) or `'node'` (`node:sqlite`,
   * built into Node 22.13 and later, nothing to compile). Both use the same file format.
   * @default better-sqlite3 where it is installed, else node:sqlite
   */
  driver?: 'node' | 'better-sqlite3'
}

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

/** A config after validation: every common option resolved, adapter options apart. */
export interface ResolvedConfig {
  type: string
  adapter: CacheAdapter | ((context: AdapterContext) => CacheAdapter) | undefined
  definition: AdapterDefinition | undefined
  adapterOptions: Record<string, unknown>
  defaultTtl: Milliseconds
  keyPrefix: string
  threshold: number
  failOpen: boolean
  /** `undefined`: the backend's own `commandTimeout`, if it has one. */
  operationTimeout: Milliseconds | undefined
  serializer: SerializerOption
  now: () => number
}

const COMMON_KINDS: Record<keyof CommonOptions, OptionKind> = {
  type: 'string',
  adapter: 'any',
  defaultTtl: 'duration',
  keyPrefix: 'string',
  threshold: 'number',
  failOpen: 'boolean',
  operationTimeout: 'duration',
  serializer: 'any',
  now: 'function',
}

/** Names users bring from other libraries, and what cachekit calls them. */
const KNOWN_ALIASES: Record<string, string> = {
  ttl: 'defaultTtl',
  timeout: 'defaultTtl',
  defaultTimeout: 'defaultTtl',
  default_timeout: 'defaultTtl',
  prefix: 'keyPrefix',
  namespace: 'keyPrefix',
  key_prefix: 'keyPrefix',
  max: 'threshold',
  maxSize: 'maxBytes',
  maxMemory: 'maxBytes',
  sizeLimit: 'maxBytes',
  maxEntries: 'threshold',
  store: 'adapter',
  cacheDir: 'dir',
  cache_dir: 'dir',
  directory: 'dir',
  mode: 'fileMode',
  backend: 'type',
}

function editDistance(a: string, b: string): number {
  a = a.toLowerCase()
  b = b.toLowerCase()
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length] ?? 0
}

/** The closest of `candidates` to `name`, if close enough to be a likely misspelling. */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  const alias = KNOWN_ALIASES[name]
  if (alias !== undefined && candidates.includes(alias)) return alias
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(name, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

function didYouMean(name: string, candidates: readonly string[]): string {
  const s = suggest(name, candidates)
  return s === undefined ? '' : ` Did you mean \`${s}\`?`
}

function adapterTypes(): string[] {
  return ADAPTERS.map((d) => d.type)
}

/** The adapter definition for a type name; Flask-Caching's names (`SimpleCache`, `RedisCache`) work too. */
function definitionFor(type: string, option: string): AdapterDefinition {
  const def = findAdapter(type) ?? findAdapter(type.toLowerCase().replace(/cache$/, ''))
  if (def === undefined) {
    throw new CacheConfigError(
      `Unknown cache type ${showValue(type)} in \`${option}\`.${didYouMean(type, adapterTypes())} ` +
        `Known types: ${adapterTypes().join(', ')}.`,
      { option },
    )
  }
  return def
}

/** A URL's scheme, lowercase, without the colon. */
function schemeOf(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
}

/** The adapter definition for a URL's scheme, or `undefined`. */
function findAdapterForUrl(url: string): AdapterDefinition | undefined {
  const scheme = schemeOf(url)
  return scheme === undefined ? undefined : ADAPTERS.find((d) => d.schemes?.includes(scheme))
}

/** The adapter definition for a URL, by its scheme. */
function definitionForUrl(url: string, option: string): AdapterDefinition {
  const def = findAdapterForUrl(url)
  if (def === undefined) {
    const schemes = ADAPTERS.flatMap((d) => (d.schemes ?? []).map((s) => `${s}:`))
    throw new CacheConfigError(
      `Unknown cache URL ${JSON.stringify(redactUrl(url))} in \`${option}\`: it must start with one of ${schemes.join(', ')}.`,
      { option },
    )
  }
  return def
}

/**
 * Hide a password in a URL before it reaches a message or a log; works on strings that do not parse as
 * URLs. Kept here for the modules that import it from the config; it lives in `redact.ts`.
 */
export { redactUrl }

/** A value for a message: JSON, with any URL's credentials hidden (a string is taken as a whole URL). */
function showValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(redactUrl(value)) : redactText(JSON.stringify(value) ?? typeof value)
}

const KIND_NAMES: Partial<Record<OptionKind, string>> = {
  duration: "a duration (ms, or a string such as '5m')",
  size: "a size (bytes, or a string such as '64mb')",
  object: 'an object',
}

function checkKind(name: string, value: unknown, kind: OptionKind): void {
  if (kind === 'any' || value === undefined) return
  const ok =
    kind === 'duration' || kind === 'size'
      ? typeof value === 'number' || typeof value === 'string'
      : kind === 'object'
        ? typeof value === 'object' && value !== null
        : typeof value === kind
  if (!ok) {
    throw new CacheConfigError(
      `Option \`${name}\` must be ${KIND_NAMES[kind] ?? `a ${kind}`}, not ${showValue(value)}.`,
      { option: name },
    )
  }
}

/** A duration option in milliseconds, or a `CacheConfigError` naming the option. */
export function durationOption(value: Duration, option: string): Milliseconds {
  try {
    return parseDuration(value, `\`${option}\``, { option })
  } catch (error) {
    // parseDuration's message already names the option and the value.
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
}

/** A size option in bytes, or a `CacheConfigError` naming the option. */
export function sizeOption(value: Size, option: string): number {
  try {
    return parseSize(value, `\`${option}\``, { option })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
}

function asConfigError(error: unknown, option: string): never {
  if (error instanceof CacheConfigError) throw error
  // Anything else (a URIError from a path's percent-escapes) is named too, and kept only with any URL hidden.
  const message = error instanceof Error ? error.message : String(error)
  throw new CacheConfigError(`Option \`${option}\`: ${redactText(message)}`, { option, cause: error instanceof CacheError ? error : redactError(error) })
}

/** What the Cache calls on an adapter: an object lacking one fails later with a raw TypeError instead. */
const ADAPTER_METHODS = [
  'get', 'getMany', 'set', 'setMany', 'add', 'increment', 'delete', 'deleteMany', 'has', 'touch', 'expiresAt', 'clear', 'keys', 'purgeExpired', 'close',
] as const

/** A value in a message about what a factory returned: its type, or its class. */
function describeValue(value: unknown): string {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return showValue(value)
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name
  return name === undefined || name === 'Object' ? 'an object' : `a ${name}`
}

/**
 * Refuse something that is not a {@link CacheAdapter}: an object with `capabilities` and the methods the
 * Cache calls (and `ready`, if any, a function). `fromFactory`: it is what the `adapter` factory returned.
 *
 * @throws {CacheConfigError} naming `adapter` and what is missing.
 */
export function checkAdapter(value: unknown, fromFactory: boolean): asserts value is CacheAdapter {
  const what = fromFactory ? 'Option `adapter`: the factory returned' : 'Option `adapter` is'
  if (typeof value !== 'object' || value === null || typeof (value as PromiseLike<unknown>).then === 'function') {
    const promise = typeof (value as PromiseLike<unknown> | null)?.then === 'function' ? ' (a factory builds the adapter itself, synchronously; its `ready()` may be async)' : ''
    throw new CacheConfigError(`${what} ${describeValue(value)}, not a CacheAdapter${promise}.`, { option: 'adapter' })
  }
  const a = value as Record<string, unknown>
  const missing = ADAPTER_METHODS.filter((m) => typeof a[m] !== 'function').map((m) => `\`${m}\``)
  const problems = [
    ...(typeof a.capabilities !== 'object' || a.capabilities === null ? ['no `capabilities`'] : []),
    ...(missing.length > 0 ? [`no ${missing.join(', ')} method${missing.length === 1 ? '' : 's'}`] : []),
    ...(a.ready !== undefined && typeof a.ready !== 'function' ? ['a `ready` that is not a function'] : []),
  ]
  if (problems.length > 0) {
    throw new CacheConfigError(
      `${what} ${describeValue(value)} that is not a CacheAdapter: it has ${problems.join(' and ')}. Implement the whole contract ` +
        "(see CacheAdapter), and prove it with `runAdapterConformance` from 'cachekit/testing'.",
      { option: 'adapter' },
    )
  }
}

/**
 * Validate a config once, eagerly. Never mutates the caller's object.
 *
 * @throws {CacheConfigError} naming the unknown type or option (with a suggestion for a likely misspelling),
 *   or the option whose value is invalid.
 */
export function resolveConfig(config: CacheConfig): ResolvedConfig {
  if (typeof config === 'string') config = { url: config }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new CacheConfigError(
      `A cache config must be an options object or a URL string, not ${showValue(config)}.`,
    )
  }
  const input = config as Record<string, unknown>
  const adapter = input.adapter as ResolvedConfig['adapter']
  let def: AdapterDefinition | undefined
  if (typeof input.type === 'string') def = definitionFor(input.type, 'type')
  else if (input.type !== undefined) checkKind('type', input.type, 'string')
  else if (typeof input.url === 'string') def = definitionForUrl(input.url, 'url')
  else if (adapter === undefined) {
    throw new CacheConfigError(
      `The cache config has no \`type\`: say which backend to use, e.g. { type: 'memory' } or a URL such as 'redis://127.0.0.1:6379'.`,
      { option: 'type' },
    )
  }
  if (adapter !== undefined) {
    if (typeof adapter !== 'function' && (typeof adapter !== 'object' || adapter === null)) {
      throw new CacheConfigError(
        'Option `adapter` must be a function `(context) => CacheAdapter` or an object implementing CacheAdapter (get, set, add, increment, ...).',
        { option: 'adapter' },
      )
    }
    if (typeof adapter === 'object') checkAdapter(adapter, false)
  }

  const adapterKinds: Record<string, OptionKind> = { url: 'string', ...(def?.options ?? {}) }
  const known = [...Object.keys(COMMON_KINDS), ...Object.keys(adapterKinds)]
  const adapterOptions: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(input)) {
    if (name in COMMON_KINDS) {
      checkKind(name, value, COMMON_KINDS[name as keyof CommonOptions])
    } else if (name in adapterKinds) {
      const kind = adapterKinds[name] ?? 'any'
      checkKind(name, value, kind)
      if (value === undefined) continue
      // Durations and sizes are parsed here, at init, so a bad one fails now; the adapter receives ms or bytes.
      adapterOptions[name] = kind === 'duration' ? durationOption(value as Duration, name) : kind === 'size' ? sizeOption(value as Size, name) : value
    } else {
      const elsewhere = ADAPTERS.find((d) => name in d.options)
      const hint =
        elsewhere !== undefined && def !== undefined
          ? ` It is an option of the \`${elsewhere.type}\` backend, not of \`${def.type}\`.`
          : didYouMean(name, known)
      throw new CacheConfigError(`Unknown cache option \`${name}\`.${hint}`, { option: name })
    }
  }
  if (typeof input.url === 'string' && def !== undefined) {
    // `{ type: 'memory', url: 'redis://...' }` is a mistake one way or the other: never drop the URL silently.
    const urlDef = findAdapterForUrl(input.url)
    if (typeof input.type === 'string' && urlDef !== def) {
      const what = urlDef === undefined ? `a URL of no known backend (${JSON.stringify(schemeOf(input.url) ?? '')}:)` : `a ${urlDef.type} URL`
      throw new CacheConfigError(
        `Options \`type\` (${JSON.stringify(input.type)}) and \`url\` (${what}) say different backends: give one of them` +
          (def.schemes === undefined ? ` (the \`${def.type}\` backend takes no URL).` : `, or a ${def.schemes.map((sc) => `${sc}:`).join(' or ')} URL.`),
        { option: 'url' },
      )
    }
    let fromUrl: Record<string, unknown> = {}
    try {
      fromUrl = def.fromUrl?.(input.url) ?? {}
    } catch (error) {
      asConfigError(error, 'url')
    }
    Object.assign(adapterOptions, fromUrl)
    // A URL that became options (`sqlite:./a.db` is `{ path }`), or that only names the type (`memory:`), is
    // not kept as well: `'memory:'` and `{ type: 'memory' }` are the same config.
    if (Object.keys(fromUrl).length > 0 || def.fromUrl === undefined) delete adapterOptions.url
  }

  let defaultTtl: Milliseconds = DEFAULTS.defaultTtl
  if (input.defaultTtl !== undefined) {
    try {
      defaultTtl = parseDuration(input.defaultTtl as Duration, '`defaultTtl`', { option: 'defaultTtl' })
    } catch (error) {
      asConfigError(error, 'defaultTtl')
    }
  }
  let operationTimeout: Milliseconds | undefined
  if (input.operationTimeout !== undefined) {
    operationTimeout = durationOption(input.operationTimeout as Duration, 'operationTimeout')
    if (operationTimeout === 0) {
      throw new CacheConfigError(
        "Option `operationTimeout` must be more than 0: a call must never wait forever. Leave it out to use the backend's `commandTimeout`.",
        { option: 'operationTimeout' },
      )
    }
  }
  const threshold = (input.threshold as number | undefined) ?? DEFAULTS.threshold
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new CacheConfigError(`Option \`threshold\` must be an integer >= 0 (0 means unbounded), not ${threshold}.`, { option: 'threshold' })
  }
  const serializer = (input.serializer as SerializerOption | undefined) ?? DEFAULTS.serializer
  if (
    serializer !== 'json' &&
    serializer !== 'v8' &&
    (typeof serializer !== 'object' || serializer === null || typeof serializer.encode !== 'function' || typeof serializer.decode !== 'function')
  ) {
    throw new CacheConfigError(`Option \`serializer\` must be 'json', 'v8' or an object with encode and decode, not ${showValue(serializer)}.`, { option: 'serializer' })
  }

  return {
    type: def?.type ?? (typeof adapter === 'object' ? adapter.name : undefined) ?? 'custom',
    adapter,
    definition: def,
    adapterOptions,
    defaultTtl,
    keyPrefix: checkKeyPrefix((input.keyPrefix as string | undefined) ?? DEFAULTS.keyPrefix),
    threshold,
    failOpen: (input.failOpen as boolean | undefined) ?? DEFAULTS.failOpen,
    operationTimeout,
    serializer,
    now: (input.now as (() => number) | undefined) ?? DEFAULTS.now,
  }
}

/** A lone surrogate in the prefix would merge keys on Redis and SQLite, as in a key (see `src/well-formed.ts`). */
function checkKeyPrefix(prefix: string): string {
  if (isWellFormed(prefix)) return prefix
  throw new CacheConfigError(
    `Option \`keyPrefix\` (${JSON.stringify(prefix)}) contains a lone surrogate (${describeLoneSurrogate(prefix)}), which Redis and SQLite would store as U+FFFD. ${WELL_FORMED_FIX}`,
    { option: 'keyPrefix' },
  )
}

const COMPARED = ['type', 'adapter', 'defaultTtl', 'keyPrefix', 'threshold', 'failOpen', 'operationTimeout', 'serializer', 'now'] as const

/**
 * The options in which two resolved configs differ; none means they build the same cache.
 *
 * The rule: data (strings, numbers, durations, plain objects and arrays of them) is compared by value, so
 * the config a dev server's module reload re-creates is equal to the one before. Functions (`now`, an
 * `adapter` factory, a serializer's `encode`/`decode`) and other objects (a store, a client) are equal only
 * when they are the same object: two closures of one factory have the same source and different state.
 */
export function configDifferences(a: ResolvedConfig, b: ResolvedConfig): string[] {
  const differ: string[] = []
  for (const name of COMPARED) if (!deepEqual(a[name], b[name], false)) differ.push(name)
  const names = new Set([...Object.keys(a.adapterOptions), ...Object.keys(b.adapterOptions)])
  for (const name of names) if (!deepEqual(a.adapterOptions[name], b.adapterOptions[name], false)) differ.push(name)
  return differ
}

/**
 * Why `init` with `next` cannot keep the cache opened with `open`, or `undefined` when they are equal (then
 * `init` is a no-op). See {@link configDifferences} for what counts as equal.
 */
export function differentConfigError(open: ResolvedConfig, next: ResolvedConfig): CacheConfigError | undefined {
  const differ = configDifferences(open, next)
  if (differ.length === 0) return undefined
  const valueOf = (c: ResolvedConfig, name: string): unknown => ((COMPARED as readonly string[]).includes(name) ? c[name as keyof ResolvedConfig] : c.adapterOptions[name])
  // Equal but for the identity of a function in it: the case that once passed as equal, said plainly.
  const fn = differ.find((name) => deepEqual(valueOf(open, name), valueOf(next, name), true))
  const quoted = differ.map((d) => `\`${d}\``).join(', ')
  const message =
    fn !== undefined
      ? `The cache is already initialized with a different config: \`${fn}\` is another function${differ.length > 1 ? ` (${quoted} differ)` : ''}. ` +
        'Functions count as equal only when they are the same object, even with the same source. Pass the same function ' +
        '(made once, in a module that a reload does not re-evaluate), or call `await cache.close()` first to change it.'
      : `The cache is already initialized with a different config (${quoted} differ). Call \`await cache.close()\` first to change it. ` +
        'Functions, and objects such as a store or a client, must be the same object to count as equal.'
  return new CacheConfigError(message, { option: fn ?? differ[0] })
}

/** Deep equality of config values; functions by identity, or by source when `bySource` (for messages only). */
function deepEqual(a: unknown, b: unknown, bySource: boolean): boolean {
  if (Object.is(a, b)) return true
  if (bySource && typeof a === 'function' && typeof b === 'function') return a.toString() === b.toString()
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  if (Object.getPrototypeOf(a) !== Object.prototype && !Array.isArray(a)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], bySource))
}

/** Environment variables read by {@link configFromEnv}, beside each backend's own. */
const COMMON_ENV = ['CACHE_URL', 'CACHE_TYPE', 'CACHE_DEFAULT_TTL', 'CACHE_DEFAULT_TIMEOUT', 'CACHE_KEY_PREFIX', 'CACHE_THRESHOLD', 'CACHE_FAIL_OPEN'] as const

function envError(variable: string, value: string, what: string): CacheConfigError {
  return new CacheConfigError(`Environment variable ${variable}=${showValue(value)} is not ${what}.`, { option: variable })
}

/** Options of {@link configFromEnv}. */
export interface EnvOptions {
  /**
   * Told, once per call, of variables that are set but not read: another backend's (`CACHE_DIR` with
   * `CACHE_TYPE=memory`), or `CACHE_DEFAULT_TIMEOUT` beside `CACHE_DEFAULT_TTL`. The message names the
   * variables, never their values. `cache.init()` emits it as a `'warning'` event.
   * @default a line on the console (`console.warn`)
   */
  warn?: (message: string) => void
}

/**
 * A config from `CACHE_*` environment variables, validated as `init` validates; `undefined` when none is
 * set. Reads `CACHE_URL`, `CACHE_TYPE`, `CACHE_DEFAULT_TTL` (a duration) or Flask-Caching's
 * `CACHE_DEFAULT_TIMEOUT` (seconds), `CACHE_KEY_PREFIX`, `CACHE_THRESHOLD`, `CACHE_FAIL_OPEN`, and each
 * backend's own (`CACHE_DIR`, `CACHE_SQLITE_PATH`, `CACHE_REDIS_URL`). A variable set to the empty string
 * counts as unset; variables the chosen backend does not read are named through `options.warn`.
 *
 * @example cache.init(configFromEnv() ?? 'memory:')
 * @throws {CacheConfigError} naming the variable that is malformed: a `CACHE_KEY_PREFIX` of white space
 *   only, or `CACHE_URL` and a backend's variable that say different places, too.
 */
export function configFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: EnvOptions = {},
): (CommonOptions & AdapterOptions & Record<string, unknown>) | undefined {
  const get = (name: string): string | undefined => {
    const v = env[name]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }
  const prefix = env.CACHE_KEY_PREFIX
  if (prefix !== undefined && prefix !== '' && prefix.trim() === '') {
    throw new CacheConfigError(
      `Environment variable CACHE_KEY_PREFIX is white space only (${JSON.stringify(prefix)}), which is almost surely a mistake. ` +
        "Unset it (or set it empty) for no prefix, or give a visible one such as 'app:'.",
      { option: 'CACHE_KEY_PREFIX' },
    )
  }
  const backendVars = ADAPTERS.flatMap((d) => Object.keys(d.env ?? {}))
  if (![...COMMON_ENV, ...backendVars].some((name) => get(name) !== undefined)) return undefined
  const ignored: string[] = []

  const config: Record<string, unknown> = {}
  const url = get('CACHE_URL')
  const type = get('CACHE_TYPE')
  let def: AdapterDefinition | undefined
  if (type !== undefined) {
    def = definitionFor(type, 'CACHE_TYPE')
    config.type = def.type
  }
  if (url !== undefined) {
    const urlDef = definitionForUrl(url, 'CACHE_URL')
    if (def !== undefined && def !== urlDef) {
      throw new CacheConfigError(`CACHE_TYPE=${redactUrl(type ?? '')} and CACHE_URL (a ${urlDef.type} URL) disagree: set one of them.`, { option: 'CACHE_TYPE' })
    }
    def = urlDef
    config.url = url
  }
  if (def === undefined) {
    // A variable several backends read (CACHE_SQL_TABLE) implies none of them while another one is set.
    const setBy = (d: AdapterDefinition, own: boolean) =>
      Object.keys(d.env ?? {}).some((name) => get(name) !== undefined && (!own || backendVars.indexOf(name) === backendVars.lastIndexOf(name)))
    const byOwn = ADAPTERS.filter((d) => setBy(d, true))
    const implied = byOwn.length > 0 ? byOwn : ADAPTERS.filter((d) => setBy(d, false))
    if (implied.length === 1) def = implied[0]
    else if (implied.length > 1) {
      throw new CacheConfigError(
        `Variables of several backends are set (${implied.map((d) => d.type).join(', ')}): set CACHE_TYPE to choose one.`,
        { option: 'CACHE_TYPE' },
      )
    }
    if (def !== undefined) config.type = def.type
    // Only common variables (CACHE_KEY_PREFIX, CACHE_DEFAULT_TTL, ...): they apply to the embedded default.
    else Object.assign(config, EMBEDDED_DEFAULT)
  }
  for (const [variable, option] of Object.entries(def?.env ?? {})) {
    const v = get(variable)
    if (v === undefined) continue
    if (url !== undefined && def !== undefined && saysOtherwise(def, url, option, v)) {
      throw new CacheConfigError(`CACHE_URL and ${variable} both say where the ${def.type} cache is, and differently: set one of them.`, { option: variable })
    }
    config[option] = v
  }
  const chosen = def ?? findAdapter(EMBEDDED_DEFAULT.type)
  ignored.push(...backendVars.filter((name) => get(name) !== undefined && chosen?.env?.[name] === undefined))

  const ttl = get('CACHE_DEFAULT_TTL')
  const timeout = get('CACHE_DEFAULT_TIMEOUT')
  if (ttl !== undefined) {
    try {
      config.defaultTtl = parseDuration(/^\d+(\.\d+)?$/.test(ttl) ? Number(ttl) : ttl)
    } catch {
      throw envError('CACHE_DEFAULT_TTL', ttl, "a duration (ms, or a number and a unit such as '5m')")
    }
    if (timeout !== undefined) ignored.push('CACHE_DEFAULT_TIMEOUT')
  } else if (timeout !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(timeout)) throw envError('CACHE_DEFAULT_TIMEOUT', timeout, 'a number of seconds (0 means never expire)')
    config.defaultTtl = Number(timeout) * 1000
  }
  if (prefix !== undefined && prefix !== '') config.keyPrefix = prefix
  const threshold = get('CACHE_THRESHOLD')
  if (threshold !== undefined) {
    if (!/^\d+$/.test(threshold)) throw envError('CACHE_THRESHOLD', threshold, 'an integer >= 0')
    config.threshold = Number(threshold)
  }
  const failOpen = get('CACHE_FAIL_OPEN')
  if (failOpen !== undefined) {
    const v = failOpen.toLowerCase()
    if (['1', 'true', 'yes', 'on'].includes(v)) config.failOpen = true
    else if (['0', 'false', 'no', 'off'].includes(v)) config.failOpen = false
    else throw envError('CACHE_FAIL_OPEN', failOpen, 'a boolean (true/false, 1/0, yes/no, on/off)')
  }
  resolveConfig(config)
  if (ignored.length > 0) (options.warn ?? ((m: string) => console.warn(`cachekit: ${m}`)))(ignoredMessage(ignored, chosen, type !== undefined ? 'CACHE_TYPE' : url !== undefined ? 'CACHE_URL' : undefined))
  return config
}

/** Whether a backend variable (`CACHE_DIR`) says otherwise than `CACHE_URL` about the option it sets. */
function saysOtherwise(def: AdapterDefinition, url: string, option: string, value: string): boolean {
  if (option === 'url') return value !== url
  let fromUrl: Record<string, unknown>
  try {
    fromUrl = def.fromUrl?.(url) ?? {}
  } catch {
    return false // the URL's own error is reported by the validation that follows
  }
  return option in fromUrl && fromUrl[option] !== value
}

function ignoredMessage(names: string[], chosen: AdapterDefinition | undefined, by: string | undefined): string {
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
  const verb = names.length === 1 ? 'is' : 'are'
  const backends = names.filter((n) => n !== 'CACHE_DEFAULT_TIMEOUT')
  const reasons: string[] = []
  if (backends.length > 0) {
    const source = by === undefined ? 'the embedded default' : `from ${by}`
    reasons.push(`the backend is ${chosen?.type ?? 'another'} (${source}), which does not read ${backends.length === 1 ? 'it' : 'them'}`)
  }
  if (names.includes('CACHE_DEFAULT_TIMEOUT')) reasons.push('CACHE_DEFAULT_TTL is set and wins over CACHE_DEFAULT_TIMEOUT')
  return `${list} ${verb} set but ignored: ${reasons.join('; ')}. Unset ${names.length === 1 ? 'it' : 'them'} to silence this.`
}
