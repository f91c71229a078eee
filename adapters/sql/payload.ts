import type { Payload } from '../../src/adapter.js'

/** A payload as a row stores it: its bytes, and whether it was text (so that text comes back as text). */
export interface StoredPayload {
  bytes: Buffer
  text: boolean
}

/** The bytes of a payload (UTF-8 for text) and its kind. */
export function storedPayload(value: Payload): StoredPayload {
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), text: true }
  return { bytes: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength), text: false }
}

/** A stored payload back in its kind: text as a string, bytes byte-exact. */
export function payloadOf(bytes: Buffer, text: boolean | number): Payload {
  return text === true || text === 1 ? bytes.toString('utf8') : bytes
}
