import type { Budget } from './budget.js'
import { parseDuration, type Duration, type Milliseconds } from './duration.js'
import { CacheArgumentError, CacheError, CacheFactoryError, showKey } from './errors.js'
import { checkOptionNames } from './config/suggest.js'
import { BOOKKEEPING, type Engine } from './engine.js'
import { backoff, LEASE_SUFFIX, sleep, tryLease, type Lease } from './lease.js'
import { checkTags, type TagRead } from './tags.js'

/** The cross-process lease of `getOrSet` and `memoize`, on shared backends. */
export interface LeaseOptions {
  /**
   * How long a lease outlives a holder that died (crashed, killed) before another process takes over. A
   * living holder renews it every third of this, so a factory may run longer than it.
   * @default '10s'
   */
  ttl?: Duration
  /**
   * The longest a caller waits for another process's factory. After it, the caller returns the stale value if
   * there is one, else runs the factory itself. This is waiting for the other process, not for the backend:
   * the sleeps between polls do not count against the call's `operationTimeout`, the polls themselves do
   * (a poll that fails, or the deadline spent, ends the wait: the caller runs the factory without storing).
   * @default '60s'
   */
  wait?: Duration
}

/** Options of `cache.getOrSet(key, factory, options)`. */
export interface GetOrSetOptions {
  /** How long the value is fresh. @default the cache's `defaultTtl` */
  ttl?: Duration
  /**
   * Stale-while-revalidate: after `ttl`, the value is still served for up to `grace` while one refresh runs
   * in the background (one per key across every process on a shared backend). If the refresh throws, the
   * stale value keeps being served and `'error'` is emitted with a `CacheFactoryError`.
   * @default 0 (no grace: an expired value is a miss)
   */
  grace?: Duration
  /**
   * With a stale value at hand (see `grace`): wait up to this long for the refresh, then return the stale
   * value and let the refresh finish in the background. `0` returns the stale value at once. Apart from the
   * cache's `operationTimeout`, which bounds the backend commands of the call (the refresh's included).
   * @default 0
   */
  timeout?: Duration
  /**
   * The cross-process lease against the thundering herd: on by default on shared, atomic backends (SQLite,
   * filesystem, Redis), where one process runs the factory and the others wait for its value. `false` turns
   * it off (each process then runs the factory on a miss; within a process there is still one run per key).
   * @default true
   */
  lease?: boolean | LeaseOptions
  /**
   * Tags of the stored value, to invalidate it with `cache.invalidateTags(tags)` (see docs/tags.md). Their
   * versions are read before the factory runs: a value computed while an invalidation runs is stored as
   * already stale, so no later read returns it.
   * @default no tags
   */
  tags?: readonly string[]
}

/** The defaults of {@link LeaseOptions}. */
export const LEASE_DEFAULTS = { ttl: 10_000, wait: 60_000 } as const

/** Options after validation, in ms. @internal */
export interface ResolvedGetOrSet {
  ttl: Duration | undefined
  grace: Milliseconds
  timeout: Milliseconds
  lease: { ttl: Milliseconds; wait: Milliseconds } | false
  /** No duplicates; empty for an untagged value. */
  tags: string[]
}

/** The names of `getOrSet`'s options. */
const GET_OR_SET_OPTIONS = ['ttl', 'grace', 'timeout', 'lease', 'tags']

/**
 * Validate `getOrSet`'s third argument: a TTL (as before) or an options object. Eager, so that a bad option
 * fails on the first call, hit or miss.
 */
