import { randomBytes } from 'node:crypto'
import type { Budget } from './budget.js'
import type { Cache } from './cache.js'
import type { Duration } from './duration.js'
import { CacheArgumentError, CacheConfigError, CacheError } from './errors.js'
import { computeOnce, resolveGetOrSetOptions, type LeaseOptions, type Slot } from './getorset.js'
import { checkOptionNames } from './config/suggest.js'
import { INTERNALS, type CacheInternals } from './internals.js'
import { canonicalEncode, sha256 } from './keys-canonical.js'

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
}

/** A memoized function: same parameters, an async result, and its cache tools. */
export type Memoized<A extends unknown[], R> = ((...args: A) => Promise<Awaited<R>>) & {
  /** The original function, which never touches the cache. */
  readonly uncached: (...args: A) => R
  /** The cache key (under the cache's prefix) of a call with these arguments. */
  makeCacheKey(...args: A): string
}

/** How an entry is stored: the result and the versions it was computed under. */
interface Entry {
  v: string[]
  r: unknown
}

/** What `deleteMemoized` needs to know about a memoized function (or a method bound to one instance). */
interface MemoInfo {
  cache: Cache
  /** The name; a method's is resolved on its first use, from the class that defines it. */
  name(): string
  /** For a method bound to an instance: that instance. */
  instance?: object
}

const infos = new WeakMap<object, MemoInfo>()
/**
 * Which function first took a name, by the name's full key (so per key prefix: two caches with different
 * prefixes never share entries), to warn when two different functions share one.
 */
const names = new Map<string, string>()

const KEY_PREFIX = 'memoize:'

function versionKey(name: string): string {
  return `${KEY_PREFIX}${name}:~version`
}

function instanceVersionKey(name: string, id: string): string {
  return `${KEY_PREFIX}${name}:~version:${id}`
}

/** The instance id of `self` for a memoized method: its `cacheId()`, else its `id` field. */
function instanceId(self: object, name: string): string {
  const withId = self as { cacheId?: unknown; id?: unknown }
  const id = typeof withId.cacheId === 'function' ? (withId.cacheId as () => unknown).call(self) : withId.id
  if (id === undefined || id === null) {
    throw new CacheArgumentError(
      `The memoized method ${name} needs to know which instance it runs on: give the class an \`id\` field or a \`cacheId()\` method returning a string or number that identifies the instance in every process.`,
    )
  }
  return sha256(canonicalEncode(id, `instance id of ${name}`))
}

