import { createHash } from 'node:crypto'

/**
 * How the SQL backends store a key of any length: its SHA-256 (`key_hash`, the primary key, 32 bytes
 * whatever the key), the full key as UTF-8 bytes (`cache_key`, never indexed, so no index size limit applies),
 * and its first {@link KEY_HEAD_BYTES} bytes (`key_head`, a generated column indexed with `key_hash`) for
 * prefix ranges: `clear(prefix)` and `keys(prefix)`.
 */
export const KEY_HEAD_BYTES = 255

/** A key's stored form: its UTF-8 bytes and their SHA-256. */
export interface StoredKey {
  bytes: Buffer
  hash: Buffer
}

/** The SHA-256 of a key's UTF-8 bytes: the primary key of its row. */
export function keyHash(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest()
}

/** A key as its row stores it. */
export function storedKey(key: string): StoredKey {
  const bytes = Buffer.from(key, 'utf8')
  return { bytes, hash: createHash('sha256').update(bytes).digest() }
}

/**
 * The smallest byte string greater than every byte string that starts with `bytes`, or `undefined` when
 * there is none (`bytes` is empty or all 0xff).
 */
export function successor(bytes: Buffer): Buffer | undefined {
  let end = bytes.length
  while (end > 0 && bytes[end - 1] === 0xff) end--
  if (end === 0) return undefined
  const next = Buffer.from(bytes.subarray(0, end))
  next[end - 1] = (next[end - 1] as number) + 1
  return next
}

/**
 * The keys that start with a prefix, as a range of `key_head` values: `from <= key_head < to` (no upper
 * bound when `to` is undefined), and, for a prefix longer than `key_head`, an exact check of the key's first
 * `exact.length` bytes. A range compares bytes, so no character of the prefix is a wildcard: `a_b` and `a%`
 * match only keys that start with those very characters (the LIKE trap of other SQL stores).
 */
export interface PrefixRange {
  from: Buffer
  to: Buffer | undefined
  exact: Buffer | undefined
}

/** The range of `prefix`; `undefined` for the empty prefix (every key). */
export function prefixRange(prefix: string): PrefixRange | undefined {
  if (prefix === '') return undefined
  const bytes = Buffer.from(prefix, 'utf8')
  const from = bytes.length > KEY_HEAD_BYTES ? bytes.subarray(0, KEY_HEAD_BYTES) : bytes
  return { from, to: successor(from), exact: bytes.length > KEY_HEAD_BYTES ? bytes : undefined }
}
