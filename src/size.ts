import { CacheArgumentError, type CacheErrorContext } from './errors.js'

/**
 * A size as users write it: a number of bytes, or a number and a unit (`'512b'`, `'64kb'`, `'64mb'`,
 * `'1.5gb'`, `'1tb'`). Units are binary and case-insensitive: `kb`, `k` and `kib` are 1024 bytes, `mb`
 * 1024², and so on.
 */
export type Size = number | string

/** A size in bytes, as used everywhere inside cachekit. */
export type Bytes = number

const UNIT_BYTES: Record<string, number> = {
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
}

const SIZE_RE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i

const HOW = "write a number of bytes or a number and a unit (b, kb, mb, gb, tb; 1kb = 1024 bytes), e.g. '64mb'"

/**
 * Parse a {@link Size} into bytes. A fraction of a byte is rounded down, so a bound is never raised by
 * rounding.
 *
 * @example parseSize('64mb') // 67_108_864
 * @example parseSize(1500)   // 1500
 * @throws {CacheArgumentError} for a negative, fractional (as a number), unsafe or unparsable size, naming
 *   the value.
 */
export function parseSize(input: Size, what = 'size', context: CacheErrorContext = {}): Bytes {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      throw new CacheArgumentError(`Invalid ${what} ${String(input)}: it must be a whole number of bytes >= 0, or ${HOW.replace(/^write /, 'a string: ')}.`, context)
    }
    return input
  }
  if (typeof input !== 'string') {
    throw new CacheArgumentError(`Invalid ${what} ${String(input)} (${input === null ? 'null' : typeof input}): ${HOW}.`, context)
  }
  const m = SIZE_RE.exec(input)
  const unit = UNIT_BYTES[(m?.[2] ?? '').toLowerCase() || 'b']
  if (m === null || unit === undefined) throw new CacheArgumentError(`Invalid ${what} ${JSON.stringify(input)}: ${HOW}.`, context)
  const bytes = Math.floor(Number(m[1]) * unit)
  if (!Number.isSafeInteger(bytes)) throw new CacheArgumentError(`Invalid ${what} ${JSON.stringify(input)}: larger than ${Number.MAX_SAFE_INTEGER} bytes.`, context)
  return bytes
}

/** Bytes for a human: `1000 B`, `2.0 KiB`, `64.0 MiB`, `1.5 GiB`. */
export function showBytes(bytes: Bytes): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return `${value.toFixed(1)} ${units[i]}`
}
