/**
 * Credentials never leave cachekit: every URL it shows (in an error, its cause, an event, a warning, the
 * CLI's output) and every error of a driver it passes on goes through here first.
 *
 * Written for text that does not parse as a URL, since that is when a URL gets printed: a password with
 * `/`, `?`, `#` or `@` in it, a port that is not a number, a broken IPv6 host. The rule needs no parser:
 * everything between `scheme://` and the last `@` after it is the userinfo. A user name before a `:` is
 * kept (it helps to tell which account failed); the rest is replaced by `***`. Over-hiding (an `@` in a
 * path or query) is the price of never under-hiding.
 *
 * A leaf: imports nothing of cachekit, so adapters, the CLI and the core can all use it.
 */

/** What replaces a secret. */
export const MASK = '***'

/** A URL scheme, and the `//` that starts an authority. */
const SCHEME_AUTHORITY = /[a-z][a-z0-9+.-]*:\/\//gi

/** Where a URL ends inside free text: white space, quotes and angle brackets. */
const URL_END = /[\s"'`<>]/

/** Mask the userinfo `ui`: `app:secret` -> `app:***`, a lone `token` -> `***`. */
function maskUserinfo(ui: string): string {
  const colon = ui.indexOf(':')
  return colon === -1 ? MASK : `${ui.slice(0, colon)}:${MASK}`
}

/**
 * A URL with its credentials hidden: `redis://app:***@host:6379/0`. Works on any string, URL or not.
 * A URL without `//` (`redis:app:secret@host`, which no parser reads as userinfo) is masked too when
 * what precedes its last `@` has a `:`; `sqlite:./data@2x.db` is left as it is.
 *
 * @example redactUrl('redis://app:p@ss/word@host:6379') // 'redis://app:***@host:6379'
 */
export function redactUrl(url: string): string {
  const scheme = /^\s*[a-z][a-z0-9+.-]*:/i.exec(url)
  if (scheme === null) return redactText(url)
  let start = scheme[0].length
  const authority = url.startsWith('//', start)
  if (authority) start += 2
  const at = url.lastIndexOf('@')
  // `file:///var/cache@2` has an empty authority: an `@` after it is in the path.
  if (at < start || (authority && url[start] === '/')) return url
  const userinfo = url.slice(start, at)
  if (!authority && !userinfo.includes(':')) return url
  return `${url.slice(0, start)}${maskUserinfo(userinfo)}${url.slice(at)}`
}

/**
 * `text` with the credentials of every `scheme://user:password@` in it hidden, and every one of
 * `secrets` (known passwords, whole URLs) replaced wherever it appears. Within text a URL ends at white
 * space or a quote, so a password with a space in it is found only through `secrets`.
 */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text
  for (const secret of secrets) {
    if (secret.length > 0 && out.includes(secret)) out = out.split(secret).join(secretMask(secret))
  }
  SCHEME_AUTHORITY.lastIndex = 0
  if (!SCHEME_AUTHORITY.test(out)) return out
  SCHEME_AUTHORITY.lastIndex = 0
  let result = ''
  let done = 0
  for (let m = SCHEME_AUTHORITY.exec(out); m !== null; m = SCHEME_AUTHORITY.exec(out)) {
    const start = m.index + m[0].length
    const rest = out.slice(start)
    const end = start + (rest.search(URL_END) === -1 ? rest.length : rest.search(URL_END))
    const at = out.lastIndexOf('@', end - 1)
    if (at >= start && looksLikeUserinfo(out.slice(start, at))) {
      result += `${out.slice(done, start)}${maskUserinfo(out.slice(start, at))}`
      done = at
    }
    SCHEME_AUTHORITY.lastIndex = Math.max(end, start)
  }
  return result + out.slice(done)
}

/**
 * Within free text, whether what precedes a URL's last `@` can be a userinfo. Not an empty authority
 * (`file:///app/node_modules/@scope/x` in a stack trace), not a host and path (`https://host/@user`):
 * a userinfo with a `/` in it must have its `:` first (`app:pass/word`).
 */
function looksLikeUserinfo(ui: string): boolean {
  // Nor a template such as `redis://[user:password@]host` in a help text: brackets never stand in a userinfo.
  if (ui.startsWith('/') || /[[\]]/.test(ui)) return false
  const slash = ui.indexOf('/')
  return slash === -1 || ui.slice(0, slash).includes(':')
}

