import { randomBytes } from 'node:crypto'
import { ENGINE, type WithEngine } from '../engine.js'
import { CacheArgumentError } from '../errors.js'
import { attach, callMemoized, infos, type MemoInfo, type Plan } from './call.js'
import { callKey, ignoredPositions, instanceId, instanceVersionKey, versionKey } from './keys.js'
import { checkedName, checkOptions, type Memoized, type MemoizeOptions } from './options.js'

export { memoized, type MemoizedDecorator } from './decorator.js'
export { parameterNames } from './keys.js'
export type { Memoized, MemoizeOptions } from './options.js'

/** `cache.memoize(fn, options)`. @internal */
export function memoize<A extends unknown[], R>(cache: WithEngine, fn: (...args: A) => R, options: MemoizeOptions<A, Awaited<R>> = {}): Memoized<A, R> {
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
    const engine = await cache[ENGINE]()
    return engine.delete(key, engine.budget())
  }
  // O(1) on every backend: a new version makes every entry of the old one a miss (they expire by their TTL).
  // A version is bookkeeping: written through the engine, it is no `set` of the user's.
  const key = instance === undefined ? versionKey(name) : instanceVersionKey(name, instance)
  const engine = await cache[ENGINE]()
  return engine.set(key, randomBytes(9).toString('base64url'), 0, engine.budget())
}
