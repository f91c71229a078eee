/**
 * What an adapter says about itself before it is loaded: the shape every built-in's `definition.ts` and every
 * `registerAdapter` call use. A leaf: it imports only the adapter contract, so a definition never pulls in
 * the config, the registry or the cache.
 */
import type { AdapterFactory } from './adapter.js'

/**
 * The kind of an adapter option, checked at `init` before the adapter (and its driver) is loaded.
 * `'duration'` accepts a {@link Duration} and `'size'` a {@link Size}, both parsed at `init` (the adapter
 * receives milliseconds or bytes); `'any'` is checked by the adapter itself.
 */
export type OptionKind = 'string' | 'number' | 'boolean' | 'duration' | 'size' | 'object' | 'function' | 'any'

/** Every {@link OptionKind}, for the checks of a definition. */
export const OPTION_KINDS: readonly OptionKind[] = ['string', 'number', 'boolean', 'duration', 'size', 'object', 'function', 'any']

/**
 * How the Cache knows an adapter without loading it: its option names (to catch misspellings at `init`),
 * its URL schemes and environment variables, and a lazy `load` so that importing cachekit for a memory
 * cache never loads a native module or a Redis client.
 *
 * @example
 * registerAdapter({
 *   type: 'acme',
 *   options: { endpoint: 'string', timeout: 'duration' },
 *   schemes: ['acme'],
 *   fromUrl: (url) => ({ endpoint: url.slice('acme://'.length) }),
 *   env: { CACHE_ACME_ENDPOINT: 'endpoint' },
 *   load: async () => (await import('./acme-adapter.js')).acmeAdapter,
 * })
 */
export interface AdapterDefinition {
  /** The `type` users write, e.g. `'sqlite'`. */
  type: string
  /** Other names for `type` (`'file'` for `'filesystem'`). */
  aliases?: readonly string[]
  /** The adapter's own options and their kinds (`url` is always accepted and needs no entry). */
  options: Readonly<Record<string, OptionKind>>
  /** URL schemes (without the colon) that select this adapter. */
  schemes?: readonly string[]
  /** Adapter options from a URL of one of `schemes`; without it, the URL is passed on as the `url` option. */
  fromUrl?(url: string): Record<string, unknown>
  /** Environment variables read by `configFromEnv`, mapped to an option name (or `'url'`). */
  env?: Readonly<Record<string, string>>
  /** Load the adapter's factory (and its driver). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each adapter's factory takes its own options type
  load(): Promise<AdapterFactory<any>>
}

/** Whether an import failed because one of `packages` is not installed (not a module it needs). */
export function isModuleMissing(error: unknown, ...packages: string[]): boolean {
  const e = error as { code?: string; message?: string }
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && packages.some((p) => e.message?.includes(p) === true)
}
