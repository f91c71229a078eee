/**
 * What an item holds: a small header, then the payload byte-exact.
 *
 *   byte 0      format (1)
 *   byte 1      bit 0: an expiry follows; bit 1: the full key follows (the item is stored under its hash)
 *   [8 bytes]   expiresAt, ms since the epoch, as a float64
 *   [4 + n]     the key's UTF-8 length and bytes
 *   ...         the payload
 *
 * The expiry is kept here, exact to the millisecond, because memcached counts whole seconds: an entry is
 * never returned after its `expiresAt`, whenever the server drops it. The full key makes a hashed name
 * lossless: two keys with the same hash would still be told apart on read.
 */
import type { ExpiresAt, Payload } from '../../src/adapter.js'

const FORMAT = 1
const HAS_EXPIRY = 1
const HAS_KEY = 2

/** A decoded item. */
export interface Entry {
  expiresAt: ExpiresAt
  /** The full key, for an item stored under a hash. */
  key: string | undefined
  payload: Buffer
}

function bytesOf(value: Payload): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/** The item for a payload; `key` only when the item is stored under a hash of it. */
export function encodeEntry(value: Payload, expiresAt: ExpiresAt, key: string | undefined): Buffer {
  const payload = bytesOf(value)
  const keyBytes = key === undefined ? undefined : Buffer.from(key, 'utf8')
  const size = 2 + (expiresAt === null ? 0 : 8) + (keyBytes === undefined ? 0 : 4 + keyBytes.length) + payload.length
  const buf = Buffer.allocUnsafe(size)
  buf[0] = FORMAT
  buf[1] = (expiresAt === null ? 0 : HAS_EXPIRY) | (keyBytes === undefined ? 0 : HAS_KEY)
  let at = 2
  if (expiresAt !== null) at = buf.writeDoubleBE(expiresAt, at)
  if (keyBytes !== undefined) {
    at = buf.writeUInt32BE(keyBytes.length, at)
    at += keyBytes.copy(buf, at)
  }
  payload.copy(buf, at)
  return buf
}

/** The same item with another expiry (for `touch`). */
export function withExpiry(entry: Entry, expiresAt: ExpiresAt): Buffer {
  return encodeEntry(entry.payload, expiresAt, entry.key)
}

/** The entry in an item, or `undefined` if the item is not one of cachekit's. */
export function decodeEntry(item: Buffer): Entry | undefined {
  if (item.length < 2 || item[0] !== FORMAT) return undefined
  const flags = item[1]!
  let at = 2
  let expiresAt: ExpiresAt = null
  if ((flags & HAS_EXPIRY) !== 0) {
    if (item.length < at + 8) return undefined
    expiresAt = item.readDoubleBE(at)
    at += 8
  }
  let key: string | undefined
  if ((flags & HAS_KEY) !== 0) {
    if (item.length < at + 4) return undefined
    const n = item.readUInt32BE(at)
    at += 4
    if (item.length < at + n) return undefined
    key = item.toString('utf8', at, at + n)
    at += n
  }
  return { expiresAt, key, payload: item.subarray(at) }
}
