/** URL helpers for adapter definitions: a leaf that imports only errors and redaction. */
import { CacheConfigError } from './errors.js'
import { redactUrl } from './redact.js'

export { redactUrl }

/** A URL's scheme, lowercase, without the colon; `undefined` if it has none. */
export function schemeOf(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
}

/** Strip a URL scheme and return the rest as a path: `sqlite:./a.db` and `sqlite://./a.db` give `./a.db`. */
export function pathFromUrl(url: string): string {
  const rest = url.replace(/^[a-z][a-z0-9+.-]*:/i, '')
  return decodeURIComponent(rest.startsWith('//') ? rest.slice(2) : rest)
}

/**
 * A URL that names a file or folder (file:, sqlite:) never names an account: refuse a userinfo before it
 * becomes part of a name. `example` is a URL to suggest instead.
 *
 * @throws {CacheConfigError} naming `url`, with the password hidden.
 */
export function refuseUserinfo(url: string, example: string): void {
  if (redactUrl(url) === url) return
  throw new CacheConfigError(
    `The URL ${JSON.stringify(redactUrl(url))} has a user or password before an \`@\`: it names a file or folder, never an account. ` +
      `Write e.g. ${example} (for an \`@\` in a name, start with ./).`,
    { option: 'url' },
  )
}