/** Parameter names of a function, from its source; `undefined` for a destructured or unreadable one. */
export function parameterNames(fn: (...args: never[]) => unknown): (string | undefined)[] {
  const source = Function.prototype.toString.call(fn)
  const start = /^[^(=]*?(?=\(|[\w$]+\s*=>)/.exec(source)
  let rest = source.slice(start?.[0].length ?? 0)
  if (!rest.startsWith('(')) {
    const single = /^([\w$]+)\s*=>/.exec(rest)
    return single ? [single[1]] : []
  }
  rest = rest.slice(1)
  const params: string[] = []
  let depth = 0
  let current = ''
  let quote = ''
  for (const ch of rest) {
    if (quote !== '') {
      if (ch === quote) quote = ''
      current += ch
      continue
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch
    if (ch === '(' || ch === '[' || ch === '{') depth++
    if (ch === ')' || ch === ']' || ch === '}') {
      if (depth === 0) break
      depth--
    }
    if (ch === ',' && depth === 0) {
      params.push(current)
      current = ''
      continue
    }
    current += ch
  }
  if (current.trim() !== '') params.push(current)
  return params.map((p) => /^\s*(?:\.\.\.)?([\w$]+)\s*(?:=|$)/.exec(p)?.[1])
}

function ignoredPositions(fn: (...args: never[]) => unknown, name: string, argsToIgnore: readonly (number | string)[] | undefined): Set<number> {
  const ignored = new Set<number>()
  if (argsToIgnore === undefined) return ignored
  if (!Array.isArray(argsToIgnore)) throw new CacheConfigError(`memoize(${name}): \`argsToIgnore\` must be an array of positions or parameter names.`, { option: 'argsToIgnore' })
  let params: (string | undefined)[] | undefined
  for (const a of argsToIgnore) {
    if (typeof a === 'number' && Number.isSafeInteger(a) && a >= 0) ignored.add(a)
    else if (typeof a === 'string') {
      params ??= parameterNames(fn)
      const at = params.indexOf(a)
      if (at < 0) {
        throw new CacheConfigError(
          `memoize(${name}): \`argsToIgnore\` names ${JSON.stringify(a)}, which is not a parameter of the function (${params.filter(Boolean).join(', ') || 'none found'}). Give its position instead.`,
          { option: 'argsToIgnore' },
        )
      }
      ignored.add(at)
    } else {
      throw new CacheConfigError(`memoize(${name}): \`argsToIgnore\` holds ${String(a)}; write positions (0, 1, ...) or parameter names.`, { option: 'argsToIgnore' })
    }
  }
  return ignored
}

function checkOptions(name: string, options: MemoizeOptions<never[], never>): void {
  const known = ['ttl', 'name', 'key', 'unless', 'forcedUpdate', 'cacheIf', 'argsToIgnore', 'lease']
  checkOptionNames(options, known, `memoize(${name})`, (message, option) => new CacheConfigError(message, { option }))
  for (const option of ['key', 'unless', 'forcedUpdate', 'cacheIf'] as const) {
    if (options[option] !== undefined && typeof options[option] !== 'function') {
      throw new CacheConfigError(`memoize(${name}): \`${option}\` must be a function.`, { option })
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

/**
 * Warn once when two different functions are memoized under one name (their results would mix). The same
 * source under one name is fine: a dev server's module reload memoizes the same function again.
 */
function claimName(internals: CacheInternals, name: string, fn: (...args: never[]) => unknown): void {
  const source = Function.prototype.toString.call(fn)
  const slot = internals.fullKey(KEY_PREFIX + name)
  const previous = names.get(slot)
  if (previous === undefined) names.set(slot, source)
  else if (previous !== source) {
    internals.warnOnce(`two different functions are memoized under the name "${name}", so they share cached results. Give one of them \`name\`.`)
  }
}

interface Plan<A extends unknown[], R> {
  cache: Cache
  fn: (...args: A) => R
  options: MemoizeOptions<A, Awaited<R>>
  ignored: Set<number>
  /** The name was checked against other memoized functions (on the first call, when the cache is open). */
  claimed?: boolean
}

function callKey<A extends unknown[]>(plan: { options: { key?: (...args: A) => unknown }; ignored: Set<number> }, name: string, instance: string | undefined, args: A): string {
  const identity = plan.options.key !== undefined ? [plan.options.key(...args)] : args.filter((_, i) => !plan.ignored.has(i))
  const encoded = canonicalEncode(identity, `arguments of ${name}`)
  return `${KEY_PREFIX}${name}:${sha256(instance === undefined ? encoded : `${instance}|${encoded}`)}`
}

/** The current versions of `name` (and of one instance), creating any that is missing. */
async function currentVersions(internals: CacheInternals, keys: string[], stored: (string | undefined)[], budget: Budget): Promise<string[]> {
  const versions: string[] = []
  for (let i = 0; i < keys.length; i++) {
    let v = stored[i]
    if (v === undefined) {
      // A random version, never a counter from 0: a version key that vanished (evicted) must not bring
      // back entries that an earlier `deleteMemoized` invalidated. It never expires (no TTL).
      const fresh = randomBytes(9).toString('base64url')
      v = (await internals.add(keys[i] as string, fresh, 0, budget)) ? fresh : await internals.get<string>(keys[i] as string, budget)
      if (v === undefined) throw new CacheArgumentError(`The version key ${keys[i]} vanished between add and get.`)
    }
    versions.push(v)
  }
  return versions
}

async function callMemoized<A extends unknown[], R>(plan: Plan<A, R>, self: unknown, name: string, instance: string | undefined, args: A): Promise<Awaited<R>> {
  const { cache, fn, options } = plan
  const run = (): Promise<Awaited<R>> => Promise.resolve(fn.apply(self, args)) as Promise<Awaited<R>>
  if (options.unless?.(...args) === true) return run()
  const key = callKey(plan, name, instance, args)
  const versionKeys = instance === undefined ? [versionKey(name)] : [versionKey(name), instanceVersionKey(name, instance)]
  const internals = await cache[INTERNALS]()
  if (!plan.claimed) {
    plan.claimed = true
    claimName(internals, name, fn as (...args: never[]) => unknown)
  }
  let versions: string[] | undefined
  const slot: Slot<Awaited<R>> = {
    key,
    async read(budget) {
      const [entry, ...stored] = await internals.getMany<unknown>([key, ...versionKeys], budget)
      try {
        // After a failed read this throws at once (nothing more is sent): a miss, as below.
        versions = await currentVersions(internals, versionKeys, stored as (string | undefined)[], budget)
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
      if (versions === undefined) return
      if (options.cacheIf !== undefined && !options.cacheIf(value, ...args)) return
      const entry: Entry = { v: versions, r: value }
      await internals.set(key, entry, options.ttl, budget)
    },
  }
  const resolved = resolveGetOrSetOptions(key, { ttl: options.ttl, ...(options.lease === undefined ? {} : { lease: options.lease }) })
  // One deadline for the call's commands, `fn`'s own time not counted (as getOrSet's).
  const budget = internals.budget()
  if (options.forcedUpdate?.(...args) === true) {
    await slot.read(budget)
    const value = await budget.offClock(run)
    if (value !== undefined && budget.stopped === undefined) await slot.write(value, budget)
    return value
  }
  return computeOnce(cache, internals, slot, run, resolved, budget)
}

function checkedName(fn: unknown, options: MemoizeOptions<never[], never> | undefined, what: string): string {
  if (typeof fn !== 'function') throw new CacheConfigError(`${what} takes a function, not ${typeof fn}.`)
  const name = options?.name ?? fn.name
  if (typeof name !== 'string' || name === '') {
    throw new CacheConfigError(
      `${what}: the function is anonymous, and cache keys need a name that is the same in every process. Pass \`{ name: '...' }\`, or memoize a named function.`,
      { option: 'name' },
    )
  }
  return name
}

function attach<A extends unknown[], R>(wrapper: (...args: A) => Promise<Awaited<R>>, uncached: (...args: A) => R, makeCacheKey: (...args: A) => string): Memoized<A, R> {
  Object.defineProperty(wrapper, 'uncached', { value: uncached })
  Object.defineProperty(wrapper, 'makeCacheKey', { value: makeCacheKey })
  return wrapper as Memoized<A, R>
}

/** `cache.memoize(fn, options)`. @internal */
export function memoize<A extends unknown[], R>(cache: Cache, fn: (...args: A) => R, options: MemoizeOptions<A, Awaited<R>> = {}): Memoized<A, R> {
  const name = checkedName(fn, options as MemoizeOptions<never[], never>, 'memoize')
  checkOptions(name, options as MemoizeOptions<never[], never>)
  const plan: Plan<A, R> = { cache, fn, options, ignored: ignoredPositions(fn as (...args: never[]) => unknown, name, options.argsToIgnore) }
  const wrapper = attach<A, R>(
    function (this: unknown, ...args: A) {
      return callMemoized(plan, this, name, undefined, args)
    },
    fn,
    (...args: A) => callKey(plan, name, undefined, args),
  )
  const info: MemoInfo = { cache, name: () => name }
  infos.set(wrapper, info)
  if (!infos.has(fn)) infos.set(fn, info)
  return wrapper
}

/** A method decorator as TypeScript 5 (standard decorators) types it. */
export type MemoizedDecorator = <This extends object, A extends unknown[], R>(
  target: (this: This, ...args: A) => Promise<R>,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>,
) => (this: This, ...args: A) => Promise<R>

/** `@cache.memoized(options)`. @internal */
export function memoized(cache: Cache, options: MemoizeOptions = {}): MemoizedDecorator {
  checkOptions(options.name ?? 'a method', options as MemoizeOptions<never[], never>)
  return <This extends object, A extends unknown[], R>(
    target: (this: This, ...args: A) => Promise<R>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>,
  ) => {
    if (context.kind !== 'method') throw new CacheConfigError('@cache.memoized decorates methods only.')
    if (context.private) throw new CacheConfigError(`@cache.memoized cannot decorate the private method ${String(context.name)}: make it a regular method.`)
    const method = String(context.name)
    const opts = options as MemoizeOptions<A, R>
    const plan: Plan<A, Promise<R>> = { cache, fn: target, options: opts as MemoizeOptions<A, Awaited<Promise<R>>>, ignored: ignoredPositions(target as (...args: never[]) => unknown, method, opts.argsToIgnore) }
    let resolvedName = opts.name
    /** `Class.method`, from the class that defines the method (not a subclass). */
    const nameFrom = (self: object): string => {
      if (resolvedName !== undefined) return resolvedName
      let owner: object | null = Object.getPrototypeOf(self)
      while (owner !== null && !(Object.hasOwn(owner, method) && (owner as Record<string, unknown>)[method] === replacement)) owner = Object.getPrototypeOf(owner)
      const cls = (owner as { constructor?: { name?: string } } | null)?.constructor?.name
      if (cls === undefined || cls === '') throw new CacheConfigError(`@cache.memoized on ${method}: the class is anonymous; pass \`{ name: '...' }\`.`, { option: 'name' })
      resolvedName = `${cls}.${method}`
      return resolvedName
    }
    const nameOrThrow = (): string => {
      if (resolvedName !== undefined) return resolvedName
      throw new CacheConfigError(
        `deleteMemoized: the memoized method ${method} has not been used in this process yet, so its class is unknown. Give it \`@cache.memoized({ name: 'Class.${method}' })\`, or call deleteMemoized on an instance's method.`,
        { option: 'name' },
      )
    }
    const replacement = function (this: This, ...args: A): Promise<R> {
      try {
        const name = nameFrom(this)
        const instance = context.static ? undefined : instanceId(this, name)
        return callMemoized(plan, this, name, instance, args) as Promise<R>
      } catch (error) {
        // An async method rejects; it never throws synchronously.
        return Promise.reject(error as Error)
      }
    }
    infos.set(replacement, { cache, name: nameOrThrow })
    // Each instance gets its own bound function, so `deleteMemoized(obj.method)` knows the instance.
    const bindTo = (self: This): void => {
      const bound = attach<A, Promise<R>>(
        (...args: A) => replacement.apply(self, args) as Promise<Awaited<Promise<R>>>,
        (...args: A) => target.apply(self, args),
        (...args: A) => {
          const name = nameFrom(self)
          return callKey(plan, name, context.static ? undefined : instanceId(self, name), args)
        },
      )
      infos.set(bound, { cache, name: () => nameFrom(self), ...(context.static ? {} : { instance: self }) })
      Object.defineProperty(self, method, { value: bound, writable: true, configurable: true, enumerable: false })
    }
    context.addInitializer(function (this: This) {
      // A static method's initializer runs once, with the class itself: its name is known from here on.
      if (!context.static) bindTo(this)
      else if (typeof (this as { name?: unknown }).name === 'string' && (this as { name: string }).name !== '') resolvedName ??= `${(this as { name: string }).name}.${method}`
    })
    return replacement
  }
}

/** `cache.deleteMemoized(fn, ...args)`. @internal */
export async function deleteMemoized(fn: unknown, args: unknown[]): Promise<boolean> {
  const info = typeof fn === 'function' ? infos.get(fn) : undefined
  if (info === undefined) {
    throw new CacheArgumentError(
      'deleteMemoized takes a function returned by `cache.memoize` (or a method decorated with `@cache.memoized`), or the function that was memoized.',
    )
  }
  const { cache } = info
  const name = info.name()
  const instance = info.instance === undefined ? undefined : instanceId(info.instance, name)
  if (args.length > 0) {
    const memo = fn as Partial<Memoized<unknown[], unknown>>
    const key = typeof memo.makeCacheKey === 'function' ? memo.makeCacheKey(...args) : undefined
    if (key === undefined) throw new CacheArgumentError(`deleteMemoized(${name}, ...args): pass the memoized function (or an instance's method), not the original.`)
    return cache.delete(key)
  }
  // O(1) on every backend: a new version makes every entry of the old one a miss (they expire by their TTL).
  const key = instance === undefined ? versionKey(name) : instanceVersionKey(name, instance)
  return cache.set(key, randomBytes(9).toString('base64url'), 0)
}
