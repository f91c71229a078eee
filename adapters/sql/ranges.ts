import type { PrefixRange } from './keys.js'

/**
 * The SQL condition selecting the keys of a prefix range, and its parameters, for a dialect whose
 * placeholders are made by `param(n)` (`$n` on PostgreSQL, `?` on MySQL) and whose `head(n)` is the first n
 * bytes of `cache_key`. `TRUE` for every key.
 */
export function rangeCondition(
  range: PrefixRange | undefined,
  param: (n: number) => string,
  head: (lengthParam: string) => string,
  first = 1,
): { sql: string; values: (Buffer | number)[]; next: number } {
  if (range === undefined) return { sql: 'TRUE', values: [], next: first }
  const parts = [`key_head >= ${param(first)}`]
  const values: (Buffer | number)[] = [range.from]
  let n = first + 1
  if (range.to !== undefined) {
    parts.push(`key_head < ${param(n++)}`)
    values.push(range.to)
  }
  if (range.exact !== undefined) {
    parts.push(`${head(param(n++))} = ${param(n++)}`)
    values.push(range.exact.length, range.exact)
  }
  return { sql: parts.join(' AND '), values, next: n }
}
