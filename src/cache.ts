import { samePayload, type AdapterCapabilities, type AdapterEvent, type CacheAdapter, type ExpiresAt, type Payload } from './adapter.js'
import { Budget } from './budget.js'
import { resolveCodec, type Codec } from './codec.js'
import { checkAdapter, configFromEnv, differentConfigError, describeEmbeddedDefault, EMBEDDED_DEFAULT, resolveConfig, type CacheConfig, type ResolvedConfig } from './config/index.js'
import { parseDuration, type Duration, type Milliseconds } from './duration.js'
import {
  CacheArgumentError,
  CacheBackendError,
  CacheClosedError,
  CacheConfigError,
  CacheError,
  CacheNotInitializedError,
  CacheSerializationError,
  CacheTypeError,
  incrementTypeError,
  CacheUnsupportedError,
  showKey,
} from './errors.js'
import { CacheEmitter, type CacheEventName, type CacheListener } from './events.js'
import { computeOnce, getOrSetSlot, resolveGetOrSetOptions, type GetOrSetOptions } from './getorset.js'
import { BOOKKEEPING, ENGINE, type Engine, type Outcome } from './engine.js'
import { deleteMemoized, memoize, memoized, type Memoized, type MemoizedDecorator, type MemoizeOptions } from './memoize/index.js'
import { checkTags, isTagged, newVersion, refuseTags, resolveSetOptions, stampHolds, TAG_EPOCH_BUCKETS, TAG_KEY_PREFIX, tagBucket, unwrapTagged, versionText, wrapTagged, type SetOptions, type TagRead, type TagStamp } from './tags.js'
import { describeLoneSurrogate, isWellFormed, WELL_FORMED_FIX } from './well-formed.js'
import { freezeDeep, type TierEntry } from './tier/store.js'
import { tieredAdapter, type L1Stats, type Tier } from './tier/tiered.js'
import { checkL1Backend } from './tier/options.js'
import { publishStats, type Publishing } from './published-stats.js'
import { payloadSize, reportRead, traceOperations, type TraceReport } from './trace.js'

/** The longest key accepted, in UTF-16 code units (the prefix not counted). */
export const MAX_KEY_LENGTH = 65_536

/** Counters since `init`, shared by a cache and its namespaces. */
export interface CacheStats {
  type: string
  /** What the backend can do; `undefined` until it is ready. */
  capabilities: AdapterCapabilities | undefined
  keyPrefix: string
  hits: number
  misses: number
  sets: number
  deletes: number
  errors: number
  /** hits / (hits + misses), or 0 before the first read. */
  hitRate: number
  /** The memory tier's counters, when `l1` is on (see docs/tiered.md). */
  l1?: L1Stats
}

/** A factory for `getOrSet`: its result is stored unless it is `undefined`. */
export type Factory<T> = () => T | Promise<T>

/** Everything that exists while a cache is open. Namespaces share it. */
interface Core {
  readonly config: ResolvedConfig
  adapter: CacheAdapter | undefined
  /** The adapter once its factory has run, ready or not: `close()` releases it either way. */
  built: CacheAdapter | undefined
  loading: Promise<CacheAdapter>
  /** `loading` has settled (resolved or rejected). */
  loaded: boolean
  readonly codec: Codec
  readonly now: () => number
  readonly inflight: Map<string, Promise<unknown>>
  /** Invalidations this process made, counted per bucket of tags (see `Engine.tagEpoch`); made at the first. */
  tagEpochs: Uint32Array | undefined
  /** The memory tier, when `l1` is on and the backend has loaded. */
  tier: Tier | undefined
  readonly stats: { hits: number; misses: number; sets: number; deletes: number; errors: number }
  /** Writing the counters to the backend, with `publishStats`. */
  publishing: Publishing | undefined
  /** The backend behind the memory tier, when `l1` is on. */
  inner: CacheAdapter | undefined
}

/** What a cache and all its namespaces share: the open core (or none) and the listeners. */
interface Root {
  core: Core | null
  closed: boolean
  /** Names the singleton in messages: it was used before `init`. */
  singleton: boolean
  readonly emitter: CacheEmitter
}

const NOT_INITIALIZED =
  "The cache is not initialized. Call `cache.init(...)` once at start-up, e.g. `cache.init({ type: 'memory' })`, " +
  "`cache.init('redis://127.0.0.1:6379')`, or `cache.init()` to read CACHE_* environment variables."

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') {
    throw new CacheArgumentError(`A cache key must be a string, not ${typeof key} (${String(key)}).`)
  }
  if (key.length === 0) throw new CacheArgumentError('A cache key must be a non-empty string; got "".', { key })
  if (key.length > MAX_KEY_LENGTH) {
    throw new CacheArgumentError(`The key ${showKey(key)} is ${key.length} characters long; keys are limited to ${MAX_KEY_LENGTH}. Hash long keys first.`, { key })
  }
  if (!isWellFormed(key)) throw loneSurrogate(`The key ${showKey(key)}`, key, { key })
  // A one-character search first: about a third of the cost of `includes('|ck:')`, which every key would pay.
  if (key.indexOf('|') !== -1 && key.includes(BOOKKEEPING)) throw reserved(`The key ${showKey(key)}`, { key })
}

/** `|ck:` marks cachekit's own bookkeeping keys, which `keys()`, events and `stats()` leave out. */
function reserved(what: string, context: { key?: string } = {}): CacheArgumentError {
  return new CacheArgumentError(
    `${what} contains "${BOOKKEEPING}", which marks cachekit's own bookkeeping keys (leases, freshness markers, memoize versions). Use another separator, e.g. "|" or ":".`,
    context,
  )
}

/** Redis and SQLite would store a lone surrogate as U+FFFD, merging distinct keys: every backend refuses it. */
function loneSurrogate(what: string, text: string, context: { key?: string } = {}): CacheArgumentError {
  return new CacheArgumentError(
    `${what} contains a lone surrogate (${describeLoneSurrogate(text)}), which has no UTF-8 form: Redis and SQLite would store it as U+FFFD, ` +
      `merging distinct keys, so cache keys must be well-formed Unicode. ${WELL_FORMED_FIX}`,
    context,
  )
}

/**
 * An adapter's CacheTypeError names the full key (prefix and namespaces included); the caller should read its
 * own. Built from the adapter's `refusal`, or else by quoting the caller's key where the message quotes the full one.
 */
function callersTypeError(error: CacheTypeError, key: string, full: string): CacheTypeError {
  if (error.refusal !== undefined) return incrementTypeError(key, error.refusal)
  return new CacheTypeError(error.message.split(showKey(full)).join(showKey(key)), { key, cause: error })
}

function checkDelta(delta: unknown, key: string): asserts delta is number {
  if (typeof delta !== 'number' || !Number.isSafeInteger(delta)) {
    throw new CacheArgumentError(`inc/dec of ${showKey(key)}: the delta must be a safe integer, not ${String(delta)}.`, { key })
  }
}

async function* iterate<T>(source: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  yield* source
}

/**
 * A cache: one backend, one key prefix, one codec. Use the `cache` singleton configured once with
 * `cache.init(...)`, or independent instances from `createCache(...)`.
 */
export class Cache {
  readonly #root: Root
  readonly #prefix: string
  /** Built once per open core (see `[ENGINE]`), so a getOrSet or memoize hit does not rebuild it. */
  #engine: { core: Core; value: Engine } | undefined

