import type { Duration } from '../duration.js'
import { CacheConfigError } from '../errors.js'
import { BOOKKEEPING } from '../engine.js'
import { resolveGetOrSetOptions, type LeaseOptions } from '../getorset.js'
import { checkOptionNames } from '../config/suggest.js'
import { checkTags } from '../tags.js'

/** Options of `cache.memoize(fn, options)` and `@cache.memoized(options)`. */
export interface MemoizeOptions<A extends unknown[] = unknown[], R = unknown> {
  /** How long a result is kept. @default the cache's `defaultTtl` */
  ttl?: Duration
  /**
   * The name in the cache keys. Keys must be the same in every process and after a restart, so they are
   * built from a name, never from the function's identity. Required for an anonymous function; give it
   * also when two functions of one name share a cache (two modules' `load`).
   * @default the function's `name` (for a decorated method, `Class.method`)
   */
  name?: string
  /**
   * What identifies a call, instead of all its arguments: e.g. `(user) => user.id`. Its result is encoded
   * canonically and hashed like the arguments.
   * @default all the arguments (minus `argsToIgnore`)
   */
  key?: (...args: A) => unknown
  /** When it returns true, the call bypasses the cache: `fn` runs and nothing is read or stored. */
  unless?: (...args: A) => boolean
  /** When it returns true, `fn` runs and its result replaces the cached one. */
  forcedUpdate?: (...args: A) => boolean
  /**
   * Whether to store a result. `undefined` is never stored (it means "no value"); `null` is.
   * @default every result but `undefined`
   */
  cacheIf?: (result: R, ...args: A) => boolean
  /**
   * Arguments that do not change the result (a logger, a request context): by position (`0` is the first)
   * or by parameter name (read from the function's source; destructured parameters have no name).
   */
  argsToIgnore?: readonly (number | string)[]
  /** The cross-process lease on shared backends, as in `getOrSet`. @default true */
  lease?: boolean | LeaseOptions
  /**
   * Tags of each result, to invalidate it with `cache.invalidateTags(tags)`: a list, or a function of the
   * call's arguments, e.g. `(id) => [\`org:${id}\`]`. As with `getOrSet`, their versions are read before `fn`
   * runs (docs/tags.md).
   * @default no tags
   */
  tags?: readonly string[] | ((...args: A) => readonly string[])
}

/** A memoized function: same parameters, an async result, and its cache tools. */
export type Memoized<A extends unknown[], R> = ((...args: A) => Promise<Awaited<R>>) & {
  /** The original function, which never touches the cache. */
  readonly uncached: (...args: A) => R
  /** The cache key (under the cache's prefix) of a call with these arguments. */
  makeCacheKey(...args: A): string
}


/** Check memoize's options when it is called, not on the first call of the memoized function. */
export function checkOptions(name: string, options: MemoizeOptions<never[], never>): void {
  const known = ['ttl', 'name', 'key', 'unless', 'forcedUpdate', 'cacheIf', 'argsToIgnore', 'lease', 'tags']
  checkOptionNames(options, known, `memoize(${name})`, (message, option) => new CacheConfigError(message, { option }))
  for (const option of ['key', 'unless', 'forcedUpdate', 'cacheIf'] as const) {
    if (options[option] !== undefined && typeof options[option] !== 'function') {
      throw new CacheConfigError(`memoize(${name}): \`${option}\` must be a function.`, { option })
    }
  }
  if (options.tags !== undefined && typeof options.tags !== 'function') {
    try {
      checkTags(options.tags, `memoize(${name})`, undefined)
    } catch (error) {
      throw new CacheConfigError((error as Error).message.replace(/^memoize\([^)]*\): /, `memoize(${name}): \`tags\`: `), { option: 'tags', cause: error })
    }
  }
  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw new CacheConfigError('memoize: `name` must be a non-empty string.', { option: 'name' })
  }
  // The TTL and lease options, checked now rather than on the first call.
  try {
    resolveGetOrSetOptions(name, { ttl: options.ttl, ...(options.lease === undefined ? {} : { lease: options.lease }) })
  } catch (error) {
    const option = (error as { option?: string }).option ?? 'ttl'
    throw new CacheConfigError(`memoize(${name}): ${(error as Error).message.replace(/ of getOrSet\([^)]*\)/, '')}`, { option, cause: error })
  }
}


/** The name of the memoized function's keys. @throws {CacheConfigError} for an anonymous function without `name`. */
export function checkedName(fn: unknown, options: MemoizeOptions<never[], never> | undefined, what: string): string {
  if (typeof fn !== 'function') throw new CacheConfigError(`${what} takes a function, not ${typeof fn}.`)
  const name = options?.name ?? fn.name
  if (typeof name !== 'string' || name === '') {
    throw new CacheConfigError(
      `${what}: the function is anonymous, and cache keys need a name that is the same in every process. Pass \`{ name: '...' }\`, or memoize a named function.`,
      { option: 'name' },
    )
  }
  if (name.includes(BOOKKEEPING)) {
    throw new CacheConfigError(`${what}: the name ${JSON.stringify(name)} contains "${BOOKKEEPING}", which marks cachekit's own bookkeeping keys. Pass another \`name\`.`, { option: 'name' })
  }
  return name
}
