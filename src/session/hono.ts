/**
 * Server-side sessions for Hono: a signed cookie that carries a random id, and the data in the cache.
 * Exported from `cachekit/hono`.
 *
 * ```ts
 * const app = new Hono().use(session({ cache, secret: process.env.SESSION_SECRET, cookie: { maxAge: '1d' } }))
 * app.get('/me', async (c) => c.json({ user: await c.get('session').get('user') }))
 * ```
 */
import type { Context, MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { Cache } from '../cache.js'
import type { Duration, Milliseconds } from '../duration.js'
import { parseDuration } from '../duration.js'
import { CacheArgumentError, CacheConfigError } from '../errors.js'
import { cache as singleton } from '../singleton.js'
import { checkKnown, checkPrefix, destroySession, positiveDuration, readSession, saveSession } from './common.js'
import { newSessionId, Signer } from './sign.js'

/** The session of one request: `c.get('session')`. Its data is loaded before the handler runs. */
export interface Session {
  /** The session's id (also after `regenerate()` or `destroy()`, the new one). Never put it in a page. */
  readonly id: string
  /** The value stored under `name`, or `undefined`. Change a value by `set`ting it again. */
  get<T = unknown>(name: string): Promise<T | undefined>
  /** Store `value` (anything the cache's codec takes; Dates stay Dates) under `name`. Saved when the response is ready. */
  set(name: string, value: unknown): Promise<void>
  /** Remove `name` from the session. A session left with nothing in it is removed, and its cookie cleared. */
  delete(name: string): Promise<void>
  /** Remove the session from the cache now (a logout) and clear its cookie; the request goes on with a fresh, empty one. */
  destroy(): Promise<void>
  /**
   * Move the session to a new id, keeping its data, and remove the old entry now: call it when a user logs
   * in, so that an id planted before the login (session fixation) is worth nothing.
   */
  regenerate(): Promise<void>
}

/** The Hono environment the middleware gives: `new Hono<SessionEnv>()`, or `new Hono().use(session(...))`. */
export interface SessionEnv {
  Variables: { session: Session }
}

/** The session cookie. */
export interface SessionCookieOptions {
  /** @default 'sid' */
  name?: string
  /**
   * How long a session lives without a request that renews it: the cookie's `Max-Age` and the entry's TTL.
   * At most 400 days (browsers cap cookies there).
   * @default '1d'
   */
  maxAge?: Duration
  /** @default '/' */
  path?: string
  /** @default none: the cookie goes back to the host that set it only */
  domain?: string
  /** @default 'Lax' */
  sameSite?: 'Lax' | 'Strict' | 'None'
  /** `'auto'`: `Secure` when the request came over HTTPS (see `trustProxy`). @default 'auto' */
  secure?: boolean | 'auto'
  /** @default true */
  httpOnly?: boolean
}

/** Options of {@link session}. */
export interface SessionOptions {
  /**
   * The key of the cookie's HMAC-SHA256 signature: at least 32 characters, from the environment, never in the
   * code. An array rotates secrets: the first signs, any of them verifies.
   */
  secret: string | readonly string[]
  /** The cache that holds the sessions. @default the `cache` singleton */
  cache?: Cache
  /** Put before each session id, inside the cache's own `keyPrefix`. @default 'sess:' */
  prefix?: string
  cookie?: SessionCookieOptions
  /**
   * Rolling expiry: a request with a session whose expiry was last set `renewAfter` ago or more sets it again
   * (the backend's `touch`, and a new cookie). Other requests write nothing and send no cookie.
   * @default true
   */
  rolling?: boolean
  /** See `rolling`; `0` renews on every request that has a session. @default a tenth of `cookie.maxAge` */
  renewAfter?: Duration
  /**
   * Believe the `X-Forwarded-Proto` header of a proxy in front of the app when deciding whether the request
   * came over HTTPS (for `secure: 'auto'`). Leave it off unless a proxy you run sets the header.
   * @default false
   */
  trustProxy?: boolean
}

const WHERE = 'session() (cachekit/hono)'
const KNOWN = ['secret', 'cache', 'prefix', 'cookie', 'rolling', 'renewAfter', 'trustProxy']
const COOKIE_KNOWN = ['name', 'maxAge', 'path', 'domain', 'sameSite', 'secure', 'httpOnly']
/** The most a browser keeps a cookie (RFC 6265bis): 400 days. */
const MAX_COOKIE_AGE: Milliseconds = 400 * 86_400_000
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const MIN_SECRET_LENGTH = 32

interface Resolved {
  signer: Signer
  sessions: Cache
  name: string
  maxAge: Milliseconds
  path: string
  domain: string | undefined
  sameSite: 'Lax' | 'Strict' | 'None'
  secure: boolean | 'auto'
  httpOnly: boolean
  /** `undefined`: never renew. */
  renewAfter: Milliseconds | undefined
  trustProxy: boolean
}

function configError(message: string, option: string): CacheConfigError {
  return new CacheConfigError(`${WHERE}: ${message}`, { option })
}

/** The secrets, checked. Messages give lengths and positions, never a secret. @throws {CacheConfigError} */
function checkSecrets(secret: unknown): string[] {
  const hint = "Use a random string of 32 characters or more (e.g. `openssl rand -base64 32`), kept in an environment variable."
  if (secret === undefined) throw configError(`\`secret\` is required: it signs the session cookie. ${hint}`, 'secret')
  const secrets = typeof secret === 'string' ? [secret] : Array.isArray(secret) ? [...(secret as unknown[])] : undefined
  if (secrets === undefined || secrets.length === 0) throw configError(`\`secret\` must be a string or a non-empty array of strings. ${hint}`, 'secret')
  secrets.forEach((s, i) => {
    const which = secrets.length === 1 ? 'The secret' : `Secret ${i + 1} of ${secrets.length}`
    if (typeof s !== 'string') throw configError(`\`secret\`: ${which} is a ${typeof s}, not a string. ${hint}`, 'secret')
    if (s.length < MIN_SECRET_LENGTH) throw configError(`\`secret\`: ${which} is ${s.length} characters long; it must have at least ${MIN_SECRET_LENGTH}. ${hint}`, 'secret')
  })
  return secrets as string[]
}

function resolveOptions(options: SessionOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new CacheConfigError(`${WHERE}: the options must be an object, with at least \`secret\`.`, { option: 'secret' })
  checkKnown(options, KNOWN, WHERE)
  const signer = new Signer(checkSecrets(options.secret))
  const cookie = options.cookie ?? {}
  if (typeof cookie !== 'object' || cookie === null) throw configError('`cookie` must be an object.', 'cookie')
  checkKnown(cookie, COOKIE_KNOWN, `${WHERE} \`cookie\``)
  const name = cookie.name ?? 'sid'
  if (typeof name !== 'string' || !TOKEN.test(name)) throw configError(`\`cookie.name\` must be a cookie name (letters, digits and !#$%&'*+-.^_\`|~), not ${JSON.stringify(name)}.`, 'cookie.name')
  const maxAge = positiveDuration(cookie.maxAge ?? '1d', 'cookie.maxAge', WHERE)
  if (maxAge < 1000) throw configError('`cookie.maxAge` must be at least 1 second (the cookie counts in seconds).', 'cookie.maxAge')
  if (maxAge > MAX_COOKIE_AGE) throw configError("`cookie.maxAge` must be at most 400 days (browsers keep a cookie no longer), e.g. '30d'.", 'cookie.maxAge')
  for (const option of ['path', 'domain'] as const) {
    const value = cookie[option]
    if (value !== undefined && (typeof value !== 'string' || value === '' || /[;\r\n]/.test(value))) {
      throw configError(`\`cookie.${option}\` must be a non-empty string without ";" or line breaks.`, `cookie.${option}`)
    }
  }
  const sameSite = { lax: 'Lax', strict: 'Strict', none: 'None' }[String(cookie.sameSite ?? 'Lax').toLowerCase()] as Resolved['sameSite'] | undefined
  if (sameSite === undefined) throw configError(`\`cookie.sameSite\` must be 'Lax', 'Strict' or 'None', not ${JSON.stringify(cookie.sameSite)}.`, 'cookie.sameSite')
  const hostOnly = /^__(secure|host)-/i.test(name)
  const secure = cookie.secure ?? 'auto'
  if (secure !== true && secure !== false && secure !== 'auto') throw configError("`cookie.secure` must be true, false or 'auto'.", 'cookie.secure')
  if (secure === false && (sameSite === 'None' || hostOnly)) {
    throw configError(`\`cookie.secure\` cannot be false with ${sameSite === 'None' ? "sameSite 'None'" : `the cookie name ${name}`}: browsers refuse such a cookie.`, 'cookie.secure')
  }
  if (/^__host-/i.test(name) && (cookie.domain !== undefined || (cookie.path ?? '/') !== '/')) {
    throw configError(`A cookie named ${name} must have path '/' and no domain.`, 'cookie.name')
  }
  for (const option of ['rolling', 'trustProxy'] as const) {
    if (options[option] !== undefined && typeof options[option] !== 'boolean') throw configError(`\`${option}\` must be true or false.`, option)
  }
  let renewAfter: Milliseconds | undefined
  if (options.rolling !== false) {
    try {
      renewAfter = options.renewAfter === undefined ? Math.floor(maxAge / 10) : parseDuration(options.renewAfter, `\`renewAfter\` of ${WHERE}`)
    } catch (error) {
      throw new CacheConfigError((error as Error).message, { option: 'renewAfter', cause: error })
    }
  }
  return {
    signer,
    sessions: (options.cache ?? singleton).namespace(checkPrefix(options.prefix, WHERE)),
    name,
    maxAge,
    path: cookie.path ?? '/',
    domain: cookie.domain,
    sameSite,
    // A __Secure- or __Host- cookie is refused by browsers without Secure, even over plain HTTP.
    secure: hostOnly ? true : secure,
    httpOnly: cookie.httpOnly ?? true,
    renewAfter,
    trustProxy: options.trustProxy ?? false,
  }
}

function checkName(name: unknown, op: string): asserts name is string {
  if (typeof name !== 'string' || name === '') throw new CacheArgumentError(`session.${op}(name): the name must be a non-empty string, not ${JSON.stringify(name)}.`)
}

/** A stored session as the cache gave it back: a plain object of values, else nothing. */
function asData(value: unknown): Map<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Map || value instanceof Date) return undefined
  return new Map(Object.entries(value))
}

