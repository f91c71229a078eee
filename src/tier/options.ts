/** The memory tier's options: what users write (`l1: true` or an object), checked and resolved once, at init. */
import { durationOption, type Duration, type Milliseconds } from '../duration.js'
import { CacheConfigError } from '../errors.js'
import { parseSize, type Bytes, type Size } from '../size.js'
import { didYouMean } from '../config/suggest.js'

/** `l1: { ... }`: a bounded per-process memory tier in front of a shared backend (see docs/tiered.md). */
export interface L1Options {
  /**
   * The most entries the tier keeps in this process; the least recently used go first.
   * @default 10000
   */
  threshold?: number
  /**
   * The most bytes the tier keeps, counted as the size of the stored payloads (the encoded values).
   * @default '64mb'
   */
  maxBytes?: Size
  /**
   * The longest an entry stays in the tier, whatever its TTL in the backend (an entry never outlives that
   * either). On a backend without an invalidation channel (the keyv bridge) this is also how late another
   * process's write may be seen.
   * @default '1m'
   */
  ttl?: Duration
  /**
   * How often this process looks for other processes' writes on a backend whose channel is read on a timer
   * (SQLite): the bound on how late they are seen. Redis pushes invalidations and ignores it.
   * @default '25ms'
   */
  staleness?: Duration
  /**
   * What a read that hits the tier returns: `'frozen'`, the one decoded value, deeply frozen (no decode,
   * no copy: a caller that tries to change it gets a TypeError in strict code), or `'copies'`, a new copy
   * decoded from the held payload on each hit (no round trip, but a decode). A value holding a Map, Set,
   * Date or bytes, which freezing cannot protect, is always returned as a copy.
   * @default 'frozen'
   */
  values?: 'frozen' | 'copies'
}

/** The option as users give it. */
export type L1Option = boolean | L1Options

/** The resolved options of the tier. */
export interface L1Settings {
  threshold: number
  maxBytes: Bytes
  ttl: Milliseconds
  staleness: Milliseconds
  values: 'frozen' | 'copies'
}

export const L1_DEFAULTS: Readonly<L1Settings> = Object.freeze({
  threshold: 10_000,
  maxBytes: 64 * 2 ** 20,
  ttl: 60_000,
  staleness: 25,
  values: 'frozen',
})

const NAMES = ['threshold', 'maxBytes', 'ttl', 'staleness', 'values'] as const

/**
 * Resolve `l1` (true, false or options) into settings, or `undefined` for no tier.
 * @throws {CacheConfigError} naming the option (`l1.ttl`, ...) and what to write instead.
 */
export function resolveL1(value: unknown): L1Settings | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return { ...L1_DEFAULTS }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CacheConfigError(`Option \`l1\` must be true, false or an options object such as { ttl: '1m', maxBytes: '64mb' }, not ${JSON.stringify(value) ?? String(value)}.`, { option: 'l1' })
  }
  const given = value as Record<string, unknown>
  for (const name of Object.keys(given)) {
    if (!(NAMES as readonly string[]).includes(name)) {
      throw new CacheConfigError(`Unknown option \`l1.${name}\`.${didYouMean(name, [...NAMES])} The memory tier's options are ${NAMES.join(', ')}.`, { option: `l1.${name}` })
    }
  }
  const settings: L1Settings = { ...L1_DEFAULTS }
  if (given.threshold !== undefined) {
    const n = given.threshold
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
      throw new CacheConfigError(`Option \`l1.threshold\` must be an integer >= 1 (the most entries the memory tier keeps), not ${JSON.stringify(n) ?? String(n)}.`, { option: 'l1.threshold' })
    }
    settings.threshold = n
  }
  if (given.maxBytes !== undefined) {
    let bytes: number
    try {
      bytes = parseSize(given.maxBytes as Size, '`l1.maxBytes`')
    } catch (error) {
      throw new CacheConfigError(`Option \`l1.maxBytes\`: ${(error as Error).message}`, { option: 'l1.maxBytes' })
    }
    if (bytes < 1) throw new CacheConfigError('Option `l1.maxBytes` must be at least 1 byte, e.g. \'64mb\'.', { option: 'l1.maxBytes' })
    settings.maxBytes = bytes
  }
  if (given.ttl !== undefined) {
    settings.ttl = durationOption(given.ttl as Duration, 'l1.ttl')
    if (settings.ttl === 0) throw new CacheConfigError("Option `l1.ttl` must be more than 0 (the longest an entry stays in the memory tier), e.g. '1m'.", { option: 'l1.ttl' })
  }
  if (given.staleness !== undefined) {
    settings.staleness = durationOption(given.staleness as Duration, 'l1.staleness')
    if (settings.staleness === 0) throw new CacheConfigError("Option `l1.staleness` must be more than 0, e.g. '25ms'.", { option: 'l1.staleness' })
  }
  if (given.values !== undefined) {
    if (given.values !== 'frozen' && given.values !== 'copies') {
      throw new CacheConfigError(`Option \`l1.values\` must be 'frozen' or 'copies', not ${JSON.stringify(given.values) ?? String(given.values)}.`, { option: 'l1.values' })
    }
    settings.values = given.values
  }
  return settings
}

