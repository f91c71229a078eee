import { Cache } from './cache.js'
import type { CacheConfig } from './config/index.js'

const KEY = Symbol.for('cachekit')

type Global = typeof globalThis & { [KEY]?: Cache }

/**
 * The process-wide cache. It lives on `globalThis` under `Symbol.for('cachekit')`, so two copies of the
 * package (two versions in node_modules, or a dev server's module reload) share one cache and one connection.
 *
 * @example
 * // bootstrap file
 * cache.init({ type: 'redis', url: process.env.REDIS_URL })
 * // anywhere else
 * import { cache } from 'cachekit'
 * await cache.inc('hits')
 */
export const cache: Cache = ((globalThis as Global)[KEY] ??= Cache.singleton())

/**
 * An independent cache, initialized with `config` (or from `CACHE_*` variables when omitted).
 * @throws {CacheConfigError} for an invalid config.
 */
export function createCache(config?: CacheConfig): Cache {
  return new Cache().init(config)
}