export function resolveGetOrSetOptions(key: string, input: Duration | GetOrSetOptions | undefined): ResolvedGetOrSet {
  if (input === undefined || typeof input === 'number' || typeof input === 'string') {
    if (input !== undefined) parseDuration(input, `TTL for ${showKey(key)}`, { key })
    return { ttl: input, grace: 0, timeout: 0, lease: { ...LEASE_DEFAULTS }, tags: [] }
  }
  if (typeof input !== 'object' || input === null) {
    throw new CacheArgumentError(`getOrSet(${showKey(key)}): the third argument must be a TTL or an options object, not ${String(input)}.`, { key })
  }
  // The label is built only for a message: getOrSet runs this on every call, hits included.
  checkOptionNames(input, GET_OR_SET_OPTIONS, () => `getOrSet(${showKey(key)})`, (message) => new CacheArgumentError(message, { key }))
  const ms = (value: Duration | undefined, name: string, fallback: Milliseconds): Milliseconds =>
    value === undefined ? fallback : parseDuration(value, `\`${name}\` of getOrSet(${showKey(key)})`, { key })
  if (input.ttl !== undefined) ms(input.ttl, 'ttl', 0)
  let lease: ResolvedGetOrSet['lease'] = { ...LEASE_DEFAULTS }
  if (input.lease === false) lease = false
  else if (typeof input.lease === 'object' && input.lease !== null) {
    lease = { ttl: ms(input.lease.ttl, 'lease.ttl', LEASE_DEFAULTS.ttl), wait: ms(input.lease.wait, 'lease.wait', LEASE_DEFAULTS.wait) }
    if (lease.ttl === 0) throw new CacheArgumentError(`getOrSet(${showKey(key)}): \`lease.ttl\` must be > 0, or the lease of a dead holder would never expire.`, { key })
  } else if (input.lease !== undefined && input.lease !== true) {
    throw new CacheArgumentError(`getOrSet(${showKey(key)}): \`lease\` must be true, false or { ttl, wait }, not ${String(input.lease)}.`, { key })
  }
  // The label quotes the key: built only when there are tags to check (memoize passes an object every call).
  const tags = input.tags === undefined ? [] : checkTags(input.tags, `getOrSet(${showKey(key)})`, key)
  return { ttl: input.ttl, grace: ms(input.grace, 'grace', 0), timeout: ms(input.timeout, 'timeout', 0), lease, tags }
}

/** What a cached computation reads: a value (or a miss) and whether it is past its fresh time. */
export interface SlotRead<T> {
  value: T | undefined
  stale: boolean
}

/**
 * Where a computed value lives: `getOrSet` stores it at its key, `memoize` in a versioned entry. The
 * stampede logic below does not care which. A slot's reads and writes go through the engine, so they count
 * nothing: `computeOnce` counts the call.
 * @internal
 */
export interface Slot<T> {
  /** The key (of this cache) named in errors, counted in `stats()`, and whose lease key guards the computation. */
  readonly key: string
  /**
   * The in-process flight's key, when not the full key: a tagged slot's names the invalidations seen so far
   * (`Engine.tagEpoch`), so that no call joins a computation that started before an invalidation.
   */
  readonly flight?: string
  /** Read, as commands of the call `budget` belongs to (as `write`). */
  read(budget: Budget): Promise<SlotRead<T>>
  /** Store a result (never `undefined`). @returns whether it was stored. */
  write(value: T, budget: Budget): Promise<boolean>
}

/** What one computation did, for counting the call that ran it. */
interface Run {
  /** The factory ran in this call (a miss, counted as it started), rather than a stored or shared value answering it (a hit). */
  ran: boolean
}

/**
 * One computation of `slot` per key: in-process by a shared promise, across processes (on shared, atomic
 * backends) by a lease. Serves stale values in their grace period while one refresh runs.
 *
 * Every command it sends belongs to the call of `budget`, so they share one deadline; once one fails (or the
 * deadline has passed) nothing more is sent: reads are misses, writes are skipped, no lease is taken, and
 * the factory's value is returned unstored (fail-open). Callers that join a running computation wait on it.
 * @internal
 */
export async function computeOnce<T>(engine: Engine, slot: Slot<T>, factory: () => T | Promise<T>, options: ResolvedGetOrSet, budget: Budget): Promise<T> {
  const flightKey = slot.flight ?? engine.fullKey(slot.key)
  const running = engine.inflight.get(flightKey)
  if (running !== undefined) {
    // Answered by the call already computing this key: a hit, as the factory does not run for it.
    try {
      const value = (await running) as T
      engine.record('hit', slot.key)
      return value
    } catch (error) {
      engine.record('miss', slot.key)
      throw error
    }
  }
  const done: Run = { ran: false }
  const run = (async () => {
    const hit = await slot.read(budget)
    if (hit.value !== undefined && !hit.stale) return hit.value
    if (hit.value !== undefined) return serveStale(engine, slot, factory, options, hit.value, budget)
    return computeWithLease(engine, slot, factory, options, budget, done)
  })()
  engine.inflight.set(flightKey, run)
  try {
    const value = await run
    // A call that ran the factory was counted a miss when it did.
    if (!done.ran) engine.record('hit', slot.key)
    return value
  } catch (error) {
    // The backend failed before the factory ran (without fail-open): a miss all the same.
    if (!done.ran) engine.record('miss', slot.key)
    throw error
  } finally {
    engine.inflight.delete(flightKey)
  }
}