  /** @internal Use `createCache(config)` or the `cache` singleton. */
  constructor(root?: Root, prefix = '') {
    this.#root = root ?? { core: null, closed: false, singleton: false, emitter: new CacheEmitter() }
    this.#prefix = prefix
  }

  // Every public operation publishes on the TracingChannel `cachekit:operation` (see docs/tracing.md).
  static {
    traceOperations(Cache.prototype, (cache) => {
      // A method called on something else (`const { get } = cache`) fails in the method, as without a subscriber.
      if (typeof cache !== 'object' || cache === null || !(#root in cache)) return { backend: 'none', keyPrefix: '' }
      const c = cache as Cache
      const core = c.#root.core
      return { backend: core?.adapter?.name ?? core?.config.type ?? 'none', keyPrefix: c.keyPrefix }
    })
  }

  /** @internal Marks the singleton so its messages show the fix. */
  static singleton(): Cache {
    const c = new Cache()
    c.#root.singleton = true
    return c
  }

  /**
   * Configure the cache: an options object, a URL, or nothing to read `CACHE_*` environment variables
   * (falling back to the embedded default). Validates eagerly; the backend connects in the background and
   * `ready()` tells when it has. Calling it again with an equal config is a no-op: data is compared by value
   * (so the config a module reload re-creates is equal), functions and other objects (`now`, an `adapter`
   * factory, a store) by identity.
   *
   * @example cache.init({ type: 'memory', defaultTtl: '10m' })
   * @throws {CacheConfigError} for an invalid config, or a different config while the cache is open.
   */
  init(config?: CacheConfig): this {
    const root = this.#root
    const fromEnv = config === undefined ? configFromEnv(process.env, { warn: (message) => root.emitter.warnOnce(message) }) : undefined
    const resolved = resolveConfig(config === undefined ? (fromEnv ?? EMBEDDED_DEFAULT) : config)
    if (root.core !== null) {
      const different = differentConfigError(root.core.config, resolved)
      if (different === undefined) return this
      throw different
    }
    const embedded = resolved.type === EMBEDDED_DEFAULT.type && resolved.adapterOptions.path === EMBEDDED_DEFAULT.path
    if (config === undefined && embedded) {
      root.emitter.warnOnce(
        `no backend configured (no config, no CACHE_URL or CACHE_TYPE): using the embedded default, ${describeEmbeddedDefault()}, shared by every process ` +
          'on this machine that starts in this folder. Pass a config to `cache.init()` or set CACHE_URL to choose another backend.',
      )
    }
    const emitter = root.emitter
    const context = {
      now: resolved.now,
      threshold: resolved.threshold,
      bytes: resolved.serializer !== 'json',
      ...(resolved.operationTimeout === undefined ? {} : { operationTimeout: resolved.operationTimeout }),
      emit: (event: AdapterEvent) => {
        if (event.type === 'warning') emitter.warnOnce(event.message)
        else if (event.type === 'corrupt') emitter.emit('corrupt', event.key, event.detail)
        else {
          const error = event.error instanceof CacheError ? event.error : new CacheBackendError(event.error.message, { cause: event.error })
          core.stats.errors++
          emitter.emitError(error, { op: 'background', ...(event.key === undefined ? {} : { key: event.key }) })
        }
      },
    }
    const core: Core = {
      config: resolved,
      adapter: undefined,
      built: undefined,
      loading: Promise.resolve(undefined as unknown as CacheAdapter),
      loaded: false,
      codec: resolveCodec(resolved.serializer),
      now: resolved.now,
      inflight: new Map(),
      tagEpochs: undefined,
      tier: undefined,
      stats: { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 },
      publishing: undefined,
      inner: undefined,
    }
    if (resolved.publishStats > 0) {
      core.publishing = publishStats({
        every: resolved.publishStats,
        prefix: resolved.keyPrefix,
        // Around the memory tier: a report must not take an entry of it (nor count in its figures).
        adapter: () => (core.adapter === undefined ? undefined : (core.inner ?? core.adapter)),
        now: core.now,
        warn: (message) => emitter.warnOnce(message),
        read: () => {
          const l1 = core.tier?.stats()
          return {
            backend: core.adapter?.name ?? resolved.type,
            ...core.stats,
            ...(l1 === undefined ? {} : { l1: { hits: l1.hits, misses: l1.misses, entries: l1.entries, bytes: l1.bytes } }),
          }
        },
      })
    }
    core.loading = (async () => {
      const given = resolved.adapter
      let adapter: CacheAdapter
      if (typeof given === 'function') {
        // The user's factory: what it throws or returns is named as `adapter`, never a raw TypeError later.
        let built: unknown
        try {
          built = given(context)
        } catch (error) {
          if (error instanceof CacheError) throw error
          throw new CacheConfigError(`Option \`adapter\`: the factory threw: ${(error as Error)?.message ?? String(error)}`, { option: 'adapter', cause: error })
        }
        checkAdapter(built, true)
        adapter = built
      } else adapter = given ?? (await loadFactory(resolved))(resolved.adapterOptions, context)
      if (resolved.l1 !== undefined) {
        const inner = adapter
        if (!inner.capabilities.shared) {
          core.built = inner
          throw new CacheConfigError(
            `Option \`l1\`: the ${inner.name} backend is not shared between processes, so a memory tier in front of it would only copy it. Leave \`l1\` out` +
              (inner.name === 'keyv' ? ', or set `shared: true` if the store is one that several processes share.' : '.'),
            { option: 'l1' },
          )
        }
        core.built = inner
        core.inner = inner
        // An adapter passed in as an object is named only now: the same refusals as for its type.
        if (resolved.definition === undefined) checkL1Backend(inner.name)
        const tiered = tieredAdapter(inner, resolved.l1, {
          now: resolved.now,
          prefix: resolved.keyPrefix,
          warn: (message) => emitter.warnOnce(message),
          onState: (up, reason) => {
            emitter.emit('l1', up ? 'restored' : 'bypassed', reason)
            if (!up) {
              core.stats.errors++
              emitter.emitError(new CacheBackendError(`The memory tier (l1) is bypassed until its invalidation channel is back: ${reason}`), { op: 'l1' })
            }
          },
        })
        core.tier = tiered.tier
        adapter = tiered
      }
      core.built = adapter
      try {
        await adapter.ready?.()
      } catch (error) {
        // Unreachable at start-up (not misconfigured): later calls go to the adapter, each failing promptly
        // (fail-open applies), and it works again when the backend comes up, without a restart.
        if (error instanceof CacheBackendError) core.adapter = adapter
        throw error
      } finally {
        core.loaded = true
      }
      core.adapter = adapter
      return adapter
    })()
    // A failure here reaches whoever awaits `ready()` or an operation; never an unhandled rejection.
    core.loading.catch(() => {})
    // The first report of the counters as soon as the backend is there (the timer's first try may be earlier).
    if (core.publishing !== undefined) void core.loading.then(() => core.publishing?.kick(), () => core.publishing?.kick())
    root.core = core
    root.closed = false
    return this
  }

  /**
   * Resolves when the backend can take commands.
   * @throws {CacheBackendError} when the backend is unreachable; {@link CacheConfigError} when its driver is missing.
   */
  async ready(): Promise<void> {
    const core = this.#core()
    const loaded = core.loaded
    try {
      await core.loading
    } catch (error) {
      // The backend was unreachable at start-up. A verdict reached while this call waited is fresh: report
      // it (asking again would wait a second connect timeout). An older one may be stale: ask again.
      if (!loaded || core.adapter?.ready === undefined) throw error
      await core.adapter.ready()
    }
  }

  /** True once `init` has run and until `close()`. */
  get initialized(): boolean {
    return this.#root.core !== null
  }

  /** The full key prefix of this cache (its config's `keyPrefix` plus any namespaces). */
  get keyPrefix(): string {
    return (this.#root.core?.config.keyPrefix ?? '') + this.#prefix
  }

  /**
   * A view of this cache whose keys all start with `prefix` (after this cache's own). It shares the backend,
   * the listeners and the stats; its `clear()` removes only its own keys. Works before `init`.
   *
   * @example const sessions = cache.namespace('session:')
   */
  namespace(prefix: string): Cache {
    if (typeof prefix !== 'string' || prefix.length === 0) {
      throw new CacheArgumentError(`A namespace must be a non-empty string, not ${JSON.stringify(prefix)}.`)
    }
    if (!isWellFormed(prefix)) throw loneSurrogate(`The namespace prefix ${showKey(prefix)}`, prefix)
    if (prefix.includes(BOOKKEEPING)) throw reserved(`The namespace prefix ${showKey(prefix)}`)
    return new Cache(this.#root, this.#prefix + prefix)
  }

  /** The value at `key`, or `undefined` on a miss (or a backend failure, with `failOpen`). */
  get<T = unknown>(key: string): Promise<T | undefined>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async get<T = unknown>(key: string, _b?: unknown, _c?: unknown, report?: TraceReport): Promise<T | undefined> {
    checkKey(key)
    const core = this.#core()
    const tier = core.tier
    if (tier !== undefined && report === undefined) {
      // A hit of the memory tier answers here, without the await of #read (one promise fewer per hit).
      const entry = tier.lookup(this.#full(core, key))
      if (entry !== undefined) {
        const held = this.#fromTier<T>(core, tier, key, entry)
        this.#record(core, held === undefined ? 'miss' : 'hit', key)
        return held
      }
    }
    const value = await this.#read<T>(core, key, undefined, false, report)
    this.#record(core, value === undefined ? 'miss' : 'hit', key)
    return value
  }

  /** The value at `key`, counted and emitted by the caller, as one command of a call with a deadline when `budget` is given. */
  async #read<T>(core: Core, key: string, budget: Budget | undefined, fresh = false, report?: TraceReport): Promise<T | undefined> {
    const tier = core.tier
    if (fresh && tier !== undefined) {
      let payload: Payload | undefined
      try {
        payload = await tier.fresh(this.#full(core, key), budget?.timeout('get', key))
      } catch (error) {
        return this.#failIn(budget, core, 'get', key, error, undefined)
      }
      if (payload === undefined) return undefined
      if (isTagged(payload)) return (await this.#open<T>(core, [key], [payload], budget, undefined))[0]
      return this.#decode<T>(core, key, payload)
    }
    if (tier !== undefined) {
      // A hit on a value decoded before: no round trip and no decode.
      const entry = tier.lookup(this.#full(core, key))
      if (entry !== undefined) {
        const held = this.#fromTier<T>(core, tier, key, entry)
        if (report !== undefined && held !== undefined) reportRead(report, 'l1', entry.payload)
        return held
      }
    }
    let payload: Payload | undefined
    // Traced only: whether the tier answered, from its hit count (an entry written or tagged, not decoded by
    // lookup, is answered by the tiered adapter's get, synchronously within the call).
    let fromTier = false
    // Inline rather than through #send, as on every hot path: a closure per call costs more than the call.
    try {
      const adapter = core.adapter ?? (await core.loading)
      if (report === undefined || tier === undefined) payload = await adapter.get(this.#full(core, key), budget?.timeout('get', key))
      else {
        const hits = tier.stats().hits
        const read = adapter.get(this.#full(core, key), budget?.timeout('get', key))
        fromTier = tier.stats().hits > hits
        payload = await read
      }
    } catch (error) {
      return this.#failIn(budget, core, 'get', key, error, undefined)
    }
    if (payload === undefined) return undefined
    let value: T | undefined
    if (isTagged(payload)) value = (await this.#open<T>(core, [key], [payload], budget, undefined))[0]
    else if (tier !== undefined) {
      const entry = tier.peek(this.#full(core, key))
      value = entry !== undefined && entry.payload === payload ? this.#fromTier<T>(core, tier, key, entry) : this.#decode<T>(core, key, payload)
    } else value = this.#decode<T>(core, key, payload)
    // Said of a hit only: a payload that decodes to a miss (stale by its tags, corrupt) is no answer.
    if (report !== undefined && value !== undefined) reportRead(report, fromTier ? 'l1' : 'backend', payload)
    return value
  }

  /**
   * The value of an untagged entry of the memory tier: the one frozen value once decoded (`l1.values`
   * 'frozen', for a value a freeze protects), else a copy decoded from its payload.
   */
  #fromTier<T>(core: Core, tier: Tier, key: string, entry: TierEntry): T | undefined {
    if (entry.state === 1) return entry.value as T
    const value = this.#decode<T>(core, key, entry.payload)
    if (entry.state === 0 && value !== undefined) {
      if (tier.settings.values === 'frozen' && freezeDeep(value)) {
        entry.value = value
        entry.state = 1
      } else entry.state = 2
    }
    return value
  }

  /** Values in the order of `keys`; `undefined` for each miss. */
  getMany<T = unknown>(keys: readonly string[]): Promise<(T | undefined)[]>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async getMany<T = unknown>(keys: readonly string[], _b?: unknown, _c?: unknown, report?: TraceReport): Promise<(T | undefined)[]> {
    const core = this.#core()
    if (!Array.isArray(keys)) throw new CacheArgumentError('getMany takes an array of keys.')
    keys.forEach(checkKey)
    const values = await this.#readMany<T>(core, keys, undefined, report)
    for (let i = 0; i < values.length; i++) this.#record(core, values[i] === undefined ? 'miss' : 'hit', keys[i] as string)
    return values
  }

  async #readMany<T>(core: Core, keys: readonly string[], budget: Budget | undefined, report?: TraceReport): Promise<(T | undefined)[]> {
    if (keys.length === 0) return []
    let payloads: (Payload | undefined)[]
    try {
      payloads = await (core.adapter ?? (await core.loading)).getMany(keys.map((k) => this.#full(core, k)), budget?.timeout('getMany', keys[0]))
    } catch (error) {
      return this.#failIn(budget, core, 'getMany', keys[0], error, keys.map(() => undefined))
    }
    const tier = core.tier
    const values = payloads.some((payload) => payload !== undefined && isTagged(payload))
      ? await this.#open<T>(core, keys, payloads, budget, undefined)
      : keys.map((key, i) => {
          const payload = payloads[i]
          if (payload === undefined) return undefined
          if (tier !== undefined) {
            const entry = tier.peek(this.#full(core, key))
            if (entry !== undefined && entry.payload === payload) return this.#fromTier<T>(core, tier, key, entry)
          }
          return this.#decode<T>(core, key, payload)
        })
    // Traced: the bytes of the entries that were hits (none said when there was no hit, as for a miss of get).
    if (report !== undefined) {
      let bytes: number | undefined
      for (let i = 0; i < values.length; i++) if (values[i] !== undefined) bytes = (bytes ?? 0) + payloadSize(payloads[i] as Payload)
      if (bytes !== undefined) report.itemSize = bytes
    }
    return values
  }

  /**
   * Store `value` for `ttl` (default: the cache's `defaultTtl`; `0` never expires). The third argument is a
   * TTL, or options `{ ttl, tags }`: a tagged entry is a miss once `invalidateTags` names one of its tags
   * (see docs/tags.md; the versions of its tags are read when `set` is called).
   *
   * @example await cache.set('user:1', user, { ttl: '10m', tags: ['users', 'org:7'] })
   * @returns true if stored; false if the backend failed and `failOpen` is on.
   * @throws {CacheArgumentError} for an empty key, `undefined`, a bad TTL or bad tags; {@link CacheSerializationError} for a value that cannot be encoded.
   */
  set(key: string, value: unknown, ttl?: Duration | SetOptions): Promise<boolean>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async set(key: string, value: unknown, ttl?: Duration | SetOptions, report?: TraceReport): Promise<boolean> {
    checkKey(key)
    const core = this.#core()
    let stored: boolean
    if (typeof ttl === 'object') {
      const options = resolveSetOptions(() => `set(${showKey(key)})`, key, ttl)
      stored = await this.#write(core, key, value, options.ttl, undefined, options.tags.length === 0 ? undefined : options.tags, undefined, report)
    } else stored = await this.#write(core, key, value, ttl, undefined, undefined, undefined, report)
    if (stored) this.#record(core, 'set', key)
    return stored
  }

  /**
   * Store one entry. A tagged one carries the versions of its tags: `stamp` when the caller read them
   * earlier (getOrSet and memoize read them before their factory runs), else the current ones, read here.
   */
  async #write(
    core: Core,
    key: string,
    value: unknown,
    ttl: Duration | undefined,
    budget: Budget | undefined,
    tags?: readonly string[],
    read?: TagRead,
    report?: TraceReport,
  ): Promise<boolean> {
    let payload = this.#encode(core, key, value)
    const expiresAt = this.#expiresAt(core, key, ttl)
    try {
      const adapter = core.adapter ?? (await core.loading)
      let stamp: TagStamp | undefined
      if (read !== undefined) {
        stamp = await this.#settle(adapter, core, read, budget, key)
        if (stamp === undefined) return false
      } else if (tags !== undefined) {
        stamp = await this.#stamp(adapter, core, tags, budget, key)
        if (stamp === undefined) return false
      }
      if (stamp !== undefined) payload = wrapTagged(payload, stamp)
      if (report !== undefined) report.itemSize = payloadSize(payload)
      await adapter.set(this.#full(core, key), payload, expiresAt, budget?.timeout('set', key))
    } catch (error) {
      return this.#failIn(budget, core, 'set', key, error, false)
    }
    return true
  }

  /**
   * Store many entries with one TTL (and the same tags): an array of `[key, value]` pairs, or an object.
   * The second argument is a TTL or options `{ ttl, tags }`, as `set`'s third.
   * @returns true if stored; false if the backend failed and `failOpen` is on.
   */
  setMany(entries: Iterable<readonly [string, unknown]> | Record<string, unknown>, ttl?: Duration | SetOptions): Promise<boolean>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async setMany(entries: Iterable<readonly [string, unknown]> | Record<string, unknown>, ttl?: Duration | SetOptions, _c?: unknown, report?: TraceReport): Promise<boolean> {
    const core = this.#core()
    const pairs: (readonly [string, unknown])[] =
      typeof (entries as Iterable<unknown>)[Symbol.iterator] === 'function'
        ? Array.from(entries as Iterable<readonly [string, unknown]>)
        : Object.entries(entries)
    const first = pairs[0]?.[0] ?? ''
    const options = typeof ttl === 'object' ? resolveSetOptions(() => `setMany(${showKey(first)}, ...)`, first, ttl) : { ttl, tags: [] }
    const expiresAt = this.#expiresAt(core, first, options.ttl)
    // Encode everything before writing anything: a bad value leaves the cache as it was.
    const batch = pairs.map(([key, value]) => {
      checkKey(key)
      return { key: this.#full(core, key), value: this.#encode(core, key, value), expiresAt }
    })
    if (batch.length === 0) return true
    const write = async (a: CacheAdapter): Promise<boolean> => {
      if (options.tags.length > 0) {
        const stamp = await this.#stamp(a, core, options.tags, undefined, first)
        if (stamp === undefined) return false
        for (const entry of batch) entry.value = wrapTagged(entry.value, stamp)
      }
      if (report !== undefined) report.itemSize = batch.reduce((n, entry) => n + payloadSize(entry.value), 0)
      await a.setMany(batch)
      return true
    }
    if (!(await this.#send(core, 'setMany', first, undefined, write, false))) return false
    core.stats.sets += batch.length
    const emitter = this.#root.emitter
    if (emitter.listenerCount('set') > 0) for (const [key] of pairs) emitter.emit('set', key)
    return true
  }

  /**
   * Store `value` only if `key` is absent (an expired entry counts as absent, and so does one made stale by
   * `invalidateTags`, which is replaced). Atomic on the backend. The third argument is a TTL or `{ ttl, tags }`.
   * @returns true if this call stored it.
   * @throws {CacheBackendError} on a backend failure, whatever `failOpen` says.
   */
  add(key: string, value: unknown, ttl?: Duration | SetOptions): Promise<boolean>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async add(key: string, value: unknown, ttl?: Duration | SetOptions, report?: TraceReport): Promise<boolean> {
    checkKey(key)
    const core = this.#core()
    const options = typeof ttl === 'object' ? resolveSetOptions(() => `add(${showKey(key)})`, key, ttl) : { ttl, tags: [] }
    const payload = this.#encode(core, key, value)
    const expiresAt = this.#expiresAt(core, key, options.ttl)
    let added: boolean
    try {
      added = await this.#addOrReplaceStale(core.adapter ?? (await core.loading), core, key, payload, expiresAt, options.tags, report)
    } catch (error) {
      return this.#fail(core, 'add', key, error)
    }
    if (added) this.#record(core, 'set', key)
    return added
  }

  /**
   * The user's `add`: atomic, and an entry that every reader sees as a miss because a tag of it was
   * invalidated is absent to it too. Such an entry is removed only if it still holds the stale payload
   * (`deleteIfEquals`), then the `add` is tried once more: a writer that got in between wins, as it should.
   */
  async #addOrReplaceStale(adapter: CacheAdapter, core: Core, key: string, payload: Payload, expiresAt: ExpiresAt, tags: readonly string[], report?: TraceReport): Promise<boolean> {
    if (tags.length > 0) {
      const stamp = await this.#stamp(adapter, core, tags, undefined, key)
      if (stamp === undefined) return false
      payload = wrapTagged(payload, stamp)
    }
    if (report !== undefined) report.itemSize = payloadSize(payload)
    const full = this.#full(core, key)
    if (await adapter.add(full, payload, expiresAt)) return true
    const existing = await adapter.get(full)
    if (existing === undefined) return adapter.add(full, payload, expiresAt)
    if (!isTagged(existing)) return false
    let stamp: TagStamp | undefined
    try {
      stamp = unwrapTagged(existing).stamp
    } catch {
      // A header that cannot be read is a corrupt entry, which every read takes for a miss: replace it too.
      stamp = undefined
    }
    if (stamp !== undefined && stampHolds(stamp, await this.#versions(adapter, core, stamp.tags, undefined, key))) return false
    if (adapter.deleteIfEquals !== undefined) await adapter.deleteIfEquals(full, existing)
    else {
      const again = await adapter.get(full)
      if (again !== undefined && samePayload(again, existing)) await adapter.delete(full)
    }
    return adapter.add(full, payload, expiresAt)
  }

  async #add(core: Core, key: string, value: unknown, ttl: Duration | undefined, budget: Budget | undefined): Promise<boolean> {
    const payload = this.#encode(core, key, value)
    const expiresAt = this.#expiresAt(core, key, ttl)
    try {
      return await (core.adapter ?? (await core.loading)).add(this.#full(core, key), payload, expiresAt, budget?.timeout('add', key))
    } catch (error) {
      return this.#failIn(budget, core, 'add', key, error)
    }
  }

  /** Remove `key`. @returns true if it existed. */
  async delete(key: string): Promise<boolean> {
    checkKey(key)
    const core = this.#core()
    const existed = await this.#remove(core, key, undefined)
    // A failed delete (fail-open) is not a delete.
    if (existed !== undefined) {
      core.stats.deletes++
      this.#root.emitter.emit('delete', key)
    }
    return existed === true
  }

  /** `undefined` when the backend failed (with fail-open). */
  async #remove(core: Core, key: string, budget: Budget | undefined): Promise<boolean | undefined> {
    try {
      return await (core.adapter ?? (await core.loading)).delete(this.#full(core, key), budget?.timeout('delete', key))
    } catch (error) {
      return this.#failIn(budget, core, 'delete', key, error, undefined)
    }
  }

  /** Remove many keys. @returns how many existed. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    const core = this.#core()
    if (!Array.isArray(keys)) throw new CacheArgumentError('deleteMany takes an array of keys.')
    keys.forEach(checkKey)
    if (keys.length === 0) return 0
    let done = false
    const n = await this.#send(
      core,
      'deleteMany',
      keys[0],
      undefined,
      async (a) => {
        const removed = await a.deleteMany(keys.map((k) => this.#full(core, k)))
        done = true
        return removed
      },
      0,
    )
    // A failed deleteMany (fail-open) deleted nothing.
    if (done) core.stats.deletes += keys.length
    return n
  }

  /**
   * True if `key` holds a live entry (for a tagged entry: one whose tags were not invalidated since it was
   * written, which takes reading it and its tags' versions).
   */
  async has(key: string): Promise<boolean> {
    checkKey(key)
    const core = this.#core()
    try {
      const adapter = core.adapter ?? (await core.loading)
      const full = this.#full(core, key)
      // Only a read tells a tagged entry from another, so `has` reads the entry: the same round trip.
      const payload = await adapter.get(full)
      if (payload === undefined) return false
      if (!isTagged(payload)) return true
      let stamp: TagStamp
      try {
        stamp = unwrapTagged(payload).stamp
      } catch {
        return false
      }
      return stampHolds(stamp, await this.#versions(adapter, core, stamp.tags, undefined, key))
    } catch (error) {
      return this.#fail(core, 'has', key, error, false)
    }
  }

  /**
   * Add `delta` (default 1) to the integer at `key`, atomically, and return the result. A missing key starts
   * at 0 and gets `ttl` (default: `defaultTtl`); an existing key keeps its expiry.
   *
   * @example const n = await cache.inc('visits')
   * @throws {CacheTypeError} if the value is not an integer (it stays as it was).
   * @throws {CacheArgumentError} for a delta that is not a safe integer.
   * @throws {CacheBackendError} on a backend failure, whatever `failOpen` says.
   */
  async inc(key: string, delta = 1, ttl?: Duration): Promise<number> {
    checkKey(key)
    checkDelta(delta, key)
    // Only an options object can carry tags: a TTL never builds the label (every inc would pay for it).
    if (typeof ttl === 'object') refuseTags(`inc(${showKey(key)})`, key, ttl)
    return this.#increment(key, delta, ttl)
  }

  /** `inc` once its arguments are checked (`dec` too: a traced `dec` is one operation, not a `dec` and an `inc`). */
  async #increment(key: string, delta: number, ttl: Duration | undefined): Promise<number> {
    const core = this.#core()
    const expiresAt = this.#expiresAt(core, key, ttl)
    try {
      return await (core.adapter ?? (await core.loading)).increment(this.#full(core, key), delta, expiresAt)
    } catch (error) {
      if (error instanceof CacheTypeError) throw callersTypeError(error, key, this.#full(core, key))
      return this.#fail(core, 'inc', key, error)
    }
  }

  /** `inc(key, -delta, ttl)`. */
  async dec(key: string, delta = 1, ttl?: Duration): Promise<number> {
    checkKey(key)
    checkDelta(delta, key)
    // Only an options object can carry tags: a TTL never builds the label (every dec would pay for it).
    if (typeof ttl === 'object') refuseTags(`dec(${showKey(key)})`, key, ttl)
    return this.#increment(key, -delta, ttl)
  }

  /**
   * How long `key` has left, in ms: `null` if it never expires, `undefined` if it is missing or expired
   * (or, with fail-open, if the backend failed).
   *
   * @example await cache.ttl('session:1') // 299_412
   */
  async ttl(key: string): Promise<Milliseconds | null | undefined> {
    checkKey(key)
    const core = this.#core()
    const expiresAt: ExpiresAt | undefined = await this.#send(core, 'ttl', key, undefined, (a) => a.expiresAt(this.#full(core, key)), undefined)
    if (expiresAt === undefined || expiresAt === null) return expiresAt
    // A backend with its own clock (Redis) reports by the wall clock; never a negative time left.
    return Math.max(0, expiresAt - (core.adapter?.capabilities.realClock === true ? Date.now() : core.now()))
  }

  /**
   * Give a live entry a new TTL (default: `defaultTtl`).
   * @returns false if the key is missing or expired.
   */
  async touch(key: string, ttl?: Duration): Promise<boolean> {
    checkKey(key)
    // Only an options object can carry tags: a TTL never builds the label (every touch would pay for it).
    if (typeof ttl === 'object') refuseTags(`touch(${showKey(key)})`, key, ttl)
    return this.#touch(this.#core(), key, ttl, undefined)
  }

  async #touch(core: Core, key: string, ttl: Duration | undefined, budget: Budget | undefined): Promise<boolean> {
    const expiresAt = this.#expiresAt(core, key, ttl)
    return this.#send(core, 'touch', key, budget, (a) => a.touch(this.#full(core, key), expiresAt), false)
  }

  /**
   * The value at `key`, or else the factory's result, stored for `ttl`. A result of `undefined` is returned
   * but not stored; a factory that throws stores nothing and every waiter sees its error.
   *
   * One factory run per key at a time: within a process by a shared promise, and across processes on a
   * shared, atomic backend (SQLite, filesystem, Redis) by a lease, while the others wait for its value.
   * The third argument is a TTL, or options: `{ ttl, grace, timeout, lease, tags }` (see {@link GetOrSetOptions}).
   * With `tags`, the versions of the tags are read before the factory runs, so a value computed while
   * `invalidateTags` runs is stored as already stale.
   *
   * Its commands share one deadline (`operationTimeout`, else the backend's `commandTimeout`), the factory's
   * own time not counted: after a backend failure, or once the deadline has passed, it sends nothing more
   * and, with `failOpen`, returns the factory's value without storing it.
   *
   * @example const report = await cache.getOrSet('report', () => buildReport(), '1h')
   * @example const feed = await cache.getOrSet('feed', loadFeed, { ttl: '1m', grace: '10m', timeout: '200ms' })
   */
  getOrSet<T>(key: string, factory: Factory<T>, options?: Duration | GetOrSetOptions): Promise<T>
  // The fourth parameter is the tracing channel's (src/trace.ts): no caller passes it.
  async getOrSet<T>(key: string, factory: Factory<T>, options?: Duration | GetOrSetOptions, report?: TraceReport): Promise<T> {
    checkKey(key)
    if (typeof factory !== 'function') throw new CacheArgumentError(`getOrSet(${showKey(key)}): the factory must be a function.`, { key })
    const resolved = resolveGetOrSetOptions(key, options)
    const budget = this.#budget(this.#core())
    // The hot path, a fresh hit, is one read: without grace the value at the key is all there is to read.
    // A miss is not counted here: the single-flight counts the call once, a hit or a miss by whether it ran
    // the factory.
    const core = this.#core()
    if (resolved.grace === 0) {
      const hit = await this.#read<T>(core, key, budget, false, report)
      if (hit !== undefined) {
        this.#record(core, 'hit', key)
        return hit
      }
    }
    const engine = await this[ENGINE]()
    return computeOnce(engine, getOrSetSlot<T>(engine, key, resolved), factory, resolved, budget)
  }

  /**
   * `fn` with its results cached, keyed by its name and its arguments (encoded canonically, hashed with
   * SHA-256), so that keys are equal in every process and after a restart. Concurrent equal calls run `fn`
   * once; errors and `undefined` are not cached, `null` is. See {@link MemoizeOptions}.
   *
   * @example const getUser = cache.memoize(fetchUser, { ttl: '1m' })
   * @throws {CacheConfigError} for an anonymous function without `name`, or an invalid option.
   */
  memoize<A extends unknown[], R>(fn: (...args: A) => R, options?: MemoizeOptions<A, Awaited<R>>): Memoized<A, R> {
    return memoize(this, fn, options)
  }

  /**
   * A method decorator (TypeScript 5 standard decorators): `@cache.memoized({ ttl: '1m' })`. Entries are
   * per instance, identified by the instance's `cacheId()` method or else its `id` field; the method must
   * be async.
   */
  memoized(options?: MemoizeOptions): MemoizedDecorator {
    return memoized(this, options)
  }

  /**
   * Invalidate a memoized function: every entry (O(1), by a new version; no key scan), or with arguments
   * only the entry of that call. On an instance's method (`obj.load`), only that instance's entries.
   * @returns true if the version or the entry was written/removed.
   */
  async deleteMemoized(fn: (...args: never[]) => unknown, ...args: unknown[]): Promise<boolean> {
    return deleteMemoized(fn, args)
  }

  /**
   * Invalidate every entry that carries one of `tags`, in every process sharing the backend: from when this
   * resolves, each is a miss (and expires by its own TTL); an entry written afterwards lives. Constant time,
   * whatever the number of entries: each tag gets a new version, one `setMany`, and nothing is scanned.
   * Tags are shared by a cache and all its namespaces (they live under the config's `keyPrefix`).
   *
   * Within this process, a `getOrSet` or memoized call of a tagged key that started before never stores a
   * value its readers take for fresh: it read the old versions before its factory ran (docs/tags.md).
   *
   * @example await cache.invalidateTags(['org:7'])
   * @returns true if the new versions were written; false if the backend failed and `failOpen` is on (the
   *   tags were then not invalidated: call it again).
   * @throws {CacheArgumentError} for a tag that is not a non-empty string, or more than 64 tags.
   */
  async invalidateTags(tags: readonly string[]): Promise<boolean> {
    const core = this.#core()
    const list = checkTags(tags, 'invalidateTags', undefined)
    if (list.length === 0) return true
    // Before the write: a computation of these tags that starts from here on is a new one (see Engine.tagEpoch).
    const epochs = (core.tagEpochs ??= new Uint32Array(TAG_EPOCH_BUCKETS))
    for (const tag of list) {
      const bucket = tagBucket(tag)
      epochs[bucket] = (epochs[bucket] ?? 0) + 1
    }
    const entries = list.map((tag) => ({ key: this.#tagKey(core, tag), value: newVersion(), expiresAt: null }))
    return this.#send(core, 'invalidateTags', undefined, undefined, async (a) => (await a.setMany(entries), true), false)
  }

  /**
   * Remove every key under this cache's prefix (for a namespace, its own keys only); nothing else in a
   * shared backend. @returns false if the backend failed and `failOpen` is on.
   */
  async clear(): Promise<boolean> {
    const core = this.#core()
    return this.#send(core, 'clear', undefined, undefined, async (a) => (await a.clear(this.#full(core, '')), true), false)
  }

  /** The live keys under this cache's prefix, without the prefix, in no particular order. */
  async *keys(): AsyncGenerator<string> {
    const core = this.#core()
    const prefix = this.#full(core, '')
    const adapter = core.adapter ?? (await core.loading)
    if (adapter.capabilities.listKeys === false) {
      throw new CacheUnsupportedError(
        `keys() is not available on the ${adapter.name} backend: it cannot list its keys. ` +
          'Keep an index of the keys you need under a key of your own, or use a backend that lists keys (Redis, SQLite, filesystem, memory).',
      )
    }
    try {
      for await (const full of iterate(adapter.keys(prefix))) {
        if (!full.startsWith(prefix)) continue
        const key = full.slice(prefix.length)
        // Leases, freshness markers and memoize versions are cachekit's, not the user's.
        if (!key.includes(BOOKKEEPING)) yield key
      }
    } catch (error) {
      this.#fail(core, 'keys', undefined, error)
    }
  }

  /** Remove expired entries now (backends also purge on a schedule). @returns how many were removed. */
  async purgeExpired(): Promise<number> {
    const core = this.#core()
    return this.#send(core, 'purgeExpired', undefined, undefined, (a) => a.purgeExpired())
  }

  /** Counters since `init`, shared with namespaces. */
  stats(): CacheStats {
    const core = this.#core()
    const { hits, misses } = core.stats
    return {
      type: core.config.type,
      capabilities: core.adapter?.capabilities,
      keyPrefix: this.keyPrefix,
      ...core.stats,
      hitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
      ...(core.tier === undefined ? {} : { l1: core.tier.stats() }),
    }
  }

  /** Listen to `'error'`, `'hit'`, `'miss'`, `'set'`, `'delete'`, `'corrupt'`, `'warning'` or `'l1'`. */
  on<E extends CacheEventName>(event: E, listener: CacheListener<E>): this {
    this.#root.emitter.on(event, listener as (...args: unknown[]) => void)
    return this
  }

  once<E extends CacheEventName>(event: E, listener: CacheListener<E>): this {
    this.#root.emitter.once(event, listener as (...args: unknown[]) => void)
    return this
  }

  off<E extends CacheEventName>(event: E, listener: CacheListener<E>): this {
    this.#root.emitter.off(event, listener as (...args: unknown[]) => void)
    return this
  }

  /**
   * Release the backend (connections, timers, files). Calling it twice is fine; any other call afterwards
   * throws until `init` is called again. Closing a namespace closes the cache it belongs to.
   */
  async close(): Promise<void> {
    const root = this.#root
    const core = root.core
    if (core === null) return
    root.core = null
    root.closed = true
    await core.publishing?.stop()
    // An adapter whose start-up failed may still hold a connection (or keep retrying one): release it too.
    const adapter = core.adapter ?? (await core.loading.catch(() => core.built))
    try {
      await adapter?.close()
    } catch (error) {
      if (error instanceof CacheError) throw error
      throw new CacheBackendError(`close failed on the ${adapter?.name ?? core.config.type} backend: ${(error as Error)?.message ?? String(error)}`, { cause: error })
    }
  }

  /** @internal For getOrSet, its leases and memoize: see `src/engine.ts`. */
  async [ENGINE](): Promise<Engine> {
    const core = this.#core()
    const built = this.#engine
    if (built !== undefined && built.core === core && built.value.adapter !== undefined) return built.value
    // A backend that failed to load is a fail-open matter for the operations themselves; here it means no lease.
    const adapter = core.adapter ?? (await core.loading.catch(() => undefined))
    const emitter = this.#root.emitter
    const value: Engine = {
      adapter,
      fullKey: (key) => this.#full(core, key),
      encode: (value) => core.codec.encode(value),
      failOpen: core.config.failOpen,
      defaultTtl: core.config.defaultTtl,
      inflight: core.inflight,
      budget: () => this.#budget(core),
      get: (key, budget) => this.#read(core, key, budget),
      getFresh: (key, budget) => this.#read(core, key, budget, true),
      getMany: (keys, budget) => this.#readMany(core, keys, budget),
      set: (key, value, ttl, budget, stamp) => this.#write(core, key, value, ttl, budget, undefined, stamp),
      readTagged: (keys, tags, budget) => this.#readTagged(core, keys, tags, budget),
      tagEpoch: (tags) => {
        const epochs = core.tagEpochs
        if (epochs === undefined) return 0
        let sum = 0
        for (const bucket of new Set(tags.map(tagBucket))) sum += epochs[bucket] as number
        return sum
      },
      add: (key, value, ttl, budget) => this.#add(core, key, value, ttl, budget),
      delete: async (key, budget) => (await this.#remove(core, key, budget)) === true,
      touch: (key, ttl, budget) => this.#touch(core, key, ttl, budget),
      record: (outcome, key) => this.#record(core, outcome, key),
      emitError: (error, info) => {
        core.stats.errors++
        emitter.emitError(error, info)
      },
      warnOnce: (message) => emitter.warnOnce(message),
    }
    this.#engine = { core, value }
    return value
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** @internal The open core, or the error that says why there is none. */
  #core(): Core {
    const core = this.#root.core
    if (core !== null) return core
    if (this.#root.closed) throw new CacheClosedError()
    throw new CacheNotInitializedError(NOT_INITIALIZED)
  }

  /** The deadline of a call that starts now: `operationTimeout`, else the backend's `commandTimeout`, else none. */
  #budget(core: Core): Budget {
    const own = core.config.operationTimeout
    return own !== undefined ? new Budget(own, 'operationTimeout') : new Budget(core.adapter?.commandTimeout, 'commandTimeout')
  }

  /**
   * Send one command to the backend (once it has loaded), failing open. The hot paths (get, getMany, set,
   * add, delete, has, inc) write the same try/catch inline, with the same failure helpers: there a closure
   * per call doubled the cost of a memory-tier `set`. With a `fallback`, a failure is reported and the fallback returned when `failOpen` is on;
   * without one (add, inc), or with `failOpen` off, it throws a `CacheBackendError`. Errors of cachekit's own
   * (a type error, a config error) pass through. See {@link #fail}, and {@link #failIn} for a command of a
   * call with a deadline.
   */
  async #send<R, F = never>(
    core: Core,
    op: string,
    key: string | undefined,
    budget: Budget | undefined,
    command: (adapter: CacheAdapter) => R | Promise<R>,
    ...fallback: [F] | []
  ): Promise<R | F> {
    try {
      return await command(core.adapter ?? (await core.loading))
    } catch (error) {
      return this.#failIn(budget, core, op, key, error, ...fallback)
    }
  }

  /**
   * {@link #fail} for a command of a call with a deadline: a backend failure stops the call (it sends
   * nothing more), and a command it then did not send fails as that failure did, without a second report.
   */
  #failIn<F>(budget: Budget | undefined, core: Core, op: string, key: string | undefined, error: unknown, ...fallback: [F] | []): F {
    if (budget === undefined) return this.#fail(core, op, key, error, ...fallback)
    if (error !== undefined && error === budget.stopped) {
      if (fallback.length === 1 && core.config.failOpen) return fallback[0]
      throw error
    }
    if (error instanceof CacheError && !(error instanceof CacheBackendError)) throw error
    const wrapped = this.#backendError(core, op, key, error)
    budget.stop(wrapped)
    return this.#fail(core, op, key, wrapped, ...fallback)
  }

  #full(core: Core, key: string): string {
    return core.config.keyPrefix + this.#prefix + key
  }

  #expiresAt(core: Core, key: string, ttl: Duration | undefined): ExpiresAt {
    // The hot path (a plain number of ms) skips building the error label, which quotes the key every call.
    const ms: Milliseconds =
      ttl === undefined
        ? core.config.defaultTtl
        : typeof ttl === 'number' && Number.isInteger(ttl) && ttl >= 0 && ttl <= 9e12
          ? ttl
          : parseDuration(ttl, `TTL for ${showKey(key)}`, { key })
    return ms === 0 ? null : core.now() + ms
  }

  #encode(core: Core, key: string, value: unknown): Payload {
    if (value === undefined) {
      throw new CacheArgumentError(`Cannot cache undefined at ${showKey(key)}: use \`cache.delete(key)\` to remove a key, or store null.`, { key })
    }
    try {
      return core.codec.encode(value)
    } catch (error) {
      if (error instanceof CacheSerializationError) {
        throw new CacheSerializationError(`${error.message.replace(/\.$/, '')} (key ${showKey(key)}). Nothing was written.`, { key, cause: error.cause ?? error })
      }
      throw new CacheSerializationError(`The value for ${showKey(key)} cannot be encoded: ${(error as Error).message}. Nothing was written.`, { key, cause: error })
    }
  }

  /** The backend key of a tag's version: under the cache's `keyPrefix`, so a cache and its namespaces share their tags. */
  #tagKey(core: Core, tag: string): string {
    return core.config.keyPrefix + TAG_KEY_PREFIX + tag
  }

  /** The current versions of `tags` (`undefined` for one that has none), in one `getMany`. Throws what the backend throws. */
  async #versions(adapter: CacheAdapter, core: Core, tags: readonly string[], budget: Budget | undefined, key: string | undefined): Promise<Map<string, string | undefined>> {
    const payloads = await adapter.getMany(
      tags.map((tag) => this.#tagKey(core, tag)),
      budget?.timeout('getMany', key),
    )
    const versions = new Map<string, string | undefined>()
    for (let i = 0; i < tags.length; i++) versions.set(tags[i] as string, versionText(payloads[i]))
    return versions
  }

  /**
   * The stamp an entry written now carries: the current versions of `tags`, a missing one created with
   * `add`, or read back from whoever created it first. A
   * version never expires: a tag's mark must outlive every entry it guards. `undefined` in the rare case
   * that a version vanished twice while being created (then nothing is stored). Throws what the backend throws.
   */
  async #stamp(adapter: CacheAdapter, core: Core, tags: readonly string[], budget: Budget | undefined, key: string): Promise<TagStamp | undefined> {
    const current = await this.#versions(adapter, core, tags, budget, key)
    const versions: string[] = []
    for (const tag of tags) {
      let version = current.get(tag)
      for (let attempt = 0; version === undefined && attempt < 2; attempt++) {
        // Random, never a counter from 1: a version that vanished (evicted, cleared) must not make the
        // entries of an earlier version live again.
        const fresh = newVersion()
        const full = this.#tagKey(core, tag)
        version = (await adapter.add(full, fresh, null, budget?.timeout('add', key))) ? fresh : versionText(await adapter.get(full, budget?.timeout('get', key)))
      }
      if (version === undefined) return undefined
      versions.push(version)
    }
    return { tags, versions }
  }

  /**
   * The stamp of a value computed after `read`: its versions, with the marks that were missing then created
   * now. `undefined` (store nothing) if a missing mark has appeared meanwhile: that may be an invalidation
   * made while the value was computed from older data. Throws what the backend throws.
   */
  async #settle(adapter: CacheAdapter, core: Core, read: TagRead, budget: Budget | undefined, key: string): Promise<TagStamp | undefined> {
    if (!read.versions.includes(undefined)) return read as TagStamp
    const versions: string[] = []
    for (let i = 0; i < read.tags.length; i++) {
      let version = read.versions[i]
      if (version === undefined) {
        const fresh = newVersion()
        if (!(await adapter.add(this.#tagKey(core, read.tags[i] as string), fresh, null, budget?.timeout('add', key)))) return undefined
        version = fresh
      }
      versions.push(version)
    }
    return { tags: read.tags, versions }
  }

  /**
   * The values of payloads read at `keys`. A tagged one is a value only while every tag of it has the
   * version it was written with: versions in `known` were read with the payloads, the others are read here
   * for every tagged entry at once (one `getMany`). A tagged entry whose versions cannot be read (the
   * backend failed, with fail-open) is a miss.
   */
  async #open<T>(core: Core, keys: readonly string[], payloads: readonly (Payload | undefined)[], budget: Budget | undefined, known: ReadonlyMap<string, string | undefined> | undefined): Promise<(T | undefined)[]> {
    const stamps: (TagStamp | undefined)[] = []
    const inners: (Payload | undefined)[] = []
    const wanted = new Set<string>()
    for (let i = 0; i < keys.length; i++) {
      const payload = payloads[i]
      if (payload === undefined || !isTagged(payload)) {
        stamps.push(undefined)
        inners.push(payload)
        continue
      }
      try {
        const { stamp, inner } = unwrapTagged(payload)
        stamps.push(stamp)
        inners.push(inner)
        for (const tag of stamp.tags) if (known?.has(tag) !== true) wanted.add(tag)
      } catch (error) {
        this.#corrupt(core, keys[i] as string, error)
        stamps.push(undefined)
        inners.push(undefined)
      }
    }
    // `undefined` when they could not be read: every tagged entry is then a miss.
    let versions: ReadonlyMap<string, string | undefined> | undefined = known
    if (wanted.size > 0) {
      let fetched: Map<string, string | undefined> | undefined
      try {
        fetched = await this.#versions(core.adapter ?? (await core.loading), core, [...wanted], budget, keys[0])
      } catch (error) {
        fetched = this.#failIn(budget, core, 'getMany', keys[0], error, undefined)
      }
      if (fetched !== undefined && known !== undefined) for (const [tag, version] of known) fetched.set(tag, version)
      versions = fetched
    }
    return keys.map((key, i) => {
      const inner = inners[i]
      if (inner === undefined) return undefined
      const stamp = stamps[i]
      if (stamp !== undefined && (versions === undefined || !stampHolds(stamp, versions))) return undefined
      return this.#decode<T>(core, key, inner)
    })
  }

  /**
   * Read `keys` and the current versions of `tags` in one `getMany`: the values (tagged entries checked)
   * and the versions a value computed from now on is written with (a missing one is created when it is stored), or `undefined`
   * when it cannot be known (the backend failed, with fail-open): then nothing must be stored.
   */
  async #readTagged<T>(core: Core, keys: readonly string[], tags: readonly string[], budget: Budget): Promise<{ values: (T | undefined)[]; stamp: TagRead | undefined }> {
    const misses = { values: keys.map(() => undefined), stamp: undefined }
    let payloads: (Payload | undefined)[]
    try {
      const adapter = core.adapter ?? (await core.loading)
      payloads = await adapter.getMany([...keys.map((k) => this.#full(core, k)), ...tags.map((tag) => this.#tagKey(core, tag))], budget.timeout('getMany', keys[0]))
    } catch (error) {
      return this.#failIn(budget, core, 'getMany', keys[0], error, misses)
    }
    const known = new Map<string, string | undefined>()
    for (let i = 0; i < tags.length; i++) known.set(tags[i] as string, versionText(payloads[keys.length + i]))
    const values = await this.#open<T>(core, keys, payloads.slice(0, keys.length), budget, known)
    // Missing marks are not created here but when a value is stored (see #settle): a read that stores
    // nothing (a factory that throws, a response that may not be stored) leaves nothing behind.
    return { values, stamp: { tags, versions: tags.map((tag) => known.get(tag)) } }
  }

  /** A stored payload's value; a corrupt one is reported (`'corrupt'`, `'error'`) and read as a miss. */
  #decode<T>(core: Core, key: string, payload: Payload): T | undefined {
    try {
      return core.codec.decode(payload) as T
    } catch (error) {
      this.#corrupt(core, key, error)
      return undefined
    }
  }

  /** Report an entry that cannot be read (it is a miss). */
  #corrupt(core: Core, key: string, error: unknown): void {
    core.stats.errors++
    const reason = (error as Error)?.message ?? String(error)
    const e = new CacheSerializationError(`The entry at ${showKey(key)} cannot be read, so it is a miss: ${reason}`, { key, cause: error })
    this.#root.emitter.emit('corrupt', key, e.message)
    this.#root.emitter.emitError(e, { op: 'get', key })
  }

  /** Count one logical operation of the user's in `stats()` and emit it. */
  #record(core: Core, outcome: Outcome, key: string): void {
    if (outcome === 'hit') core.stats.hits++
    else if (outcome === 'miss') core.stats.misses++
    else core.stats.sets++
    this.#root.emitter.emit(outcome, key)
  }

  /**
   * A failed operation: errors of cachekit's own (a type error, a config error) pass through; backend
   * errors become a `CacheBackendError`, returned as `fallback` with fail-open, thrown otherwise (and always
   * when there is no fallback: add, inc, dec).
   */
  #fail<F>(core: Core, op: string, key: string | undefined, error: unknown, ...fallback: [F] | []): F {
    if (error instanceof CacheError && !(error instanceof CacheBackendError)) throw error
    const wrapped = this.#backendError(core, op, key, error)
    core.stats.errors++
    if (fallback.length === 1 && core.config.failOpen) {
      this.#root.emitter.emitError(wrapped, { op, ...(key === undefined ? {} : { key }) })
      return fallback[0]
    }
    throw wrapped
  }

  /** A backend's error as a `CacheBackendError` naming the operation, the key and the backend. */
  #backendError(core: Core, op: string, key: string | undefined, error: unknown): CacheBackendError {
    if (error instanceof CacheBackendError) return error
    const name = core.adapter?.name ?? core.config.type
    return new CacheBackendError(
      `${op}${key === undefined ? '' : ` ${showKey(key)}`} failed on the ${name} backend: ${(error as Error)?.message ?? String(error)}`,
      { ...(key === undefined ? {} : { key }), cause: error },
    )
  }
}

async function loadFactory(config: ResolvedConfig) {
  const def = config.definition
  if (def === undefined) throw new CacheConfigError(`No backend for type \`${config.type}\`.`, { option: 'type' })
  return def.load()
}