/** The memory tier's URL parameters (`?l1=true&l1.ttl=30s`), by option. */
const URL_PARAMS: Record<string, (typeof NAMES)[number]> = {
  'l1.threshold': 'threshold',
  'l1.maxbytes': 'maxBytes',
  'l1.max_bytes': 'maxBytes',
  'l1.ttl': 'ttl',
  'l1.staleness': 'staleness',
  'l1.values': 'values',
}

/**
 * Take the memory tier's parameters out of a URL: `l1=true|false` and `l1.<option>=...`. Returns the URL
 * without them (for the backend's own parsing) and the `l1` option they make, if any.
 * @throws {CacheConfigError} for an unknown `l1.` parameter or a bad `l1` value.
 */
export function takeL1FromUrl(url: string): { url: string; l1: L1Option | undefined } {
  const q = url.indexOf('?')
  if (q === -1) return { url, l1: undefined }
  const hash = url.indexOf('#', q)
  const query = url.slice(q + 1, hash === -1 ? undefined : hash)
  const kept: string[] = []
  let on: boolean | undefined
  const options: Record<string, unknown> = {}
  const decode = (text: string): string => {
    try {
      return decodeURIComponent(text)
    } catch {
      return text // a stray `%` is the backend's to judge (this parameter is not the tier's)
    }
  }
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const name = decode(eq === -1 ? part : part.slice(0, eq)).toLowerCase()
    const raw = eq === -1 ? '' : decode(part.slice(eq + 1))
    if (name === 'l1') {
      if (raw !== 'true' && raw !== 'false' && raw !== '1' && raw !== '0') {
        throw new CacheConfigError(`URL parameter \`l1\` must be true or false, not ${JSON.stringify(raw)}.`, { option: 'l1' })
      }
      on = raw === 'true' || raw === '1'
    } else if (name.startsWith('l1.') || name.startsWith('l1_')) {
      const option = URL_PARAMS[name.replace(/^l1_/, 'l1.')]
      if (option === undefined) {
        throw new CacheConfigError(`Unknown URL parameter \`${name}\`. The memory tier's are ${Object.keys(URL_PARAMS).filter((p) => p !== 'l1.max_bytes').join(', ')}.`, { option: name })
      }
      options[option] = option === 'threshold' && /^\d+$/.test(raw) ? Number(raw) : raw
    } else kept.push(part)
  }
  const rest = url.slice(0, q) + (kept.length > 0 ? `?${kept.join('&')}` : '') + (hash === -1 ? '' : url.slice(hash))
  if (on === undefined && Object.keys(options).length === 0) return { url, l1: undefined }
  if (on === false) return { url: rest, l1: false }
  return { url: rest, l1: Object.keys(options).length === 0 ? true : options }
}

/**
 * Refuse `l1` on a backend where it cannot be right: memory (it is memory already), null (it stores
 * nothing), and the shared backends whose invalidation channel does not exist yet (a tier there would serve
 * other processes' old values for up to `l1.ttl` without saying so).
 * @throws {CacheConfigError} naming the backend and what to do.
 */
export function checkL1Backend(type: string): void {
  const why: Record<string, string> = {
    memory: 'the memory backend is a memory tier already: leave `l1` out',
    null: 'the null backend stores nothing: leave `l1` out',
    filesystem: 'the filesystem backend has no invalidation channel yet, so other processes\' writes would not reach the tier: use `type: \'sqlite\'` with `l1`, or leave `l1` out',
    postgres: 'the postgres backend has no invalidation channel yet, so other processes\' writes would not reach the tier: leave `l1` out, or use Redis with `l1`',
    mysql: 'the mysql backend has no invalidation channel yet, so other processes\' writes would not reach the tier: leave `l1` out, or use Redis with `l1`',
  }
  const reason = why[type]
  if (reason !== undefined) throw new CacheConfigError(`Option \`l1\`: ${reason}.`, { option: 'l1' })
}
