/**
 * `cachekit/session`: an express-session store on any cachekit backend.
 *
 * ```ts
 * import session from 'express-session'
 * import { CacheStore } from 'cachekit/session'
 * app.use(session({ store: new CacheStore({ cache, prefix: 'sess:' }), secret, resave: false, saveUninitialized: false }))
 * ```
 *
 * It extends express-session's own `Store` (as stores are meant to, for `regenerate`, `load` and
 * `createSession`), so importing this module loads express-session: install it beside cachekit.
 * @module cachekit/session
 */
import type * as ExpressSession from 'express-session'
import type { Cache } from '../cache.js'
import type { Duration, Milliseconds } from '../duration.js'
import { CacheBackendError, CacheConfigError } from '../errors.js'
import { cache as singleton } from '../singleton.js'
import { loadExpressSessionStore } from './peer.js'
import { checkKnown, checkPrefix, destroySession, positiveDuration, readSession, saveSession } from './common.js'

type SessionData = ExpressSession.SessionData

const Store = loadExpressSessionStore()

/** Options of {@link CacheStore}. */
export interface CacheStoreOptions {
  /** The cache that holds the sessions. @default the `cache` singleton */
  cache?: Cache
  /**
   * Put before each session id, inside the cache's own `keyPrefix`: the store's `all`, `length`, `ids` and
   * `clear` see only the keys under it.
   * @default 'sess:'
   */
  prefix?: string
  /**
   * How long a session lives when its cookie has no expiry (no `cookie.maxAge` or `cookie.expires`). With
   * one, the entry expires with the cookie.
   * @default '1d'
   */
  ttl?: Duration
}

/** A callback as express-session passes them: an error first, then the result. */
type Callback<T> = (error: unknown, result?: T) => void

const KNOWN = ['cache', 'prefix', 'ttl']
const WHERE = 'new CacheStore() (cachekit/session)'

/** When the cookie's session expires (ms since the epoch), or `undefined` for a cookie without expiry. */
function cookieExpiry(cookie: unknown): number | undefined {
  if (typeof cookie !== 'object' || cookie === null) return undefined
  const { expires, maxAge } = cookie as { expires?: unknown; maxAge?: unknown }
  if (expires instanceof Date || typeof expires === 'string' || typeof expires === 'number') {
    const at = new Date(expires).getTime()
    if (!Number.isNaN(at)) return at
  }
  // A plain object (a caller's own `set`) may say only how long: from now, as express-session's Cookie does.
  if (typeof maxAge === 'number' && Number.isFinite(maxAge)) return Date.now() + maxAge
  return undefined
}

/**
 * The session as stored: its own members, with the cookie as plain data (so its `expires` stays a `Date` in
 * the codec's round trip; express-session's `createSession` takes a `Date` or a string).
 */
function toRecord(session: SessionData): Record<string, unknown> {
  const record: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(session)) {
    if (name === 'cookie' && typeof (value as { toJSON?: unknown })?.toJSON === 'function') record.cookie = (value as { toJSON(): unknown }).toJSON()
    else record[name] = value
  }
  return record
}

/** A stored session, if `value` is one and its cookie has not expired. */
function liveSession(value: unknown, now: number): SessionData | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const cookie = (value as { cookie?: unknown }).cookie
  if (typeof cookie !== 'object' || cookie === null) return undefined
  const expiry = cookieExpiry(cookie)
  return expiry !== undefined && expiry <= now ? undefined : (value as SessionData)
}

/**
 * express-session's store contract on a cachekit cache, all of it: `get`, `set`, `destroy`, `touch`, `all`,
 * `length`, `clear` and `ids`. Each takes express-session's callback, or returns a promise when given none.
 *
 * - An entry expires with its session's cookie (`expires`/`maxAge`), else after `ttl`; the backend removes
 *   expired entries (Redis itself; SQLite and the filesystem by their purge), and an expired one is never returned.
 * - `touch` only moves the expiry, with the backend's `touch`: it never writes the session's data (so it
 *   cannot undo a concurrent write), and it never brings back a destroyed or expired session.
 * - A `set` by a request that loaded the session before it was destroyed is taken back: a logout stays a logout.
 * - `all`, `length`, `ids` and `clear` see this store's `prefix` only, never the rest of the cache.
 * - Values round-trip through the cache's codec (Dates stay Dates); a session that cannot be encoded is an
 *   error to the callback, and the stored one stays as it was.
 * - Failures: with the cache's `failOpen` (the default) a read that fails is a miss (a fresh session); a
 *   `set`, `destroy` or `clear` the backend did not do is always an error (express-session answers 500).
 *
 * @example app.use(session({ store: new CacheStore({ cache }), secret, resave: false, saveUninitialized: false }))
 * @throws {CacheConfigError} for an unknown or invalid option.
 */
export class CacheStore extends Store {
  readonly #sessions: Cache
  readonly #ttl: Milliseconds

