import type { AdapterEvent, Awaitable, CacheAdapter } from '../src/adapter.js'
import { Cache } from '../src/cache.js'
import { configFromEnv, EMBEDDED_DEFAULT, redactUrl, resolveConfig, type CacheConfig } from '../src/config.js'
import { CacheConfigError } from '../src/errors.js'

/** Optional methods the CLI uses when an adapter has them; not part of the adapter contract. */
export interface AdapterExtras {
  /** Backend-specific figures for `stats` (sizes, row counts, server info). */
  stats?(): Awaitable<Record<string, unknown>>
}

/** An open cache for one CLI command, with its adapter at hand for what the Cache does not expose. */
export interface Opened {
  cache: Cache
  adapter: CacheAdapter & AdapterExtras
  /** Where the config came from and what it says, with any password hidden. */
  description: string
  close(): Promise<void>
}

/** The config a command uses: `--url`, else `CACHE_*` variables, else the embedded default. */
export function cliConfig(url: string | undefined, env: NodeJS.ProcessEnv = process.env): { config: CacheConfig; source: string } {
  if (url !== undefined) return { config: url, source: `--url ${redactUrl(url)}` }
  const fromEnv = configFromEnv(env)
  if (fromEnv !== undefined) {
    const what = typeof fromEnv.url === 'string' ? redactUrl(fromEnv.url) : String(fromEnv.type)
    return { config: fromEnv, source: `CACHE_* variables (${what})` }
  }
  const what = typeof EMBEDDED_DEFAULT.url === 'string' ? EMBEDDED_DEFAULT.url : EMBEDDED_DEFAULT.type
  return { config: EMBEDDED_DEFAULT, source: `the embedded default (${what})` }
}

/**
 * Build the adapter from the config and a Cache over it. The CLI builds the adapter itself (the Cache keeps
 * its own private) so that `ttl` and `stats` can use adapter extras. Fail-open is off: an operator must see
 * a backend failure, not a miss.
 */
export async function openCache(options: { url?: string; prefix?: string; warn: (message: string) => void }): Promise<Opened> {
  const { config, source } = cliConfig(options.url)
  const resolved = resolveConfig(config)
  const def = resolved.definition
  if (def === undefined) throw new CacheConfigError(`No backend for type \`${resolved.type}\`.`, { option: 'type' })
  const factory = await def.load()
  const adapter = factory(resolved.adapterOptions, {
    now: resolved.now,
    threshold: resolved.threshold,
    emit: (event: AdapterEvent) => {
      if (event.type === 'warning') options.warn(event.message)
      else if (event.type === 'corrupt') options.warn(`corrupt entry${event.key === undefined ? '' : ` ${event.key}`} removed: ${event.detail}`)
      else options.warn(event.error.message)
    },
  }) as CacheAdapter & AdapterExtras
  const cache = new Cache().init({
    adapter,
    keyPrefix: options.prefix ?? resolved.keyPrefix,
    defaultTtl: resolved.defaultTtl,
    serializer: resolved.serializer,
    failOpen: false,
  })
  cache.on('warning', options.warn)
  let closed = false
  return {
    cache,
    adapter,
    description: `${adapter.name} from ${source}`,
    async close() {
      if (closed) return
      closed = true
      await cache.close()
    },
  }
}
