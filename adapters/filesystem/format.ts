/**
 * The on-disk format of one entry. A file holds a fixed header, the full key and the payload:
 *
 * ```
 * offset  size  field
 *      0     4  magic "CKFS"
 *      4     1  format version (1)
 *      5     1  flags: 1 = payload is bytes (else UTF-8 text), 2 = has an expiry, 4 = key is UTF-16LE
 *      6     2  reserved (0)
 *      8     8  expiry, ms since the epoch (float64 LE; 0 without flag 2)
 *     16     8  written at, ms since the epoch (float64 LE): "oldest" for the threshold
 *     24     4  key length in bytes (uint32 LE)
 *     28     4  payload length in bytes (uint32 LE)
 *     32        key, then payload
 * ```
 *
 * The key is stored because the file name is only its hash, and `keys(prefix)` must return full keys. The
 * lengths make truncation visible: a file whose size is not exactly 32 + key + payload is corrupt.
 */
import { createHash } from 'node:crypto'
import type { ExpiresAt, Payload } from '../../src/adapter.js'

export const MAGIC = 0x53464b43 // "CKFS" read as a little-endian uint32
export const VERSION = 1
export const HEADER_SIZE = 32

const FLAG_BYTES = 1
const FLAG_EXPIRES = 2
const FLAG_WIDE_KEY = 4

/** A key as it is named and stored: its bytes, and the hash that names its file. */
export interface KeyRef {
  key: string
  bytes: Buffer
  wide: boolean
  hash: string
}

/** `String.prototype.isWellFormed` (Node 20; ES2024, beyond the ES2023 lib this project compiles with). */
interface WellFormed {
  isWellFormed(): boolean
}

/**
 * The bytes and hash of a key. Well-formed keys are stored as UTF-8; a key with a lone surrogate (which
 * UTF-8 cannot carry exactly) as UTF-16LE, so that two different keys never share bytes. The encoding is
 * part of what is hashed, so a UTF-8 and a UTF-16 key with equal bytes still get different files.
 */
export function keyRef(key: string): KeyRef {
  const wide = !(key as unknown as WellFormed).isWellFormed()
  const bytes = Buffer.from(key, wide ? 'utf16le' : 'utf8')
  const hash = createHash('sha256')
    .update(wide ? 'w' : 'u')
    .update(bytes)
    .digest('hex')
  return { key, bytes, wide, hash }
}

/** The parsed header of a file read into a buffer. */
export interface Header {
  flags: number
  expiresAt: ExpiresAt
  writtenAt: number
  keyLength: number
  payloadLength: number
  /** Header + key + payload: what the file size must be. */
  total: number
}

/** The header at the start of `buf` (of which `n` bytes were read), or a reason it is corrupt. */
export function parseHeader(buf: Buffer, n: number): Header | string {
  if (n === 0) return 'empty file'
  if (n < HEADER_SIZE) return `truncated header (${n} bytes)`
  if (buf.readUInt32LE(0) !== MAGIC) return 'wrong magic'
  const version = buf[4]
  if (version !== VERSION) return `unknown format version ${version}`
  const flags = buf[5] ?? 0
  if (flags > 7 || buf.readUInt16LE(6) !== 0) return 'bad flags'
  const expires = buf.readDoubleLE(8)
  const writtenAt = buf.readDoubleLE(16)
  if (!Number.isFinite(expires) || !Number.isFinite(writtenAt)) return 'bad timestamps'
  const keyLength = buf.readUInt32LE(24)
  const payloadLength = buf.readUInt32LE(28)
  return {
    flags,
    expiresAt: flags & FLAG_EXPIRES ? expires : null,
    writtenAt,
    keyLength,
    payloadLength,
    total: HEADER_SIZE + keyLength + payloadLength,
  }
}

/** True if the key stored in `buf` (after `header`) is `ref`'s. */
export function sameKey(buf: Buffer, header: Header, ref: KeyRef): boolean {
  return (
    header.keyLength === ref.bytes.length &&
    Boolean(header.flags & FLAG_WIDE_KEY) === ref.wide &&
    buf.compare(ref.bytes, 0, ref.bytes.length, HEADER_SIZE, HEADER_SIZE + header.keyLength) === 0
  )
}

/** The key stored in `buf` after `header`. */
export function storedKey(buf: Buffer, header: Header): string {
  return buf.toString(header.flags & FLAG_WIDE_KEY ? 'utf16le' : 'utf8', HEADER_SIZE, HEADER_SIZE + header.keyLength)
}

/**
 * The payload stored in `buf` after `header`, copied out (the buffer is reused): text as a string, bytes as
 * a Uint8Array of their own.
 */
export function storedPayload(buf: Buffer, header: Header): Payload {
  const start = HEADER_SIZE + header.keyLength
  const end = start + header.payloadLength
  if (header.flags & FLAG_BYTES) {
    const out = new Uint8Array(header.payloadLength)
    out.set(buf.subarray(start, end))
    return out
  }
  return buf.toString('utf8', start, end)
}

/** A whole file: header, key and payload, in one buffer so that it is written with one call. */
export function encodeEntry(ref: KeyRef, payload: Payload, expiresAt: ExpiresAt, writtenAt: number): Buffer {
  const text = typeof payload === 'string'
  const payloadLength = text ? Buffer.byteLength(payload, 'utf8') : payload.byteLength
  const buf = Buffer.allocUnsafe(HEADER_SIZE + ref.bytes.length + payloadLength)
  buf.writeUInt32LE(MAGIC, 0)
  buf[4] = VERSION
  buf[5] = (text ? 0 : FLAG_BYTES) | (expiresAt === null ? 0 : FLAG_EXPIRES) | (ref.wide ? FLAG_WIDE_KEY : 0)
  buf.writeUInt16LE(0, 6)
  buf.writeDoubleLE(expiresAt ?? 0, 8)
  buf.writeDoubleLE(writtenAt, 16)
  buf.writeUInt32LE(ref.bytes.length, 24)
  buf.writeUInt32LE(payloadLength, 28)
  ref.bytes.copy(buf, HEADER_SIZE)
  const start = HEADER_SIZE + ref.bytes.length
  if (text) buf.write(payload, start, 'utf8')
  else buf.set(payload, start)
  return buf
}

/** A file name that is an entry: the 64 hex digits of a SHA-256. */
export const ENTRY_NAME = /^[0-9a-f]{64}$/
/** A shard folder name: the first two hex digits of the hashes it holds. */
export const SHARD_NAME = /^[0-9a-f]{2}$/

/** A copy of a whole entry file with a new expiry and write time (for `touch`). */
export function withExpiry(buf: Buffer, header: Header, expiresAt: ExpiresAt, writtenAt: number): Buffer {
  const out = Buffer.from(buf.subarray(0, header.total))
  out[5] = (header.flags & ~FLAG_EXPIRES) | (expiresAt === null ? 0 : FLAG_EXPIRES)
  out.writeDoubleLE(expiresAt ?? 0, 8)
  out.writeDoubleLE(writtenAt, 16)
  return out
}