  constructor(options: CacheStoreOptions = {}) {
    super()
    if (typeof options !== 'object' || options === null) throw new CacheConfigError(`${WHERE}: the options must be an object.`)
    checkKnown(options, KNOWN, WHERE)
    const chosen = options.cache ?? singleton
    if (typeof chosen?.namespace !== 'function') throw new CacheConfigError(`${WHERE}: \`cache\` must be a cachekit cache (from createCache, or the \`cache\` singleton).`, { option: 'cache' })
    this.#sessions = chosen.namespace(checkPrefix(options.prefix, WHERE))
    this.#ttl = positiveDuration(options.ttl ?? '1d', 'ttl', WHERE)
  }

  /** The session stored for `sid`, or `null` (never an expired one). */
  get(sid: string): Promise<SessionData | null>
  get(sid: string, callback: Callback<SessionData | null>): void
  get(sid: string, callback?: Callback<SessionData | null>): Promise<SessionData | null> | void {
    return settle(async () => liveSession(await readSession(this.#sessions, sid), Date.now()) ?? null, callback)
  }

  /** Store `session` for as long as its cookie lives (else `ttl`); an already expired one is removed. */
  set(sid: string, session: SessionData): Promise<void>
  set(sid: string, session: SessionData, callback: Callback<void>): void
  set(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | void {
    return settle(async () => {
      const ttl = this.#ttlOf(session)
      if (ttl === undefined) await this.#sessions.delete(sid)
      else await saveSession(this.#sessions, sid, toRecord(session), ttl)
    }, callback)
  }

  /** Remove the session; a request still running with it cannot save it back. */
  destroy(sid: string): Promise<void>
  destroy(sid: string, callback: Callback<void>): void
  destroy(sid: string, callback?: Callback<void>): Promise<void> | void {
    return settle(() => destroySession(this.#sessions, sid), callback)
  }

  /**
   * Give a live session the expiry of its (reset) cookie. Only the expiry: the stored data is not written, so a
   * concurrent `set` stays, and a destroyed or expired session stays gone.
   */
  touch(sid: string, session: SessionData): Promise<void>
  touch(sid: string, session: SessionData, callback: Callback<void>): void
  touch(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | void {
    return settle(async () => {
      const ttl = this.#ttlOf(session)
      if (ttl !== undefined) await this.#sessions.touch(sid, ttl)
    }, callback)
  }

  /** Every live session of this store, by id. */
  all(): Promise<Record<string, SessionData>>
  all(callback: Callback<Record<string, SessionData>>): void
  all(callback?: Callback<Record<string, SessionData>>): Promise<Record<string, SessionData>> | void {
    return settle(async () => {
      const ids = await this.#ids()
      const out: Record<string, SessionData> = {}
      const now = Date.now()
      for (let i = 0; i < ids.length; i += 100) {
        const batch = ids.slice(i, i + 100)
        const values = await this.#sessions.getMany(batch)
        batch.forEach((id, j) => {
          const live = liveSession(values[j], now)
          if (live !== undefined) Object.defineProperty(out, id, { value: live, enumerable: true, writable: true, configurable: true })
        })
      }
      return out
    }, callback)
  }

  /** How many sessions this store holds. */
  length(): Promise<number>
  length(callback: Callback<number>): void
  length(callback?: Callback<number>): Promise<number> | void {
    return settle(async () => (await this.#ids()).length, callback)
  }

  /** The ids of this store's sessions. */
  ids(): Promise<string[]>
  ids(callback: Callback<string[]>): void
  ids(callback?: Callback<string[]>): Promise<string[]> | void {
    return settle(() => this.#ids(), callback)
  }

  /** Remove every session of this store (its `prefix`), and nothing else. */
  clear(): Promise<void>
  clear(callback: Callback<void>): void
  clear(callback?: Callback<void>): Promise<void> | void {
    return settle(async () => {
      if (!(await this.#sessions.clear())) throw new CacheBackendError("The sessions were not cleared: the cache backend failed (its 'error' event has the cause).")
    }, callback)
  }

  async #ids(): Promise<string[]> {
    const ids: string[] = []
    // keys() leaves bookkeeping keys (the tombstones of destroyed sessions) out: every key is a session's.
    for await (const key of this.#sessions.keys()) ids.push(key)
    return ids
  }

  /** How long the session has left by its cookie, else `ttl`; `undefined` if its cookie has expired. */
  #ttlOf(session: SessionData): Milliseconds | undefined {
    const expiry = cookieExpiry(session?.cookie)
    if (expiry === undefined) return this.#ttl
    const left = Math.ceil(expiry - Date.now())
    return left > 0 ? left : undefined
  }
}

/**
 * Run `work`: its promise when there is no callback, else its outcome to the callback. The callback runs in
 * its own microtask, so an exception it throws is an uncaught exception, as from any callback, and is never
 * taken for the store's failure.
 */
function settle<T>(work: () => Promise<T>, callback: Callback<T> | undefined): Promise<T> | void {
  const promise = Promise.resolve().then(work)
  if (callback === undefined) return promise
  promise.then(
    (result) => queueMicrotask(() => callback(null, result)),
    (error: unknown) => queueMicrotask(() => callback(error)),
  )
}