/** One request's session: what the handler changes, then what `commit` writes and which cookie it sends. */
class RequestSession implements Session {
  readonly #opts: Resolved
  /** The id a valid cookie of the request carried. */
  readonly #cookieId: string | undefined
  #id: string
  #data: Map<string, unknown>
  /** An entry exists at `#id` (it was loaded). */
  #stored: boolean
  #dirty = false
  #renew: boolean
  /** The cookie's session was removed (destroy, regenerate): unless a new one is saved, clear the cookie. */
  #removed = false

  constructor(opts: Resolved, cookieId: string | undefined, data: Map<string, unknown> | undefined, renew: boolean) {
    this.#opts = opts
    this.#cookieId = cookieId
    // An id without an entry (expired, destroyed) is never taken up again: a new session gets a new id.
    this.#id = data === undefined || cookieId === undefined ? newSessionId() : cookieId
    this.#data = data ?? new Map()
    this.#stored = data !== undefined
    this.#renew = renew
  }

  get id(): string {
    return this.#id
  }

  async get<T = unknown>(name: string): Promise<T | undefined> {
    checkName(name, 'get')
    return this.#data.get(name) as T | undefined
  }

  async set(name: string, value: unknown): Promise<void> {
    checkName(name, 'set')
    if (value === undefined) throw new CacheArgumentError(`session.set(${JSON.stringify(name)}, undefined): use session.delete(name) to remove a value, or store null.`)
    this.#data.set(name, value)
    this.#dirty = true
  }

