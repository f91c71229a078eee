/** The memcached binary protocol, as far as the adapter speaks it: requests, opcodes, reply statuses. */

export const OP = {
  get: 0x00,
  set: 0x01,
  add: 0x02,
  delete: 0x04,
  noop: 0x0a,
} as const

export const STATUS = {
  ok: 0x0000,
  notFound: 0x0001,
  exists: 0x0002,
  tooLarge: 0x0003,
  notStored: 0x0005,
  authError: 0x0020,
} as const

/** No CAS: the command applies whatever the item's version. */
export const ANY_CAS = Buffer.alloc(8)

/** Marks an item as written by cachekit (the `flags` of every item: "ck" and format 1). */
export const ITEM_FLAGS = 0x636b0001

/**
 * One request: the 24-byte header, then extras, key and value. `cas` (8 bytes, as a reply gave it) makes a
 * set or delete conditional on the item not having changed since.
 */
export function request(opcode: number, opaque: number, key: string, extras?: Buffer, value?: Buffer, cas: Buffer = ANY_CAS): Buffer {
  const keyLength = Buffer.byteLength(key, 'latin1')
  const extrasLength = extras?.length ?? 0
  const valueLength = value?.length ?? 0
  const buf = Buffer.allocUnsafe(24 + extrasLength + keyLength + valueLength)
  buf[0] = 0x80
  buf[1] = opcode
  buf.writeUInt16BE(keyLength, 2)
  buf[4] = extrasLength
  buf[5] = 0
  buf.writeUInt16BE(0, 6)
  buf.writeUInt32BE(extrasLength + keyLength + valueLength, 8)
  buf.writeUInt32BE(opaque, 12)
  cas.copy(buf, 16)
  if (extras !== undefined) extras.copy(buf, 24)
  buf.write(key, 24 + extrasLength, 'latin1')
  if (value !== undefined) value.copy(buf, 24 + extrasLength + keyLength)
  return buf
}

/** The extras of a set or add: the item's flags and its expiration. */
export function storeExtras(exptime: number): Buffer {
  const extras = Buffer.allocUnsafe(8)
  extras.writeUInt32BE(ITEM_FLAGS, 0)
  extras.writeUInt32BE(exptime, 4)
  return extras
}

/** memcached's boundary: an expiration above 30 days is read as an absolute unix time. */
export const RELATIVE_LIMIT_S = 30 * 24 * 3600

/**
 * The expiration to send for an entry expiring `ms` from now: whole seconds rounded up, plus one, because
 * memcached's clock ticks once a second and may drop an item up to a second early. Beyond 30 days it is an
 * absolute unix time (by the real clock: that is the one the server has), as the protocol requires. `null`
 * (never) is 0. memcached's expiry only frees memory: reads check the exact expiry kept in the entry.
 */
export function exptimeFor(ms: number | null, realNow: number = Date.now()): number {
  if (ms === null) return 0
  const seconds = Math.max(1, Math.ceil(ms / 1000)) + 1
  if (seconds <= RELATIVE_LIMIT_S) return seconds
  const absolute = Math.ceil(realNow / 1000) + seconds
  // Past 2106 the field overflows: never expire on the server (the entry's own expiry still holds).
  return absolute > 0xffffffff ? 0 : absolute
}
