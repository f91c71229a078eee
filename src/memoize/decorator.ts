import { CacheConfigError } from '../errors.js'
import type { WithEngine } from '../engine.js'
import { attach, callMemoized, infos, type Plan } from './call.js'
import { callKey, ignoredPositions, instanceId } from './keys.js'
import { checkOptions, type MemoizeOptions } from './options.js'

/** A method decorator as TypeScript 5 (standard decorators) types it. */
export type MemoizedDecorator = <This extends object, A extends unknown[], R>(
  target: (this: This, ...args: A) => Promise<R>,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>,
) => (this: This, ...args: A) => Promise<R>

/** `@cache.memoized(options)`. @internal */
export function memoized(cache: WithEngine, options: MemoizeOptions = {}): MemoizedDecorator {
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
