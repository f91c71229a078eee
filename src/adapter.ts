import type { Milliseconds } from './duration.js'
import { incrementTypeError } from './errors.js'
/**
 * The adapter contract: what every backend in `adapters/` implements.
 *
 * It is narrow on purpose. An adapter never parses durations, never serializes values and never adds the
 * key prefix: the Cache hands it full keys, opaque payloads and absolute expiry times, and the adapter stores
 * them and implements `add` and `increment` atomically for its backend.
 */

/** A stored value, as the codec produced it. Stored byte-exact; an adapter may return text as a string. */
export type Payload = string | Uint8Array

/**
 * An absolute expiry time in milliseconds since the epoch (the Cache's clock), or `null` for never.
 * An entry whose `expiresAt <= now()` is expired: it must never be returned, counted or listed.
 */
export type ExpiresAt = number | null

/** A value or a promise of it: in-process adapters answer synchronously and save a promise per call. */
export type Awaitable<T> = T | Promise<T>

/** One entry for {@link CacheAdapter.setMany}. */
export interface AdapterEntry {
  key: string
  value: Payload
  expiresAt: ExpiresAt
}

/** What a backend can do. Each flag changes what the conformance suite runs and what the Cache does. */
export interface AdapterCapabilities {
  /**
   * Several processes (or machines) see the same entries. When true the conformance suite runs its
   * multi-process tests, and `memoize`/`getOrSet` take a cross-process lease.
   */
  shared: boolean
  /**
   * `add` and `increment` are atomic across every process sharing the backend. When false (a Keyv bridge),
   * they are atomic within one process only: `getOrSet` takes no cross-process lease on such a backend, and
   * the keyv bridge warns once when `inc` or `add` runs on a store marked shared.
   */
  atomic: boolean
  /**
   * Expiry is decided by the backend's own clock (Redis), not by the `now()` the adapter was given. When
   * true, TTL tests wait in real time instead of moving a fake clock.
   */
  realClock: boolean
  /**
   * `keys(prefix)` can list the live keys. False for a backend that cannot (memcached): `Cache.keys()` then
   * throws `CacheUnsupportedError` saying why, and the conformance suite checks that instead of the listing.
   * Absent means true.
   */
  listKeys?: boolean
}

/** Context every adapter factory receives from the Cache. */
export interface AdapterContext {
  /** The clock for every expiry decision (ms since the epoch). */
  now: () => number
  /**
   * The most entries to keep (`0` means unbounded). The local backends (memory, filesystem, SQLite) enforce it;
   * Redis and Keyv stores bound themselves (`maxmemory`, the store's own policy) and ignore it, as the README says.
   */
  threshold: number
  /** Report a problem the caller should not see as an exception (a corrupt file removed, a warning). */
  emit: (event: AdapterEvent) => void
  /**
   * True when payloads may be bytes (the codec is not the JSON codec): the adapter must then return what it
   * reads as `Uint8Array`, byte-exact. When false or absent every payload is UTF-8 text, and an adapter whose
   * driver decodes text faster (Redis) may return strings.
   */
  bytes?: boolean
  /**
   * The cache's `operationTimeout`, when set: an adapter that times its commands (Redis, PostgreSQL, MySQL,
   * memcached, the keyv bridge) never lets one command wait longer than this, nor than its own `commandTimeout`.
   */
  operationTimeout?: Milliseconds
}

/** Something an adapter wants the Cache to report through its events. */
export type AdapterEvent =
  | { type: 'error'; error: Error; key?: string }
  | { type: 'warning'; message: string }
  | { type: 'corrupt'; key?: string; detail: string }

/**
 * A backend. Every key is the full key (prefix included); every method may answer synchronously or with
 * a promise. Errors of the backend are thrown as they come: the Cache wraps them in `CacheBackendError`
 * and applies fail-open.
 *
 * The methods that one `getOrSet` or memoized call may use several times (`get`, `getMany`, `set`, `add`,
 * `delete`, `deleteIfEquals`) take an optional last argument `timeout`: what is left of that call's
 * deadline, in ms, given only when it is less than a whole command timeout. An adapter that times its
 * commands fails the command once it has passed; the others may ignore it (the Cache sends nothing more
 * once a call's deadline has passed).
 */
