import { CacheArgumentError, CacheConfigError, type CacheErrorContext } from './errors.js'

/**
 * A duration as users write it: a number of milliseconds, or a number and a unit
 * (`'250ms'`, `'30s'`, `'5m'`, `'1.5h'`, `'7d'`, `'2w'`). `0` means never expire.
 */
export type Duration = number | string

/** A duration in milliseconds, as used everywhere inside cachekit. */
export type Milliseconds = number

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

const DURATION_RE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$/

/** The longest duration accepted: about 285,000 years, far below where `Date` arithmetic breaks. */
const MAX_MS = 2 ** 53 / 1000

/**
 * Parse a {@link Duration} into milliseconds.
 *
 * @example parseDuration('1.5h') // 5_400_000
 * @example parseDuration(250)    // 250
 * @throws {CacheArgumentError} for a negative, NaN, infinite or unparsable duration, naming the value.
 */
export function parseDuration(input: Duration, what = 'duration', context: CacheErrorContext = {}): Milliseconds {
  let ms: number
  if (typeof input === 'number') {
    ms = input
  } else if (typeof input === 'string') {
    const m = DURATION_RE.exec(input)
    if (!m) {
      throw new CacheArgumentError(
        `Invalid ${what} ${JSON.stringify(input)}: write a number of milliseconds or a number and a unit ` +
          `(ms, s, m, h, d, w), e.g. '30s' or '5m'.`,
        context,
      )
    }
    ms = Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? 1)
  } else {
    throw new CacheArgumentError(
      `Invalid ${what} ${String(input)} (${typeof input}): write a number of milliseconds or a string such as '5m'.`,
      context,
    )
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new CacheArgumentError(
      `Invalid ${what} ${String(input)}: it must be a finite number of milliseconds >= 0${/ttl/i.test(what) ? ' (0 means never expire)' : ''}.`,
      context,
    )
  }
  if (ms > MAX_MS) {
    throw new CacheArgumentError(`Invalid ${what} ${String(input)}: longer than the maximum of ${MAX_MS} ms.`, context)
  }
  // Sub-millisecond fractions would make "expired" depend on rounding; round up so a TTL is never shortened.
  return Math.ceil(ms)
}

/** How {@link durationOption} reads one option. */
export interface DurationRules {
  /** What an absent option (`undefined`) is, in ms. Without it, the value must be given. */
  fallback?: Milliseconds
  /** Where the option was given, for the message (e.g. `cached()`). */
  where?: string
  /** Why `0` is refused, e.g. `a Redis call must never wait forever`. Without it, `0` is accepted. */
  notZero?: string
}

/**
 * A duration option, checked once at config time: milliseconds, or a `CacheConfigError` naming the option
 * (and `where` it was given), with {@link parseDuration}'s message. The one reader of duration options:
 * the common options, every backend's, and those of getOrSet, memoize, the HTTP middleware and sessions.
 *
 * @throws {CacheConfigError} for a value {@link parseDuration} refuses, or a refused `0`.
 */
export function durationOption(value: unknown, option: string, rules: DurationRules = {}): Milliseconds {
  if (value === undefined && rules.fallback !== undefined) return rules.fallback
  const { where, notZero } = rules
  let ms: Milliseconds
  try {
    ms = parseDuration(value as Duration, where === undefined ? `\`${option}\`` : `\`${option}\` of ${where}`, { option })
  } catch (error) {
    // parseDuration's message already names the option and the value.
    throw new CacheConfigError((error as Error).message, { option, cause: error })
  }
  if (ms === 0 && notZero !== undefined) {
    throw new CacheConfigError(`${where === undefined ? 'Option ' : `${where}: `}\`${option}\` must be more than 0: ${notZero}.`, { option })
  }
  return ms
}
