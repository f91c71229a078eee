import { Cache } from '../src/cache.js'
import { configFromEnv, EMBEDDED_DEFAULT, type CacheConfig } from '../src/config/index.js'
import { redactUrl } from '../src/redact.js'
import { adapterDefinitions } from '../src/registry.js'

/** An open cache for one CLI command. */
export interface Opened {
  cache: Cache
  /** Where the config came from and what it says, with any password hidden. */
  description: string
  close(): Promise<void>
}

/**
 * The config a command uses: `--url`, else `CACHE_*` variables, else the embedded default. Variables that
 * are set but ignored are told to `warn` (by default, nobody: the command itself warns once).
 */
export function cliConfig(
  url: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = () => {},
): { config: CacheConfig; source: string } {
  if (url !== undefined) return { config: url, source: `--url ${redactUrl(url)}` }
  const fromEnv = configFromEnv(env, { warn })
  if (fromEnv !== undefined) {
    const what = typeof fromEnv.url === 'string' ? redactUrl(fromEnv.url) : String(fromEnv.type)
    return { config: fromEnv, source: `CACHE_* variables (${what})` }
  }
  const what = typeof EMBEDDED_DEFAULT.url === 'string' ? EMBEDDED_DEFAULT.url : EMBEDDED_DEFAULT.type
  return { config: EMBEDDED_DEFAULT, source: `the embedded default (${what})` }
}

/**
 * A cache for one CLI command, from the config the command uses. Fail-open is off: an operator must see a
 * backend failure, not a miss. Warnings, corrupt entries and background errors go to `warn`.
 */
export async function openCache(options: { url?: string; prefix?: string; warn: (message: string) => void }): Promise<Opened> {
  const { config, source } = cliConfig(options.url, process.env, options.warn)
  const base = typeof config === 'string' ? { url: config } : config
  const cache = new Cache()
  cache.on('warning', options.warn)
  cache.on('corrupt', (key, detail) => options.warn(`corrupt entry${key === undefined ? '' : ` ${key}`} removed: ${detail}`))
  cache.on('error', (error) => options.warn(error.message))
  // A command is no process of the app's: it publishes no counters, whatever CACHE_PUBLISH_STATS says.
  cache.init({ ...base, ...(options.prefix === undefined ? {} : { keyPrefix: options.prefix }), failOpen: false, publishStats: 0 })
  let closed = false
  return {
    cache,
    description: `${cache.stats().type} from ${source}`,
    async close() {
      if (closed) return
      closed = true
      await cache.close()
    },
  }
}

/**
 * The backends a `--url` or `CACHE_TYPE` can name, from the registry (so a backend added there, or with
 * `registerAdapter`, is listed without a copy here): `memory (memory:), ..., keyv (no URL)`.
 */
export function backendList(): string {
  return adapterDefinitions()
    .map((d) => `${d.type} (${d.schemes === undefined ? 'no URL' : d.schemes.map((s) => `${s}:`).join(' ')})`)
    .join(', ')
}
