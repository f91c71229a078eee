/** Resolving a config once, eagerly, and comparing two resolved configs. */
import type { AdapterContext, CacheAdapter } from '../adapter.js'
import type { SerializerOption } from '../codec.js'
import type { AdapterDefinition, OptionKind } from '../definition.js'
import { durationOption, parseDuration, type Duration, type Milliseconds } from '../duration.js'
import { CacheConfigError, CacheError } from '../errors.js'
import { redactError, redactText, redactUrl } from '../redact.js'
import { adapterDefinitions, findAdapter, findAdapterForScheme } from '../registry.js'
import { parseSize, type Size } from '../size.js'
import { schemeOf } from '../url.js'
import { describeLoneSurrogate, isWellFormed, WELL_FORMED_FIX } from '../well-formed.js'
import { checkAdapter } from './check-adapter.js'
import { checkL1Backend, resolveL1, takeL1FromUrl, type L1Settings } from '../tier/options.js'
import { COMMON_KINDS, DEFAULTS, type CacheConfig, type CommonOptions } from './options.js'
import { showValue } from './show.js'
import { didYouMean } from './suggest.js'

/** A config after validation: every common option resolved, adapter options apart. */
export interface ResolvedConfig {
  type: string
  adapter: CacheAdapter | ((context: AdapterContext) => CacheAdapter) | undefined
  definition: AdapterDefinition | undefined
  adapterOptions: Record<string, unknown>
  defaultTtl: Milliseconds
  keyPrefix: string
  threshold: number
  failOpen: boolean
  /** `undefined`: the backend's own `commandTimeout`, if it has one. */
  operationTimeout: Milliseconds | undefined
  serializer: SerializerOption
  now: () => number
  /** The memory tier, when on. */
  l1: L1Settings | undefined
  /** How often to write this process's counters to the backend; 0 for never. */
  publishStats: Milliseconds
}

function adapterTypes(): string[] {
  return adapterDefinitions().map((d) => d.type)
}

/** The adapter definition for a type name; Flask-Caching's names (`SimpleCache`, `RedisCache`) work too. */
export function definitionFor(type: string, option: string): AdapterDefinition {
  const def = findAdapter(type) ?? findAdapter(type.toLowerCase().replace(/cache$/, ''))
  if (def === undefined) {
    throw new CacheConfigError(
      `Unknown cache type ${showValue(type)} in \`${option}\`.${didYouMean(type, adapterTypes())} ` +
        `Known types: ${adapterTypes().join(', ')}.`,
      { option },
    )
  }
  return def
}

/** The adapter definition for a URL's scheme, or `undefined`. */
export function findAdapterForUrl(url: string): AdapterDefinition | undefined {
  const scheme = schemeOf(url)
  return scheme === undefined ? undefined : findAdapterForScheme(scheme)
}

/** The adapter definition for a URL, by its scheme. */
export function definitionForUrl(url: string, option: string): AdapterDefinition {
  const def = findAdapterForUrl(url)
  if (def === undefined) {
    const schemes = adapterDefinitions().flatMap((d) => (d.schemes ?? []).map((s) => `${s}:`))
    throw new CacheConfigError(
      `Unknown cache URL ${JSON.stringify(redactUrl(url))} in \`${option}\`: it must start with one of ${schemes.join(', ')}.`,
      { option },
    )
  }
  return def
}

const KIND_NAMES: Partial<Record<OptionKind, string>> = {
  duration: "a duration (ms, or a string such as '5m')",
  size: "a size (bytes, or a string such as '64mb')",
  object: 'an object',
}

function checkKind(name: string, value: unknown, kind: OptionKind): void {
  if (kind === 'any' || value === undefined) return
  const ok =
    kind === 'duration' || kind === 'size'
      ? typeof value === 'number' || typeof value === 'string'
      : kind === 'object'
        ? typeof value === 'object' && value !== null
        : typeof value === kind
  if (!ok) {
    throw new CacheConfigError(
      `Option \`${name}\` must be ${KIND_NAMES[kind] ?? `a ${kind}`}, not ${showValue(value)}.`,
      { option: name },
    )
  }
}