  async delete(name: string): Promise<void> {
    checkName(name, 'delete')
    if (this.#data.delete(name)) this.#dirty = true
  }

  async destroy(): Promise<void> {
    await this.#leave()
    this.#data = new Map()
    this.#dirty = false
  }

  async regenerate(): Promise<void> {
    await this.#leave()
    this.#dirty = true
  }

  /**
   * Remove the entry now (so that errors reach the handler) and take a new id. The cookie's id is removed even
   * when nothing was loaded for it: the read may have failed (fail-open), and a logout must not leave the
   * entry alive behind a cookie that someone else may hold.
   */
  async #leave(): Promise<void> {
    const old = this.#stored ? this.#id : this.#removed ? undefined : this.#cookieId
    if (old !== undefined) await destroySession(this.#opts.sessions, old)
    if (this.#cookieId !== undefined) this.#removed = true
    this.#id = newSessionId()
    this.#stored = false
    this.#renew = false
  }

  /** After the handler: write what changed, and send a cookie only when the session did. */
  async commit(c: Context): Promise<void> {
    const { sessions, maxAge } = this.#opts
    if (this.#dirty) {
      if (this.#data.size > 0) {
        if (await saveSession(sessions, this.#id, Object.fromEntries(this.#data), maxAge)) return this.#sendCookie(c, this.#id)
        // Destroyed by another request meanwhile (a logout elsewhere): it stays destroyed.
        this.#removed = this.#cookieId !== undefined
      } else if (this.#stored) {
        await destroySession(sessions, this.#id)
        this.#removed = true
      }
    } else if (this.#renew && this.#stored) {
      // The expiry only: a touch never writes data, and never brings back an entry destroyed meanwhile.
      if (await sessions.touch(this.#id, maxAge)) return this.#sendCookie(c, this.#id)
    }
    if (this.#removed) this.#clearCookie(c)
  }

  async #sendCookie(c: Context, id: string): Promise<void> {
    setCookie(c, this.#opts.name, await this.#opts.signer.sign(id), { ...this.#attributes(c), maxAge: Math.ceil(this.#opts.maxAge / 1000) })
  }

  #clearCookie(c: Context): void {
    setCookie(c, this.#opts.name, '', { ...this.#attributes(c), maxAge: 0 })
  }

  #attributes(c: Context) {
    const { path, domain, sameSite, httpOnly, secure, trustProxy } = this.#opts
    return {
      path,
      ...(domain === undefined ? {} : { domain }),
      sameSite,
      httpOnly,
      secure: secure === 'auto' ? isHttps(c, trustProxy) : secure,
    }
  }
}

/** The request came over HTTPS: by its URL, or (only when the proxy is trusted) by `X-Forwarded-Proto`. */
function isHttps(c: Context, trustProxy: boolean): boolean {
  if (c.req.url.startsWith('https:')) return true
  if (!trustProxy) return false
  const proto = c.req.header('x-forwarded-proto')
  return proto !== undefined && proto.split(',')[0]?.trim().toLowerCase() === 'https'
}

/**
 * Server-side sessions: `c.get('session')` has `get(name)`, `set(name, value)`, `delete(name)`, `destroy()`,
 * `regenerate()` and `id`; the data lives in the cache, the cookie carries only a random 192-bit id signed
 * with HMAC-SHA256 (Web Crypto, so it runs wherever Hono runs).
 *
 * - A forged, tampered or unknown cookie is a fresh, empty session, never an error.
 * - A request whose session did not change writes nothing and sends no `Set-Cookie`; a changed one is saved
 *   once, after the handler. Rolling expiry renews at most every `renewAfter` (the backend's `touch`: never data).
 * - Cookie defaults: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the request is HTTPS.
 * - With the cache's `failOpen` (the default) a read that fails is a fresh session; a save or destroy the
 *   backend did not do is an error (a 500 from Hono's error handler), never a success.
 *
 * @example app.use(session({ secret: process.env.SESSION_SECRET!, cookie: { maxAge: '1d' } }))
 * @throws {CacheConfigError} at start-up for a missing or short `secret` (under 32 characters), or an invalid option.
 */
export function session(options: SessionOptions): MiddlewareHandler<SessionEnv> {
  const opts = resolveOptions(options)
  return async (c, next) => {
    const cookieId = await opts.signer.verify(getCookie(c, opts.name))
    let data: Map<string, unknown> | undefined
    let renew = false
    if (cookieId !== undefined) {
      // One round trip: the two commands go out together.
      const [value, left] = await Promise.all([readSession(opts.sessions, cookieId), opts.sessions.ttl(cookieId)])
      data = asData(value)
      renew = data !== undefined && opts.renewAfter !== undefined && typeof left === 'number' && opts.maxAge - left >= opts.renewAfter
    }
    const state = new RequestSession(opts, cookieId, data, renew)
    c.set('session', state)
    await next()
    await state.commit(c)
  }
}
