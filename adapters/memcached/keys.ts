/**
 * Item names. memcached refuses keys over 250 bytes and, in its text protocol and tools, keys with spaces or
 * control characters. A full key made only of printable ASCII (`!` to `~`) that fits is stored under its own
 * name; any other is stored under its SHA-256, with the full key kept in the item (see `entry.ts`).
 *
 *   k<token>:<full key>     stored as is
 *   h<token>:<sha-256>      stored under a hash
 *
 * The first letter tells the two forms apart, so a key stored as is can never take the name of a hashed
 * one. `<token>` names the clear generation the key is in (see `clears.ts`); it never holds a `:`, so the
 * name's first `:` ends it.
 */
import { createHash } from 'node:crypto'

/** memcached's longest key, in bytes. */
export const MAX_KEY_BYTES = 250

const PRINTABLE = /^[\x21-\x7e]*$/

/** An item name, and whether it is a hash (the full key must then be kept in the item). */
export interface ItemName {
  name: string
  hashed: boolean
}

/** The item name of `fullKey` in the clear generation `token`. */
export function itemName(token: string, fullKey: string): ItemName {
  const plain = `k${token}:${fullKey}`
  if (plain.length <= MAX_KEY_BYTES && PRINTABLE.test(fullKey)) return { name: plain, hashed: false }
  return { name: `h${token}:${createHash('sha256').update(fullKey, 'utf8').digest('base64url')}`, hashed: true }
}
