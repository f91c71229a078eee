/**
 * What the express-session store and the Hono middleware share: how a session is read, saved and destroyed
 * in a cache namespace, so that neither a touch nor a request that started before a logout brings a
 * destroyed session back. Imports neither express-session nor Hono.
 * @internal
 */
import type { Cache } from '../cache.js'
import { durationOption, type Duration, type Milliseconds } from '../duration.js'
import { BOOKKEEPING, ENGINE } from '../engine.js'
import { CacheBackendError, CacheConfigError } from '../errors.js'

/**
 * Beside a destroyed session's key, for {@link TOMBSTONE_TTL}: a save by a request that loaded the session
 * before it was destroyed finds it and takes its write back. A bookkeeping key (see `src/engine.ts`): written
 * through the engine, it is no `set` of the user's, and `keys()` leaves it out.
 */
const TOMBSTONE = `${BOOKKEEPING}destroyed`

/** How long a tombstone stays: longer than any request that could still save the session it marks. */
export const TOMBSTONE_TTL: Milliseconds = 10 * 60_000

/** The default prefix of session keys, in the cache's own prefix. */
export const DEFAULT_SESSION_PREFIX = 'sess:'

/**
 * The session stored at `id`, or `undefined`. A backend failure is a miss when the cache fails open (the
 * visitor gets a fresh, empty session), else it throws.
 */
export async function readSession<T>(sessions: Cache, id: string): Promise<T | undefined> {
  // An id that is no valid key gets the public read's error, as before.
  if (typeof id !== 'string' || id === '' || id.includes(BOOKKEEPING)) return sessions.get<T>(id)
  // Around the memory tier (l1), to the backend: a login or logout in another worker is seen at once.
  const engine = await sessions[ENGINE]()
  const value = await engine.getFresh<T>(id, engine.budget())
  engine.record(value === undefined ? 'miss' : 'hit', id)
  return value
}

/**
 * Store `value` at `id` for `ttl` ms. Encoding comes first, so a value that cannot be encoded throws a
 * `CacheSerializationError` and leaves the stored session as it was.
 *
 * @returns false if the session was destroyed meanwhile (by a logout, or a `regenerate` elsewhere): the write
 * is taken back, and the session stays destroyed.
 * @throws {CacheBackendError} when the backend did not store it (with `failOpen`, where `set` says false).
 */
export async function saveSession(sessions: Cache, id: string, value: unknown, ttl: Milliseconds): Promise<boolean> {
  if (!(await sessions.set(id, value, ttl))) throw notDone('saved')
  // After the write, not before: a destroy that lands between a check and the write would be undone.
  // This read goes around the memory tier too: the tombstone was written by another worker.
  const engine = await sessions[ENGINE]()
  if ((await engine.getFresh(id + TOMBSTONE, engine.budget())) !== undefined) {
    await sessions.delete(id)
    return false
  }
  return true
}

/**
 * Destroy the session at `id`: a tombstone first (its write is one whose failure shows, even with
 * `failOpen`: a logout is never reported done while the backend was down), then the entry.
 * @throws {CacheBackendError} when the backend failed.
 */
export async function destroySession(sessions: Cache, id: string): Promise<void> {
  const engine = await sessions[ENGINE]()
  if (!(await engine.set(id + TOMBSTONE, 1, TOMBSTONE_TTL, engine.budget()))) throw notDone('destroyed')
  await sessions.delete(id)
}

function notDone(what: string): CacheBackendError {
  return new CacheBackendError(
    `The session was not ${what}: the cache backend failed (its 'error' event has the cause). The request should fail rather than pretend it was ${what}.`,
  )
}

/** `prefix`, checked: a non-empty string. @throws {CacheConfigError} */
export function checkPrefix(prefix: unknown, where: string): string {
  if (prefix === undefined) return DEFAULT_SESSION_PREFIX
  if (typeof prefix !== 'string' || prefix === '') {
    throw new CacheConfigError(`${where}: \`prefix\` must be a non-empty string (the namespace of session keys), not ${JSON.stringify(prefix)}.`, { option: 'prefix' })
  }
  return prefix
}

/** A duration option that must be more than 0 (0 would mean "never expire" to the cache). @throws {CacheConfigError} */
export function positiveDuration(value: Duration, option: string, where: string): Milliseconds {
  return durationOption(value, option, { where, notZero: 'a session must expire' })
}

/** Unknown options are refused, naming them and the known ones. @throws {CacheConfigError} */
export function checkKnown(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new CacheConfigError(`${where}: unknown option \`${name}\`; the options are ${known.join(', ')}.`, { option: name })
  }
}
