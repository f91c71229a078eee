/**
 * Tags: invalidate every entry that carries a tag at once, in constant time, from any process.
 *
 * Each tag has a version, a random token stored at the bookkeeping key `|ck:tag:<tag>` under the cache's
 * `keyPrefix` (one tag space for a cache and all its namespaces). A tagged entry's payload starts with the
 * versions its tags had when it was written; a read fetches the current versions (one `getMany` for all the
 * entry's tags) and any difference makes the entry a miss. `invalidateTags` writes new random versions:
 * nothing scans or lists the entries of a tag, so a tag of 100,000 entries costs what a tag of one does.
 *
 * Random versions rather than a counter (`inc`) or a wall-clock time: a version key that vanishes (evicted
 * by memcached or a bounded memory cache, removed by `clear()`) must never bring back entries an earlier
 * invalidation made stale, which a counter starting again at 1 would; no clock is compared between machines;
 * and a blind write of a new token is correct on every backend, also where `inc` is not atomic (the Keyv
 * bridge). See docs/tags.md.
 */
import { randomBytes } from 'node:crypto'
import type { Payload } from './adapter.js'
import { checkOptionNames } from './config/suggest.js'
import type { Duration } from './duration.js'
import { BOOKKEEPING } from './engine.js'
import { CacheArgumentError, showKey } from './errors.js'
import { describeLoneSurrogate, isWellFormed } from './well-formed.js'

/** The most tags one entry may carry (and one `invalidateTags` call may name). */
export const MAX_TAGS = 64
/** The longest tag, in UTF-16 code units. */
export const MAX_TAG_LENGTH = 1024

/** The key of a tag's version, after the cache's `keyPrefix` (never after a namespace's). */
export const TAG_KEY_PREFIX = `${BOOKKEEPING}tag:`

/** What `set`, `add` and `setMany` take instead of a TTL. */
export interface SetOptions {
  /** How long the entry lives. @default the cache's `defaultTtl` */
  ttl?: Duration
  /**
   * Tags to invalidate the entry by, with `cache.invalidateTags(tags)`: non-empty strings, at most 64 per
   * entry, 1,024 characters each. See docs/tags.md.
   * @default no tags
   */
  tags?: readonly string[]
}

/** The names of {@link SetOptions}. */
const SET_OPTIONS = ['ttl', 'tags']

/**
 * The TTL and tags of a write: its last argument is a TTL (as before) or {@link SetOptions}.
 * @throws {CacheArgumentError} for an unknown option or bad tags (the TTL itself is checked where it is used).
 */
export function resolveSetOptions(where: () => string, key: string, input: Duration | SetOptions | undefined): { ttl: Duration | undefined; tags: string[] } {
  if (input === undefined || typeof input === 'number' || typeof input === 'string') return { ttl: input, tags: [] }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new CacheArgumentError(`${where()}: the TTL must be a duration or an options object { ttl, tags }, not ${String(input)}.`, { key })
  }
  // `where` quotes the key: built only for a message or for tags to check, not for every `{ ttl }`.
  checkOptionNames(input, SET_OPTIONS, where, (message) => new CacheArgumentError(message, { key }))
  return { ttl: input.ttl, tags: input.tags === undefined ? [] : checkTags(input.tags, where(), key) }
}

/**
 * Refuse tags on a call that cannot take them (`touch`, `inc`, `dec`): they change an entry's expiry or
 * number, and tags are given when an entry is written.
 * @throws {CacheArgumentError} naming the tags and the key.
 */
export function refuseTags(where: string, key: string, ttl: unknown): void {
  if (typeof ttl !== 'object' || ttl === null || !('tags' in ttl)) return
  const tags = (ttl as { tags: unknown }).tags
  const shown = Array.isArray(tags) ? tags.map((t) => describe(t)).join(', ') : describe(tags)
  throw new CacheArgumentError(
    `${where} takes no tags (given ${shown}): tags are given when an entry is written, with set, add, setMany, getOrSet or memoize. Nothing was written.`,
    { key },
  )
}