function leaseApplies(engine: Engine, options: ResolvedGetOrSet): options is ResolvedGetOrSet & { lease: { ttl: number; wait: number } } {
  const caps = engine.adapter?.capabilities
  return options.lease !== false && caps !== undefined && caps.shared && caps.atomic
}

/** Run the factory (its time is the user's, not the backend's) and store its result unless the call has stopped. */
async function runAndStore<T>(engine: Engine, slot: Slot<T>, factory: () => T | Promise<T>, budget: Budget, done?: Run): Promise<T> {
  if (done !== undefined) {
    done.ran = true
    engine.record('miss', slot.key)
  }
  const value = await budget.offClock(factory)
  if (value !== undefined && budget.stopped === undefined && (await slot.write(value, budget))) engine.record('set', slot.key)
  return value
}

/**
 * Take the lease (or wait for whoever holds it and read their value). A backend failure while taking it is
 * fail-open: the factory runs without a lease; so it does once the call has stopped talking to the backend.
 */
async function acquire(engine: Engine, slot: Slot<unknown>, ttl: Milliseconds, budget: Budget): Promise<Lease | null | 'no-lease'> {
  if (budget.stopped !== undefined) {
    // Reported when it happened; `failOpen: false` throws it here, as the `add` it stands for would have.
    if (!engine.failOpen) throw budget.stopped
    return 'no-lease'
  }
  try {
    return await tryLease(engine, slot.key + LEASE_SUFFIX, ttl, budget)
  } catch (error) {
    if (!engine.failOpen || !(error instanceof CacheError)) throw error
    engine.emitError(error, { op: 'getOrSet.lease', key: slot.key })
    return 'no-lease'
  }
}

async function computeWithLease<T>(engine: Engine, slot: Slot<T>, factory: () => T | Promise<T>, options: ResolvedGetOrSet, budget: Budget, done: Run): Promise<T> {
  if (!leaseApplies(engine, options)) return runAndStore(engine, slot, factory, budget, done)
  const { ttl, wait } = options.lease
  const deadline = Date.now() + wait
  for (let attempt = 0; ; attempt++) {
    // After a failed poll this is 'no-lease' at once: the call has stopped talking to the backend.
    const lease = await acquire(engine, slot, ttl, budget)
    if (lease === 'no-lease') return runAndStore(engine, slot, factory, budget, done)
    if (lease !== null) {
      try {
        // The previous holder may have stored its value and released between our read and our `add`.
        const again = await slot.read(budget)
        if (again.value !== undefined && !again.stale) return again.value
        return await runAndStore(engine, slot, factory, budget, done)
      } finally {
        await lease.release(budget)
      }
    }
    // Waiting for another process's factory is not waiting for the backend: the sleep is off the clock.
    await budget.offClock(() => sleep(backoff(attempt)))
    const again = await slot.read(budget)
    if (again.value !== undefined && !again.stale) return again.value
    if (Date.now() >= deadline) {
      // The holder is alive (it renews its lease) but slow beyond `wait`: stop waiting.
      if (again.value !== undefined) return again.value
      return runAndStore(engine, slot, factory, budget, done)
    }
  }
}

