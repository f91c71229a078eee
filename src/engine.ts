import type { CacheAdapter, Payload } from './adapter.js'
import type { Budget } from './budget.js'
import type { Duration, Milliseconds } from './duration.js'
import type { CacheError } from './errors.js'
import type { ErrorInfo } from './events.js'
import type { TagRead } from './tags.js'

/**
 * The key of the one hook a `Cache` gives the parts built on it (getOrSet and its leases, memoize) beyond
 * the public API. A symbol, so it stays out of autocompletion and out of the documented API.
 * @internal
 */
export const ENGINE = Symbol('cachekit.engine')

/**
 * The marker of cachekit's own bookkeeping keys: a lease (`report|ck:lease`), a `grace` entry's freshness
 * (`report|ck:fresh`), a memoized function's version (`memoize:load|ck:version`). The public API refuses keys
 * and namespaces that contain it, so `keys()` can leave every key that does out without hiding one of the user's.
 */
export const BOOKKEEPING = '|ck:'

/** What a logical operation of the user's was: a read that found a value or did not, a value stored. */
export type Outcome = 'hit' | 'miss' | 'set'

/**
 * The engine under a `Cache`, as the parts built on it see it (`cache[ENGINE]()`, once the backend is
 * loaded). Its reads and writes take keys of the cache (its prefix and namespaces are prepended) and go
 * to the backend as they are: they count nothing and emit no `hit`, `miss`, `set` or `delete`, so a lease,
 * a freshness marker or a version key never reaches the user's listeners or `stats()`. A caller counts the
 * logical operation it stands for, once, with `record`. A backend failure is still the user's business:
 * each command fails open as the public one would (reported as `'error'`, counted in `errors`).
 *
 * Each command belongs to the call of its `budget` (see `src/budget.ts`): sent with what is left of that
 * call's deadline, and not sent at all once the call has stopped.
 * @internal
 */
export interface Engine {
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
  /** The deadline of a call that starts now (see `src/budget.ts`). */
  budget(): Budget
  get<T>(key: string, budget: Budget): Promise<T | undefined>
  /**
   * As `get`, but the backend's own answer, around the memory tier (`l1`) when there is one: for a read that
   * must see another process's write at once (a session, a logout's mark).
   */
  getFresh<T>(key: string, budget: Budget): Promise<T | undefined>
  getMany<T>(keys: readonly string[], budget: Budget): Promise<(T | undefined)[]>
  /** Store `value`; with `stamp`, as a tagged entry carrying those versions of its tags. */
  set(key: string, value: unknown, ttl: Duration | undefined, budget: Budget, stamp?: TagRead): Promise<boolean>
  /**
   * Read `keys` and the current versions of `tags` in one `getMany`: the values (a tagged entry whose tags
   * changed is a miss) and the stamp a value computed from now on is to be stored with (a missing version is
   * created), or `undefined` when it cannot be known (the backend failed): then nothing must be stored.
   */
  readTagged<T>(keys: readonly string[], tags: readonly string[], budget: Budget): Promise<{ values: (T | undefined)[]; stamp: TagRead | undefined }>
  /**
   * How many times this process has invalidated `tags` on the cache (and its namespaces), counted per bucket
   * of tags. A tagged computation's in-process flight is keyed by it, so a call that starts after an
   * invalidation of one of its tags never joins a computation that started before it (and read the old
   * versions); invalidations of other tags change nothing for it.
   */
  tagEpoch(tags: readonly string[]): number
  add(key: string, value: unknown, ttl: Duration | undefined, budget: Budget): Promise<boolean>
  delete(key: string, budget: Budget): Promise<boolean>
  touch(key: string, ttl: Duration | undefined, budget: Budget): Promise<boolean>
  /** Count one logical operation of the user's on `key` in `stats()`, and emit it (`hit`, `miss` or `set`). */
  record(outcome: Outcome, key: string): void
  /** Report an error through the cache's `'error'` event (to stderr, rate-limited, when nobody listens). */
  emitError(error: CacheError, info: ErrorInfo): void
  /** Warn once per distinct message through `'warning'`. */
  warnOnce(message: string): void
}

/** What the parts built on a cache hold of it: the way to its engine. @internal */
export interface WithEngine {
  [ENGINE](): Promise<Engine>
}
