/**
 * Loading express-session, an optional peer: only `cachekit/session` needs it.
 * @internal
 */
import { createRequire } from 'node:module'
import type * as ExpressSession from 'express-session'
import { CacheConfigError } from '../errors.js'

const requireFromHere = createRequire(import.meta.url)

/**
 * express-session's `Store` class, loaded with `require` (express-session is CommonJS) so that a missing
 * package is an error that says what to install.
 * @internal `specifier` exists so a test can ask for a package that is not installed.
 * @throws {CacheConfigError} saying to run `npm install express-session` when it is missing.
 */
export function loadExpressSessionStore(specifier = 'express-session'): typeof ExpressSession.Store {
  let loaded: typeof ExpressSession
  try {
    loaded = requireFromHere(specifier) as typeof ExpressSession
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
    throw new CacheConfigError(
      missing
        ? `cachekit/session needs the \`${specifier}\` package, which is not installed: run \`npm install ${specifier}\`.`
        : `The \`${specifier}\` package could not be loaded (${(cause as Error).message}).`,
      { cause },
    )
  }
  if (typeof loaded?.Store !== 'function') {
    throw new CacheConfigError(`The \`${specifier}\` package has no \`Store\` class: cachekit/session needs express-session 1.x.`)
  }
  return loaded.Store
}