/** Serve a stale value (in its grace period) and refresh it once, in the background. */
async function serveStale<T>(engine: Engine, slot: Slot<T>, factory: () => T | Promise<T>, options: ResolvedGetOrSet, stale: T, budget: Budget): Promise<T> {
  const refresh = refreshOnce(engine, slot, factory, options, budget)
  if (options.timeout === 0) return stale
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), options.timeout)))
  try {
    const fresh = await Promise.race([refresh, late])
    return fresh === undefined ? stale : fresh
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The one background refresh of a key: in-process by a shared promise, across processes by a lease taken
 * without waiting (whoever fails to take it serves the stale value). Resolves with the new value, or
 * `undefined` when another process refreshes or the factory failed (then `'error'` was emitted). Its
 * commands share the deadline of the call that found the value stale.
 */
function refreshOnce<T>(engine: Engine, slot: Slot<T>, factory: () => T | Promise<T>, options: ResolvedGetOrSet, budget: Budget): Promise<T | undefined> {
  const flightKey = `${slot.flight ?? engine.fullKey(slot.key)}${BOOKKEEPING}refresh`
  const running = engine.inflight.get(flightKey)
  if (running !== undefined) return running as Promise<T | undefined>
  const refresh = (async (): Promise<T | undefined> => {
    let lease: Lease | null | 'no-lease' = 'no-lease'
    if (leaseApplies(engine, options)) {
      lease = await acquire(engine, slot, options.lease.ttl, budget)
      if (lease === null) return undefined
    }
    try {
      const again = await slot.read(budget)
      if (again.value !== undefined && !again.stale) return again.value
      return await runAndStore(engine, slot, factory, budget)
    } catch (error) {
      const message = `The refresh of ${showKey(slot.key)} failed, so its stale value is still served: ${(error as Error)?.message ?? String(error)}`
      engine.emitError(error instanceof CacheError ? error : new CacheFactoryError(message, { key: slot.key, cause: error }), { op: 'getOrSet.refresh', key: slot.key })
      return undefined
    } finally {
      if (lease !== 'no-lease') await lease.release(budget)
    }
  })()
  engine.inflight.set(flightKey, refresh)
  void refresh.finally(() => engine.inflight.delete(flightKey))
  return refresh
}

/** The suffix of the companion key that marks a `grace` entry as fresh. */
export const FRESH_SUFFIX = `${BOOKKEEPING}fresh`

/**
 * The slot of `getOrSet`: the value at `key` itself, so `cache.get(key)` reads it. With `grace`, the value
 * is stored for `ttl + grace` and a companion marker for `ttl`: marker present means fresh, marker gone
 * means stale. Both expire by the backend's own clock, so processes never compare clocks.
 * @internal
 */
export function getOrSetSlot<T>(engine: Engine, key: string, options: ResolvedGetOrSet): Slot<T> {
  const freshKey = key + FRESH_SUFFIX
  const ttl = options.ttl === undefined ? engine.defaultTtl : parseDuration(options.ttl)
  const grace = ttl === 0 ? 0 : options.grace
  if (options.tags.length > 0) return taggedSlot(engine, key, freshKey, ttl, grace, options.tags)
  if (grace === 0) {
    return {
      key,
      read: async (budget) => ({ value: await engine.get<T>(key, budget), stale: false }),
      write: (value, budget) => engine.set(key, value, ttl, budget),
    }
  }
  return {
    key,
    async read(budget) {
      const [value, fresh] = await engine.getMany<unknown>([key, freshKey], budget)
      return { value: value as T | undefined, stale: value !== undefined && fresh === undefined }
    },
    async write(value, budget) {
      // The value first: a reader that sees the marker must find the new value (or a fresher one). A value
      // that was not stored gets no marker.
      if (!(await engine.set(key, value, ttl + grace, budget))) return false
      await engine.set(freshKey, 1, ttl, budget)
      return true
    },
  }
}

/** A flight key for a tagged computation: the invalidations this process made so far are part of it. @internal */
export function taggedFlight(engine: Engine, key: string, tags: readonly string[]): string {
  return `${engine.fullKey(key)}${BOOKKEEPING}tags@${engine.tagEpoch(tags)}`
}

/**
 * The slot of a tagged `getOrSet`: each read fetches the entry and the current versions of its tags in one
 * `getMany`, and remembers them; a write stores the value with the versions of the last read, which came
 * before the factory ran. An invalidation during the factory (in any process) thus leaves the value stored
 * as already stale; one made by this process stops the store altogether.
 */
function taggedSlot<T>(engine: Engine, key: string, freshKey: string, ttl: number, grace: number, tags: readonly string[]): Slot<T> {
  let stamp: TagRead | undefined
  let epoch = engine.tagEpoch(tags)
  return {
    key,
    flight: taggedFlight(engine, key, tags),
    async read(budget) {
      epoch = engine.tagEpoch(tags)
      const read = await engine.readTagged<unknown>(grace === 0 ? [key] : [key, freshKey], tags, budget)
      stamp = read.stamp
      const [value, fresh] = read.values
      return { value: value as T | undefined, stale: grace !== 0 && value !== undefined && fresh === undefined }
    },
    async write(value, budget) {
      // No versions read (the backend failed): storing would be storing blind, so do not. Nor after this
      // process invalidated tags since the read: the value may be stale already, and would overwrite the
      // fresher one a later call stores.
      if (stamp === undefined || engine.tagEpoch(tags) !== epoch) return false
      if (!(await engine.set(key, value, grace === 0 ? ttl : ttl + grace, budget, stamp))) return false
      if (grace !== 0) await engine.set(freshKey, 1, ttl, budget)
      return true
    },
  }
}
