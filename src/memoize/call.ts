import { randomBytes } from 'node:crypto'
import type { Budget } from '../budget.js'
import { ENGINE, type Engine, type WithEngine } from '../engine.js'
import { CacheArgumentError, CacheError } from '../errors.js'
import { computeOnce, resolveGetOrSetOptions, taggedFlight, type Slot } from '../getorset.js'
import { checkTags, type TagRead } from '../tags.js'
import { traceCall, tracing, type OperationContext } from '../trace.js'
import { callKey, instanceVersionKey, KEY_PREFIX, versionKey } from './keys.js'
import type { Memoized, MemoizeOptions } from './options.js'

/** How an entry is stored: the result and the versions it was computed under. */
interface Entry {
  v: string[]
  r: unknown
}

/** What `deleteMemoized` needs to know about a memoized function (or a method bound to one instance). */
export interface MemoInfo {
  cache: WithEngine
  /** The name; a method's is resolved on its first use, from the class that defines it. */
  name(): string
  /** For a method bound to an instance: that instance. */
  instance?: object
}

/** Every memoized function (and decorated method) of this process, for `deleteMemoized`. */
export const infos = new WeakMap<object, MemoInfo>()
/**
 * Which function first took a name, by the name's full key (so per key prefix: two caches with different
 * prefixes never share entries), to warn when two different functions share one.
 */
const names = new Map<string, string>()

/**
 * Warn once when two different functions are memoized under one name (their results would mix). The same
 * source under one name is fine: a dev server's module reload memoizes the same function again.
 */
function claimName(engine: Engine, name: string, fn: (...args: never[]) => unknown): void {
  const source = Function.prototype.toString.call(fn)
  const slot = engine.fullKey(KEY_PREFIX + name)
  const previous = names.get(slot)
  if (previous === undefined) names.set(slot, source)
  else if (previous !== source) {
    engine.warnOnce(`two different functions are memoized under the name "${name}", so they share cached results. Give one of them \`name\`.`)
  }
}


export interface Plan<A extends unknown[], R> {
  cache: WithEngine
  fn: (...args: A) => R
  options: MemoizeOptions<A, Awaited<R>>
  ignored: Set<number>
  /** The name was checked against other memoized functions (on the first call, when the cache is open). */
  claimed?: boolean
}

/** The current versions of `name` (and of one instance), creating any that is missing. */
async function currentVersions(engine: Engine, keys: string[], stored: (string | undefined)[], budget: Budget): Promise<string[]> {
  const versions: string[] = []
  for (let i = 0; i < keys.length; i++) {
    let v = stored[i]
    if (v === undefined) {
      // A random version, never a counter from 0: a version key that vanished (evicted) must not bring
      // back entries that an earlier `deleteMemoized` invalidated. It never expires (no TTL).
      const fresh = randomBytes(9).toString('base64url')
      v = (await engine.add(keys[i] as string, fresh, 0, budget)) ? fresh : await engine.get<string>(keys[i] as string, budget)
      if (v === undefined) throw new CacheArgumentError(`The version key ${keys[i]} vanished between add and get.`)
    }
    versions.push(v)
  }
  return versions
}


