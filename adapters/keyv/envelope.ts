/** How the bridge writes keys and entries into a Keyv store, so that Keyv itself reads them the same way. */
import type { ExpiresAt, Payload } from '../../src/adapter.js'

/**
 * Keys are stored as the cache gives them, except U+0000 and U+0001, which are escaped (PostgreSQL text
 * cannot hold U+0000). The code is prefix-free, so `escape(p)` is a prefix of `escape(k)` exactly when `p`
 * is a prefix of `k`, and prefix scans stay correct.
 */
// eslint-disable-next-line no-control-regex -- escaping these two control characters is the point
const ESCAPED = /[\u0000\u0001]/g
// eslint-disable-next-line no-control-regex -- see ESCAPED
const ESCAPE_SEQUENCE = /\u0001([01])/g
export function escapeKey(key: string): string {
  return key.includes('\u0000') || key.includes('\u0001') ? key.replace(ESCAPED, (c) => (c === '\u0000' ? '\u00010' : '\u00011')) : key
}
export function unescapeKey(key: string): string {
  return key.includes('\u0001') ? key.replace(ESCAPE_SEQUENCE, (_, d: string) => (d === '0' ? '\u0000' : '\u0001')) : key
}

/** An entry as read back from the store. */
export interface Entry {
  value: Payload
  expiresAt: ExpiresAt
}

/**
 * Entries are stored in Keyv's own envelope, `{"value": ..., "expires": ms}`, with Keyv's conventions for
 * strings (a leading `:` is doubled) and bytes (`:base64:`), so a Keyv over the same store reads the same
 * expiry. The expiry is checked on every read: `@keyv/sqlite` and `@keyv/postgres` ignore the TTL argument.
 */
export function encodeEntry(value: Payload, expiresAt: ExpiresAt): string {
  const text = typeof value === 'string' ? (value.startsWith(':') ? `:${value}` : value) : `:base64:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}`
  return expiresAt === null ? JSON.stringify({ value: text }) : JSON.stringify({ value: text, expires: expiresAt })
}

/** The entry in a stored value, or undefined if it is not one (another program's value, a truncated write). */
export function decodeEntry(raw: unknown): Entry | undefined {
  if (typeof raw !== 'string') return undefined
  let data: unknown
  try {
    data = JSON.parse(raw)
  } catch {
    return undefined
  }
  const { value, expires } = (data ?? {}) as { value?: unknown; expires?: unknown }
  if (typeof value !== 'string' || (expires !== undefined && expires !== null && typeof expires !== 'number')) return undefined
  const payload = value.startsWith(':base64:') ? Buffer.from(value.slice(8), 'base64') : value.startsWith(':') ? value.slice(1) : value
  return { value: payload, expiresAt: typeof expires === 'number' ? expires : null }
}