export interface CacheAdapter {
  /** A short name for messages and stats, e.g. `'memory'`, `'redis'`. */
  readonly name: string
  readonly capabilities: AdapterCapabilities
  /**
   * On an adapter that times its commands: the longest one command waits, which is then the deadline of a
   * whole call unless the cache's `operationTimeout` says otherwise. Absent on the local backends.
   */
  readonly commandTimeout?: Milliseconds
  /** Resolves when commands can run; rejects (with a `CacheBackendError`) when the backend is unreachable. */
  ready?(): Promise<void>
  get(key: string, timeout?: Milliseconds): Awaitable<Payload | undefined>
  /** One answer per key, in order; `undefined` for a miss. */
  getMany(keys: readonly string[], timeout?: Milliseconds): Awaitable<(Payload | undefined)[]>
  set(key: string, value: Payload, expiresAt: ExpiresAt, timeout?: Milliseconds): Awaitable<void>
  setMany(entries: readonly AdapterEntry[]): Awaitable<void>
  /** Store only if absent or expired; true if stored. Atomic on the backend when `capabilities.atomic`. */
  add(key: string, value: Payload, expiresAt: ExpiresAt, timeout?: Milliseconds): Awaitable<boolean>
  /**
   * Add `delta` to the integer stored as decimal text at `key` and return the result. A missing (or
   * expired) key starts at 0 and gets `expiresAt`; an existing key keeps its expiry. A value that is not
   * decimal integer text, or a result that is not a safe integer, throws `CacheTypeError` and leaves the
   * value as it was. The result is stored as decimal text.
   */
  increment(key: string, delta: number, expiresAt: ExpiresAt): Awaitable<number>
  /** True if the key existed (and was not expired). */
  delete(key: string, timeout?: Milliseconds): Awaitable<boolean>
  /** How many of the keys existed. */
  deleteMany(keys: readonly string[]): Awaitable<number>
  has(key: string): Awaitable<boolean>
  /** Set a new expiry on a live key; false if the key is missing or expired. */
  touch(key: string, expiresAt: ExpiresAt): Awaitable<boolean>
  /** The absolute expiry of a live key: `null` if it never expires, `undefined` if it is missing or expired. */
  expiresAt(key: string): Awaitable<ExpiresAt | undefined>
  /** Delete every key that starts with `prefix`, and nothing else. An empty prefix means every key. */
  clear(prefix: string): Awaitable<void>
  /** Every live key that starts with `prefix`, full keys, in no particular order. */
  keys(prefix: string): AsyncIterable<string> | Iterable<string>
  /**
   * Optional: delete `key` only if it holds exactly `value` (and is live), atomically; true if deleted.
   * `getOrSet` and `memoize` release their cross-process leases with it. Without it they read, compare and
   * delete, which is safe except for a lease that expires in that very instant (see `src/lease.ts`).
   * SQLite: `DELETE ... WHERE key = ? AND value = ?`; Redis: a one-line Lua script; filesystem: under its lock.
   */
  deleteIfEquals?(key: string, value: Payload, timeout?: Milliseconds): Awaitable<boolean>
  /**
   * Optional: the value and expiry of a live key in one read (`undefined` for a miss), for the memory tier,
   * which must not keep an entry past its expiry in the backend. Without it the tier asks `get` and
   * `expiresAt` side by side.
   */
  getEntry?(key: string, timeout?: Milliseconds): Awaitable<{ value: Payload; expiresAt: ExpiresAt } | undefined>
  /**
   * Optional: the channel through which this process learns of every change to keys under `prefix`, made
   * by any process (see {@link InvalidationChannel}). A backend without one can still have a memory tier,
   * bounded by its `ttl` alone.
   */
  invalidations?(prefix: string, options: { staleness: Milliseconds }): InvalidationChannel
  /**
   * Optional: what the backend can tell by itself of what it stores under `prefix` (cachekit's bookkeeping
   * included), for `cachekit stats`: how many entries, their size, how many expired ones await the purge.
   * Each figure is left out where the backend cannot tell it cheaply.
   */
  inspect?(prefix: string): Awaitable<StoreFigures>
  /** Remove expired entries now; returns how many were removed (when the backend can tell). */
  purgeExpired(): Awaitable<number>
  /** Release connections, timers and handles. Called once. */
  close(): Awaitable<void>
}

/** What {@link CacheAdapter.inspect} tells. */
export interface StoreFigures {
  /** Entries stored, the expired ones that await the purge included. */
  stored?: number
  /** Their size in bytes, keys and values as stored. */
  bytes?: number
  /** Expired entries that the purge has not removed yet (a backend that expires entries itself has none). */
  expired?: number
}

/** A typed adapter factory: options captured at config time, adapter built later. */
export type AdapterFactory<Options> = (options: Options, context: AdapterContext) => CacheAdapter

/** Parse integer text as `increment` stores it; `undefined` if it is not decimal integer text. */
export function parseIntegerPayload(value: Payload): number | undefined {
  const text = typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1')
  if (text.length === 0 || text.length > 17 || !/^-?\d+$/.test(text)) return undefined
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * The result of incrementing `current` (a stored payload, or `undefined` for a missing key) by `delta`,
 * with the errors every adapter must give. Shared so that every in-process adapter says the same thing.
 *
 * @throws {CacheTypeError} if `current` is not decimal integer text or the result is not a safe integer.
 */
export function addToPayload(key: string, current: Payload | undefined, delta: number): number {
  const base = current === undefined ? 0 : parseIntegerPayload(current)
  if (base === undefined) throw incrementTypeError(key, { base, delta })
  const result = base + delta
  if (!Number.isSafeInteger(result)) throw incrementTypeError(key, { base, delta })
  return result
}

/** True if two payloads hold the same bytes (a string compares as its UTF-8 encoding). */
export function samePayload(a: Payload, b: Payload): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a === b
  const bytes = (p: Payload) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p.buffer, p.byteOffset, p.byteLength))
  return bytes(a).equals(bytes(b))
}

/** What an invalidation channel tells the memory tier. */
export interface InvalidationListener {
  /** These full keys changed (written, deleted, expired): drop them. */
  invalidate(keys: readonly string[]): void
  /** Changes may have been missed (a log truncated past what this process read, `FLUSHALL`): drop everything. */
  flush(): void
  /** The channel went down (`up` false: stop using the tier, it cannot be kept right) or came back. */
  state(up: boolean, reason: string): void
}

/**
 * A backend's channel of changes for the memory tier. It must report every change by any process,
 * including processes without a tier, or say that it cannot (`state(false)`): the tier is then bypassed.
 * It reports `state(true)` once it is listening; until then the tier is not used.
 */
export interface InvalidationChannel {
  /** `'push'`: the server sends changes as they happen (Redis); `'poll'`: read on a timer every `staleness`. */
  readonly kind: 'push' | 'poll'
  start(listener: InvalidationListener): void
  /**
   * Optional, for a channel read on a timer: called before the tier answers a read, it reads the channel
   * now if its last read is older than `staleness` (a timer can run late on a busy event loop).
   */
  check?(): void
  close(): Awaitable<void>
}