/** A tagged entry's tags and the versions they had when it was written, in the same order. @internal */
export interface TagStamp {
  tags: readonly string[]
  versions: readonly string[]
}

/**
 * The versions of a write's tags as read before its value was computed (getOrSet, memoize, `cached()`):
 * `undefined` for a tag that had no mark yet. Its mark is created when the value is stored, and only if
 * none appeared meanwhile (which may be an invalidation): so a read that stores nothing leaves no mark. @internal
 */
export interface TagRead {
  tags: readonly string[]
  versions: readonly (string | undefined)[]
}

/**
 * The buckets a process counts its invalidations in: a tagged computation compares the counts of its own
 * tags' buckets, so that invalidating other tags neither stops its store nor splits its flight (two tags
 * sharing a bucket only cost a store skipped now and then: with 4,096 buckets, a computation spanning 20
 * invalidations of other tags shares a bucket with one of them about 0.5% of the time). Fixed, so per-user tags
 * grow nothing.
 */
export const TAG_EPOCH_BUCKETS = 4096

/** The bucket of `tag` in {@link TAG_EPOCH_BUCKETS} (FNV-1a of its UTF-16 units). */
export function tagBucket(tag: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < tag.length; i++) h = Math.imul(h ^ tag.charCodeAt(i), 0x01000193)
  return (h >>> 0) % TAG_EPOCH_BUCKETS
}

/** A new version for a tag: 72 random bits, so that no two invalidations anywhere ever write the same one. */
export function newVersion(): string {
  return randomBytes(9).toString('base64url')
}

/**
 * Check the `tags` of a call and return them without duplicates (in their first order). `undefined` is no
 * tags. `where` names the call and its key in the message, e.g. `set("user:1")`.
 * @throws {CacheArgumentError} for a tag that is not a non-empty string, too long, not well-formed Unicode or
 *   holding `|ck:`, and for more than {@link MAX_TAGS} tags, naming the tag and the key.
 */
export function checkTags(tags: unknown, where: string, key: string | undefined): string[] {
  if (tags === undefined) return []
  const context = key === undefined ? {} : { key }
  if (!Array.isArray(tags)) throw new CacheArgumentError(`${where}: \`tags\` must be an array of strings, not ${describe(tags)}.`, context)
  const seen = new Set<string>()
  for (const tag of tags as unknown[]) {
    if (typeof tag !== 'string') throw new CacheArgumentError(`${where}: the tag ${describe(tag)} is not a string; a tag is a non-empty string.`, context)
    if (tag.length === 0) throw new CacheArgumentError(`${where}: the tag "" is empty; a tag is a non-empty string.`, context)
    if (tag.length > MAX_TAG_LENGTH) {
      throw new CacheArgumentError(`${where}: the tag ${showKey(tag)} is ${tag.length} characters long; tags are limited to ${MAX_TAG_LENGTH}.`, context)
    }
    if (!isWellFormed(tag)) throw new CacheArgumentError(`${where}: the tag ${showKey(tag)} contains a lone surrogate (${describeLoneSurrogate(tag)}); tags must be well-formed Unicode.`, context)
    if (tag.includes(BOOKKEEPING)) {
      throw new CacheArgumentError(`${where}: the tag ${showKey(tag)} contains "${BOOKKEEPING}", which marks cachekit's own bookkeeping keys. Use another separator, e.g. ":".`, context)
    }
    seen.add(tag)
  }
  if (seen.size > MAX_TAGS) {
    throw new CacheArgumentError(`${where}: ${seen.size} tags (${showKey([...seen].slice(0, 3).join(', '))}, ...); an entry carries at most ${MAX_TAGS}.`, context)
  }
  return [...seen]
}

function describe(value: unknown): string {
  if (typeof value === 'string') return showKey(value)
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}