/** A size option in bytes, or a `CacheConfigError` naming the option. */
export function sizeOption(value: Size, option: string): number {
  try {
    return parseSize(value, `\`${option}\``, { option })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
}

function asConfigError(error: unknown, option: string): never {
  if (error instanceof CacheConfigError) throw error
  // Anything else (a URIError from a path's percent-escapes) is named too, and kept only with any URL hidden.
  const message = error instanceof Error ? error.message : String(error)
  throw new CacheConfigError(`Option \`${option}\`: ${redactText(message)}`, { option, cause: error instanceof CacheError ? error : redactError(error) })
}

/**
 * Validate a config once, eagerly. Never mutates the caller's object.
 *
 * @throws {CacheConfigError} naming the unknown type or option (with a suggestion for a likely misspelling),
 *   or the option whose value is invalid.
 */
export function resolveConfig(config: CacheConfig): ResolvedConfig {
  if (typeof config === 'string') config = { url: config }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new CacheConfigError(
      `A cache config must be an options object or a URL string, not ${showValue(config)}.`,
    )
  }
  let input = config as Record<string, unknown>
  // The memory tier's URL parameters (`?l1=true&l1.ttl=30s`) are the cache's, not the backend's.
  let l1Input: unknown = input.l1
  if (typeof input.url === 'string') {
    const taken = takeL1FromUrl(input.url)
    if (taken.l1 !== undefined) {
      if (input.l1 !== undefined) throw new CacheConfigError('Options `l1` and the URL\'s `l1` parameters both set the memory tier: give one of them.', { option: 'l1' })
      input = { ...input, url: taken.url }
      l1Input = taken.l1
    }
  }
  const adapter = input.adapter as ResolvedConfig['adapter']
  let def: AdapterDefinition | undefined
  if (typeof input.type === 'string') def = definitionFor(input.type, 'type')
  else if (input.type !== undefined) checkKind('type', input.type, 'string')
  else if (typeof input.url === 'string') def = definitionForUrl(input.url, 'url')
  else if (adapter === undefined) {
    throw new CacheConfigError(
      `The cache config has no \`type\`: say which backend to use, e.g. { type: 'memory' } or a URL such as 'redis://127.0.0.1:6379'.`,
      { option: 'type' },
    )
  }
  if (adapter !== undefined) {
    if (typeof adapter !== 'function' && (typeof adapter !== 'object' || adapter === null)) {
      throw new CacheConfigError(
        'Option `adapter` must be a function `(context) => CacheAdapter` or an object implementing CacheAdapter (get, set, add, increment, ...).',
        { option: 'adapter' },
      )
    }
    if (typeof adapter === 'object') checkAdapter(adapter, false)
  }

  const adapterKinds: Record<string, OptionKind> = { url: 'string', ...(def?.options ?? {}) }
  const known = [...Object.keys(COMMON_KINDS), ...Object.keys(adapterKinds)]
  const adapterOptions: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(input)) {
    if (name in COMMON_KINDS) {
      checkKind(name, value, COMMON_KINDS[name as keyof CommonOptions])
    } else if (name in adapterKinds) {
      const kind = adapterKinds[name] ?? 'any'
      checkKind(name, value, kind)
      if (value === undefined) continue
      // Durations and sizes are parsed here, at init, so a bad one fails now; the adapter receives ms or bytes.
      adapterOptions[name] = kind === 'duration' ? durationOption(value as Duration, name) : kind === 'size' ? sizeOption(value as Size, name) : value
    } else {
      const elsewhere = adapterDefinitions().find((d) => name in d.options)
      const hint =
        elsewhere !== undefined && def !== undefined
          ? ` It is an option of the \`${elsewhere.type}\` backend, not of \`${def.type}\`.`
          : didYouMean(name, known)
      throw new CacheConfigError(`Unknown cache option \`${name}\`.${hint}`, { option: name })
    }
  }
  if (typeof input.url === 'string' && def !== undefined) {
    // `{ type: 'memory', url: 'redis://...' }` is a mistake one way or the other: never drop the URL silently.
    const urlDef = findAdapterForUrl(input.url)
    if (typeof input.type === 'string' && urlDef !== def) {
      const what = urlDef === undefined ? `a URL of no known backend (${JSON.stringify(schemeOf(input.url) ?? '')}:)` : `a ${urlDef.type} URL`
      throw new CacheConfigError(
        `Options \`type\` (${JSON.stringify(input.type)}) and \`url\` (${what}) say different backends: give one of them` +
          (def.schemes === undefined ? ` (the \`${def.type}\` backend takes no URL).` : `, or a ${def.schemes.map((sc) => `${sc}:`).join(' or ')} URL.`),
        { option: 'url' },
      )
    }
    let fromUrl: Record<string, unknown> = {}
    try {
      fromUrl = def.fromUrl?.(input.url) ?? {}
    } catch (error) {
      asConfigError(error, 'url')
    }
    Object.assign(adapterOptions, fromUrl)
    // A URL that became options (`sqlite:./a.db` is `{ path }`), or that only names the type (`memory:`), is
    // not kept as well: `'memory:'` and `{ type: 'memory' }` are the same config.
    if (Object.keys(fromUrl).length > 0 || def.fromUrl === undefined) delete adapterOptions.url
  }

  let defaultTtl: Milliseconds = DEFAULTS.defaultTtl
  if (input.defaultTtl !== undefined) {
    try {
      defaultTtl = parseDuration(input.defaultTtl as Duration, '`defaultTtl`', { option: 'defaultTtl' })
    } catch (error) {
      asConfigError(error, 'defaultTtl')
    }
  }
  let operationTimeout: Milliseconds | undefined
  if (input.operationTimeout !== undefined) {
    operationTimeout = durationOption(input.operationTimeout as Duration, 'operationTimeout')
    if (operationTimeout === 0) {
      throw new CacheConfigError(
        "Option `operationTimeout` must be more than 0: a call must never wait forever. Leave it out to use the backend's `commandTimeout`.",
        { option: 'operationTimeout' },
      )
    }
  }
  const publishStats = input.publishStats === undefined ? 0 : durationOption(input.publishStats as Duration, 'publishStats')
  if (publishStats > 0 && (publishStats < 100 || publishStats > 3_600_000)) {
    throw new CacheConfigError(`Option \`publishStats\` must be 0 (off) or a period from 100ms to 1h: a process writes its counters once per period. Not ${showValue(input.publishStats)}.`, {
      option: 'publishStats',
    })
  }
  const threshold = (input.threshold as number | undefined) ?? DEFAULTS.threshold
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new CacheConfigError(`Option \`threshold\` must be an integer >= 0 (0 means unbounded), not ${threshold}.`, { option: 'threshold' })
  }
  const serializer = (input.serializer as SerializerOption | undefined) ?? DEFAULTS.serializer
  if (
    serializer !== 'json' &&
    serializer !== 'v8' &&
    (typeof serializer !== 'object' || serializer === null || typeof serializer.encode !== 'function' || typeof serializer.decode !== 'function')
  ) {
    throw new CacheConfigError(`Option \`serializer\` must be 'json', 'v8' or an object with encode and decode, not ${showValue(serializer)}.`, { option: 'serializer' })
  }

  const l1 = resolveL1(l1Input)
  if (l1 !== undefined && def !== undefined) checkL1Backend(def.type)

  return {
    type: def?.type ?? (typeof adapter === 'object' ? adapter.name : undefined) ?? 'custom',
    adapter,
    definition: def,
    adapterOptions,
    defaultTtl,
    keyPrefix: checkKeyPrefix((input.keyPrefix as string | undefined) ?? DEFAULTS.keyPrefix),
    threshold,
    failOpen: (input.failOpen as boolean | undefined) ?? DEFAULTS.failOpen,
    operationTimeout,
    serializer,
    now: (input.now as (() => number) | undefined) ?? DEFAULTS.now,
    l1,
    publishStats,
  }
}