/** A known secret that is itself a URL is shown redacted; anything else is masked whole. */
function secretMask(secret: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(secret) ? redactUrl(secret) : MASK
}

/**
 * The strings that give `url`'s credentials away, for {@link redactText} and {@link redactError}: the URL
 * itself, its userinfo and password (as written and percent-decoded, as a driver would have them).
 * Empty when it has none. Passwords shorter than 4 characters are left to the URL rule, so that hiding
 * them does not garble every number in a message.
 */
export function urlSecrets(url: string): string[] {
  const shown = redactUrl(url)
  if (shown === url) return []
  const scheme = /^\s*[a-z][a-z0-9+.-]*:(\/\/)?/i.exec(url)
  const start = scheme?.[0].length ?? 0
  const userinfo = url.slice(start, url.lastIndexOf('@'))
  const colon = userinfo.indexOf(':')
  const password = colon === -1 ? userinfo : userinfo.slice(colon + 1)
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s)
    } catch {
      return s
    }
  }
  const found = new Set([url, url.trim()])
  for (const s of [userinfo, decode(userinfo), password, decode(password)]) if (s.length >= 4) found.add(s)
  // Longest first: a URL is replaced before the password inside it.
  return [...found].sort((a, b) => b.length - a.length)
}

/** Keys of an options object whose string values are credentials or URLs that may carry them. */
const SECRET_KEY = /url|uri|dsn|password|passwd|pass$|secret|token|auth|credential/i

/**
 * Every secret in an options object (a config, a Keyv store's options, a cluster's root nodes): the
 * {@link urlSecrets} of each URL-like string anywhere in it, and each string held under a key such as
 * `password`, `token` or `secret`.
 */
export function collectSecrets(value: unknown, depth = 0, key = ''): string[] {
  if (depth > 6 || value === null || value === undefined) return []
  if (typeof value === 'string') {
    if (/^\s*[a-z][a-z0-9+.-]*:/i.test(value) && redactUrl(value) !== value) return urlSecrets(value)
    return SECRET_KEY.test(key) && !/url|uri|dsn/i.test(key) && value.length >= 4 ? [value] : []
  }
  if (value instanceof URL) return urlSecrets(value.href)
  if (typeof value !== 'object') return []
  const proto = Object.getPrototypeOf(value) as unknown
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return []
  const out: string[] = []
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out.push(...collectSecrets(v, depth + 1, Array.isArray(value) ? key : k))
  return [...new Set(out)].sort((a, b) => b.length - a.length)
}

/**
 * `error` safe to show: if its message, stack, own fields (a `TypeError` from `new URL` keeps the whole
 * input in `input`), `cause` or `errors` hold a URL's credentials or one of `secrets`, a copy with them
 * hidden (same prototype, so `instanceof` and the name still hold); otherwise `error` itself.
 */
export function redactError<T>(error: T, secrets: readonly string[] = []): T {
  return redactValue(error, secrets, new Map(), 0) as T
}

function redactValue(value: unknown, secrets: readonly string[], seen: Map<object, unknown>, depth: number): unknown {
  if (typeof value === 'string') return redactText(value, secrets)
  if (typeof value !== 'object' || value === null || depth > 8) return value
  if (seen.has(value)) return seen.get(value)
  if (Array.isArray(value)) {
    const items: unknown[] = []
    seen.set(value, items)
    for (const v of value) items.push(redactValue(v, secrets, seen, depth + 1))
    if (items.some((v, i) => v !== value[i])) return items
    seen.set(value, value)
    return value
  }
  if (!(value instanceof Error)) {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) return value
  }
  // Made first, so that a cycle (an error that is its own cause's cause) leads to the copy, not back to
  // the original.
  const copy = Object.create(Object.getPrototypeOf(value) as object) as object
  seen.set(value, copy)
  const names = new Set<string>(Object.getOwnPropertyNames(value))
  if (value instanceof Error) for (const n of ['message', 'stack', 'cause']) if (n in value) names.add(n)
  let changed = false
  for (const name of names) {
    let original: unknown
    try {
      original = (value as Record<string, unknown>)[name]
    } catch {
      continue
    }
    const safe = redactValue(original, secrets, seen, depth + 1)
    if (safe !== original) changed = true
    const enumerable = Object.getOwnPropertyDescriptor(value, name)?.enumerable ?? false
    Object.defineProperty(copy, name, { value: safe, enumerable, writable: true, configurable: true })
  }
  if (changed) return copy
  seen.set(value, value)
  return value
}
