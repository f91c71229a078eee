/** The check that an object given as `adapter` (or built by its factory) is a whole CacheAdapter. */
import type { CacheAdapter } from '../adapter.js'
import { CacheConfigError } from '../errors.js'
import { showValue } from './show.js'

/** What the Cache calls on an adapter: an object lacking one fails later with a raw TypeError instead. */
const ADAPTER_METHODS = [
  'get', 'getMany', 'set', 'setMany', 'add', 'increment', 'delete', 'deleteMany', 'has', 'touch', 'expiresAt', 'clear', 'keys', 'purgeExpired', 'close',
] as const

/** A value in a message about what a factory returned: its type, or its class. */
function describeValue(value: unknown): string {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return showValue(value)
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name
  return name === undefined || name === 'Object' ? 'an object' : `a ${name}`
}

/**
 * Refuse something that is not a {@link CacheAdapter}: an object with `capabilities` and the methods the
 * Cache calls (and `ready`, if any, a function). `fromFactory`: it is what the `adapter` factory returned.
 *
 * @throws {CacheConfigError} naming `adapter` and what is missing.
 */
export function checkAdapter(value: unknown, fromFactory: boolean): asserts value is CacheAdapter {
  const what = fromFactory ? 'Option `adapter`: the factory returned' : 'Option `adapter` is'
  if (typeof value !== 'object' || value === null || typeof (value as PromiseLike<unknown>).then === 'function') {
    const promise = typeof (value as PromiseLike<unknown> | null)?.then === 'function' ? ' (a factory builds the adapter itself, synchronously; its `ready()` may be async)' : ''
    throw new CacheConfigError(`${what} ${describeValue(value)}, not a CacheAdapter${promise}.`, { option: 'adapter' })
  }
  const a = value as Record<string, unknown>
  const missing = ADAPTER_METHODS.filter((m) => typeof a[m] !== 'function').map((m) => `\`${m}\``)
  const problems = [
    ...(typeof a.capabilities !== 'object' || a.capabilities === null ? ['no `capabilities`'] : []),
    ...(missing.length > 0 ? [`no ${missing.join(', ')} method${missing.length === 1 ? '' : 's'}`] : []),
    ...(a.ready !== undefined && typeof a.ready !== 'function' ? ['a `ready` that is not a function'] : []),
  ]
  if (problems.length > 0) {
    throw new CacheConfigError(
      `${what} ${describeValue(value)} that is not a CacheAdapter: it has ${problems.join(' and ')}. Implement the whole contract ` +
        "(see CacheAdapter), and prove it with `runAdapterConformance` from 'cachekit/testing'.",
      { option: 'adapter' },
    )
  }
}