/**
 * The start of a tagged payload: no payload of the JSON codec starts with `^` (JSON text never does, rich
 * payloads start with `~`), none of the v8 codec (0xFF, or an integer's digits). A custom serializer must not
 * produce payloads that start with it (docs/tags.md).
 */
const MARK = '^ck1'
const MARK_BYTES = [0x5e, 0x63, 0x6b, 0x31]
const NEWLINE = 0x0a

/** True if `payload` is a tagged entry's: {@link wrapTagged}'s header comes first. */
export function isTagged(payload: Payload): boolean {
  if (typeof payload === 'string') return payload.charCodeAt(0) === 94 /* ^ */ && payload.startsWith(MARK)
  return payload.length > MARK_BYTES.length && payload[0] === 0x5e && payload[1] === 0x63 && payload[2] === 0x6b && payload[3] === 0x31
}

/**
 * The payload stored for a tagged entry: one header line, `^ck1` and the JSON array `[tag, version, ...]`,
 * then the codec's payload as it is (text stays text, bytes stay bytes). JSON escapes every newline, and
 * no byte of a multi-byte UTF-8 character is a newline, so the first newline ends the header.
 */
export function wrapTagged(payload: Payload, stamp: TagStamp): Payload {
  const pairs: string[] = []
  for (let i = 0; i < stamp.tags.length; i++) pairs.push(stamp.tags[i] as string, stamp.versions[i] as string)
  const head = `${MARK}${JSON.stringify(pairs)}\n`
  if (typeof payload === 'string') return head + payload
  const bytes = Buffer.from(head, 'utf8')
  const out = new Uint8Array(bytes.length + payload.length)
  out.set(bytes, 0)
  out.set(payload, bytes.length)
  return out
}

/**
 * A tagged payload's stamp and the codec's payload inside it.
 * @throws {Error} for a header that is not one {@link wrapTagged} writes (the entry is then corrupt).
 */
export function unwrapTagged(payload: Payload): { stamp: TagStamp; inner: Payload } {
  let head: string
  let inner: Payload
  if (typeof payload === 'string') {
    const end = payload.indexOf('\n')
    if (end < 0) throw new Error('a tagged payload without the end of its header')
    head = payload.slice(MARK.length, end)
    inner = payload.slice(end + 1)
  } else {
    const end = payload.indexOf(NEWLINE)
    if (end < 0) throw new Error('a tagged payload without the end of its header')
    head = Buffer.from(payload.buffer, payload.byteOffset + MARK_BYTES.length, end - MARK_BYTES.length).toString('utf8')
    inner = payload.subarray(end + 1)
  }
  let pairs: unknown
  try {
    pairs = JSON.parse(head)
  } catch {
    throw new Error('a tagged payload whose header is not JSON')
  }
  if (!Array.isArray(pairs) || pairs.length === 0 || pairs.length % 2 !== 0 || pairs.some((p) => typeof p !== 'string')) {
    throw new Error('a tagged payload whose header is not a list of tags and versions')
  }
  const tags: string[] = []
  const versions: string[] = []
  for (let i = 0; i < pairs.length; i += 2) {
    tags.push(pairs[i] as string)
    versions.push(pairs[i + 1] as string)
  }
  return { stamp: { tags, versions }, inner }
}

/** A tag version as read from the backend (text, or its bytes on a backend that returns bytes). */
export function versionText(payload: Payload | undefined): string | undefined {
  if (payload === undefined || typeof payload === 'string') return payload
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')
}

/** True if every tag of `stamp` still has the version it was written with (a missing version never matches). */
export function stampHolds(stamp: TagStamp, current: ReadonlyMap<string, string | undefined>): boolean {
  for (let i = 0; i < stamp.tags.length; i++) {
    const now = current.get(stamp.tags[i] as string)
    if (now === undefined || now !== stamp.versions[i]) return false
  }
  return true
}