/** One call of a memoized function: its entry read (under the current versions) or computed once. */
export async function callMemoized<A extends unknown[], R>(plan: Plan<A, R>, self: unknown, name: string, instance: string | undefined, args: A): Promise<Awaited<R>> {
  const { cache, fn, options } = plan
  let ran = false
  const run = (): Promise<Awaited<R>> => {
    ran = true
    return Promise.resolve(fn.apply(self, args)) as Promise<Awaited<R>>
  }
  if (options.unless?.(...args) === true) return run()
  const key = callKey(plan, name, instance, args)
  const versionKeys = instance === undefined ? [versionKey(name)] : [versionKey(name), instanceVersionKey(name, instance)]
  const engine = await cache[ENGINE]()
  if (!plan.claimed) {
    plan.claimed = true
    claimName(engine, name, fn as (...args: never[]) => unknown)
  }
  // The call's tags, from its arguments: checked before anything is read or run.
  const tags = options.tags === undefined ? [] : checkTags(typeof options.tags === 'function' ? options.tags(...args) : options.tags, `memoize(${name})`, key)
  let versions: string[] | undefined
  let stamp: TagRead | undefined
  let epoch = engine.tagEpoch(tags)
  const slot: Slot<Awaited<R>> = {
    key,
    ...(tags.length === 0 ? {} : { flight: taggedFlight(engine, key, tags) }),
    async read(budget) {
      let read: unknown[]
      if (tags.length === 0) read = await engine.getMany<unknown>([key, ...versionKeys], budget)
      else {
        // The entry, the function's versions and the tags' versions in one getMany, before `fn` runs.
        epoch = engine.tagEpoch(tags)
        const tagged = await engine.readTagged<unknown>([key, ...versionKeys], tags, budget)
        stamp = tagged.stamp
        read = tagged.values
      }
      const [entry, ...stored] = read
      try {
        // After a failed read this throws at once (nothing more is sent): a miss, as below.
        versions = await currentVersions(engine, versionKeys, stored as (string | undefined)[], budget)
      } catch (error) {
        if (!(error instanceof CacheError)) throw error
        // The backend fails (fail-open) or lost a version key in between: a miss, and nothing is stored.
        versions = undefined
        return { value: undefined, stale: false }
      }
      const e = entry as Entry | undefined
      const valid = e !== undefined && Array.isArray(e.v) && e.v.length === versions.length && e.v.every((v, i) => v === versions?.[i])
      return { value: valid ? (e.r as Awaited<R>) : undefined, stale: false }
    },
    async write(value, budget) {
      if (versions === undefined) return false
      // As getOrSet's tagged slot: no versions, or an invalidation by this process since they were read.
      if (tags.length > 0 && (stamp === undefined || engine.tagEpoch(tags) !== epoch)) return false
      if (options.cacheIf !== undefined && !options.cacheIf(value, ...args)) return false
      const entry: Entry = { v: versions, r: value }
      return engine.set(key, entry, options.ttl, budget, stamp)
    },
  }
  const resolved = resolveGetOrSetOptions(key, { ttl: options.ttl, ...(options.lease === undefined ? {} : { lease: options.lease }) })
  const answer = async (): Promise<Awaited<R>> => {
    // One deadline for the call's commands, `fn`'s own time not counted (as getOrSet's).
    const budget = engine.budget()
    if (options.forcedUpdate?.(...args) === true) {
      await slot.read(budget)
      // A forced update runs `fn` whatever is stored: a miss, and a set when its result is stored.
      engine.record('miss', key)
      const value = await budget.offClock(run)
      if (value !== undefined && budget.stopped === undefined && (await slot.write(value, budget))) engine.record('set', key)
      return value
    }
    return computeOnce(engine, slot, run, resolved, budget)
  }
  if (!tracing()) return answer()
  // Published as one `memoize` operation: whether `fn` ran for this call (a refresh after it ended is not its).
  const context: OperationContext = { operation: 'memoize', backend: engine.adapter?.name ?? 'none', keyPrefix: engine.fullKey(''), key, name }
  return traceCall<Awaited<R>>(context, async (): Promise<Awaited<R>> => {
    const value: Awaited<R> = await answer()
    context.factoryRan = ran
    context.hit = !ran
    return value
  })
}


/** A memoized function: `wrapper`, with `uncached` and `makeCacheKey`. */
export function attach<A extends unknown[], R>(wrapper: (...args: A) => Promise<Awaited<R>>, uncached: (...args: A) => R, makeCacheKey: (...args: A) => string): Memoized<A, R> {
  Object.defineProperty(wrapper, 'uncached', { value: uncached })
  Object.defineProperty(wrapper, 'makeCacheKey', { value: makeCacheKey })
  return wrapper as Memoized<A, R>
}
