import type { CacheAdapter, Payload } from './adapter.js'
import type { Budget } from './budget.js'
import type { Duration, Milliseconds } from './duration.js'
import type { CacheError } from './errors.js'
import type { ErrorInfo } from './events.js'

/**
 * The key of the one hook `Cache` gives its own modules (memoize, getOrSet and its leases)
 * beyond the public API. A symbol, so it stays out of autocompletion and out of the documented API.
 * @internal
 */
export const INTERNALS = Symbol('cachekit.internals')

/** What `cache[INTERNALS]()` returns once the backend is loaded. @internal */
export interface CacheInternals {
  /** The backend, or `undefined` if it failed to load (then there is no lease; operations fail open). */
  readonly adapter: CacheAdapter | undefined
  /** The backend key for a key of this cache (its prefix and namespaces prepended). */
  fullKey(key: string): string
  /** The payload the codec makes of `value` (to compare with what the backend holds). */
  encode(value: unknown): Payload
  readonly failOpen: boolean
  readonly defaultTtl: Milliseconds
  /** In-process single-flight: one running computation per full key, shared by the cache and its namespaces. */
  readonly inflight: Map<string, Promise<unknown>>
  /** The deadline of a call that starts now, for the commands below (see `src/budget.ts`). */
  budget(): Budget
  /**
   * The cache's own `get`, `getMany`, `set`, `add` and `delete` (same checks, stats, events and fail-open),
   * each as one command of the call `budget` belongs to: sent with what is left of its deadline, and not
   * sent at all once the call has stopped.
   */
  get<T>(key: string, budget: Budget): Promise<T | undefined>
  getMany<T>(keys: readonly string[], budget: Budget): Promise<(T | undefined)[]>
  set(key: string, value: unknown, ttl: Duration | undefined, budget: Budget): Promise<boolean>
  add(key: string, value: unknown, ttl: Duration | undefined, budget: Budget): Promise<boolean>
  delete(key: string, budget: Budget): Promise<boolean>
  /** Report an error through the cache's `'error'` event (to stderr, rate-limited, when nobody listens). */
  emitError(error: CacheError, info: ErrorInfo): void
  /** Warn once per distinct message through `'warning'`. */
  warnOnce(message: string): void
}