/** A lone surrogate in the prefix would merge keys on Redis and SQLite, as in a key (see `src/well-formed.ts`). */
function checkKeyPrefix(prefix: string): string {
  if (isWellFormed(prefix)) return prefix
  throw new CacheConfigError(
    `Option \`keyPrefix\` (${JSON.stringify(prefix)}) contains a lone surrogate (${describeLoneSurrogate(prefix)}), which Redis and SQLite would store as U+FFFD. ${WELL_FORMED_FIX}`,
    { option: 'keyPrefix' },
  )
}

const COMPARED = ['type', 'adapter', 'defaultTtl', 'keyPrefix', 'threshold', 'failOpen', 'operationTimeout', 'serializer', 'now', 'l1', 'publishStats'] as const

/**
 * The options in which two resolved configs differ; none means they build the same cache.
 *
 * The rule: data (strings, numbers, durations, plain objects and arrays of them) is compared by value, so
 * the config a dev server's module reload re-creates is equal to the one before. Functions (`now`, an
 * `adapter` factory, a serializer's `encode`/`decode`) and other objects (a store, a client) are equal only
 * when they are the same object: two closures of one factory have the same source and different state.
 */
export function configDifferences(a: ResolvedConfig, b: ResolvedConfig): string[] {
  const differ: string[] = []
  for (const name of COMPARED) if (!deepEqual(a[name], b[name], false)) differ.push(name)
  const names = new Set([...Object.keys(a.adapterOptions), ...Object.keys(b.adapterOptions)])
  for (const name of names) if (!deepEqual(a.adapterOptions[name], b.adapterOptions[name], false)) differ.push(name)
  return differ
}

/**
 * Why `init` with `next` cannot keep the cache opened with `open`, or `undefined` when they are equal (then
 * `init` is a no-op). See {@link configDifferences} for what counts as equal.
 */
export function differentConfigError(open: ResolvedConfig, next: ResolvedConfig): CacheConfigError | undefined {
  const differ = configDifferences(open, next)
  if (differ.length === 0) return undefined
  const valueOf = (c: ResolvedConfig, name: string): unknown => ((COMPARED as readonly string[]).includes(name) ? c[name as keyof ResolvedConfig] : c.adapterOptions[name])
  // Equal but for the identity of a function in it: the case that once passed as equal, said plainly.
  const fn = differ.find((name) => deepEqual(valueOf(open, name), valueOf(next, name), true))
  const quoted = differ.map((d) => `\`${d}\``).join(', ')
  const message =
    fn !== undefined
      ? `The cache is already initialized with a different config: \`${fn}\` is another function${differ.length > 1 ? ` (${quoted} differ)` : ''}. ` +
        'Functions count as equal only when they are the same object, even with the same source. Pass the same function ' +
        '(made once, in a module that a reload does not re-evaluate), or call `await cache.close()` first to change it.'
      : `The cache is already initialized with a different config (${quoted} differ). Call \`await cache.close()\` first to change it. ` +
        'Functions, and objects such as a store or a client, must be the same object to count as equal.'
  return new CacheConfigError(message, { option: fn ?? differ[0] })
}

/** Deep equality of config values; functions by identity, or by source when `bySource` (for messages only). */
function deepEqual(a: unknown, b: unknown, bySource: boolean): boolean {
  if (Object.is(a, b)) return true
  if (bySource && typeof a === 'function' && typeof b === 'function') return a.toString() === b.toString()
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  if (Object.getPrototypeOf(a) !== Object.prototype && !Array.isArray(a)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], bySource))
}
