/**
 * Every error cachekit throws is a {@link CacheError}: it has a stable `code`, names the key or option
 * concerned, and keeps the underlying `cause`. Messages say what to do.
 */

/** Stable codes, one per error class; safe to switch on. */
export type CacheErrorCode =
  | 'CACHE_CONFIG'
  | 'CACHE_ARGUMENT'
  | 'CACHE_SERIALIZATION'
  | 'CACHE_TYPE'
  | 'CACHE_BACKEND'
  | 'CACHE_NOT_INITIALIZED'
  | 'CACHE_CLOSED'
  | 'CACHE_FACTORY'
  | 'CACHE_UNSUPPORTED'

/** Context attached to an error: the key or option it concerns. */
export interface CacheErrorContext {
  /** The cache key concerned (without the cache's prefix). */
  key?: string
  /** The config option (or environment variable) concerned. */
  option?: string
  /** The underlying error. */
  cause?: unknown
}

/** Base class of every error cachekit throws. */
export class CacheError extends Error {
  /** A stable code, one per error class. */
  readonly code: CacheErrorCode
  /** The cache key concerned, if any. */
  readonly key?: string
  /** The option or environment variable concerned, if any. */
  readonly option?: string

  constructor(message: string, code: CacheErrorCode, context: CacheErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause })
    this.name = new.target.name
    this.code = code
    if (context.key !== undefined) this.key = context.key
    if (context.option !== undefined) this.option = context.option
  }
}

/** A config object, URL or environment variable is invalid. Thrown by `init`, `createCache`, `configFromEnv`. */
export class CacheConfigError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_CONFIG', context)
  }
}

/** An argument to a cache method is invalid: an empty key, a negative TTL, a fractional delta. */
export class CacheArgumentError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_ARGUMENT', context)
  }
}

/** A value cannot be encoded (a function, a cycle) or a stored payload cannot be decoded. */
export class CacheSerializationError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_SERIALIZATION', context)
  }
}

/** Why `increment` refused: the integer it found (`undefined`: the value is not one) and the delta. */
export interface IncrementRefusal {
  base: number | undefined
  delta: number
}

/** `inc`/`dec` met a value that is not an integer, or the result would not be a safe integer. */
export class CacheTypeError extends CacheError {
  /**
   * What the adapter found, so that the Cache (which knows its prefix) can say it with the caller's key:
   * an adapter only sees full keys.
   */
  readonly refusal?: IncrementRefusal

  constructor(message: string, context: CacheErrorContext & { refusal?: IncrementRefusal } = {}) {
    super(message, 'CACHE_TYPE', context)
    if (context.refusal !== undefined) this.refusal = context.refusal
  }
}

/** The CacheTypeError for an increment of `key` refused for `refusal`, in the words every backend uses. */
export function incrementTypeError(key: string, refusal: IncrementRefusal): CacheTypeError {
  const why = refusal.base === undefined ? 'its value is not an integer' : `${refusal.base} + ${refusal.delta} is beyond the safe integer range`
  return new CacheTypeError(`Cannot increment ${showKey(key)}: ${why}. It was left as it was.`, { key, refusal })
}

/** The backend failed: unreachable, timed out, or answered with an error. */
export class CacheBackendError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_BACKEND', context)
  }
}

/** The singleton `cache` was used before `cache.init(...)`. */
export class CacheNotInitializedError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_NOT_INITIALIZED', context)
  }
}

/** The cache was used after `close()`. */
export class CacheClosedError extends CacheError {
  constructor(message = 'The cache is closed: it was used after `close()`. Create or `init` a new one.') {
    super(message, 'CACHE_CLOSED')
  }
}

/**
 * A factory (of `getOrSet`, or a memoized function) threw while refreshing an entry in the background; the
 * stale value kept being served. Emitted through `'error'`, never thrown: the caller's own call throws the
 * factory's error as it is.
 */
export class CacheFactoryError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_FACTORY', context)
  }
}

/**
 * The backend cannot do this at all (not a failure that may pass): `keys()` on memcached, which has no way to
 * list keys. The message says why and what to do instead.
 */
export class CacheUnsupportedError extends CacheError {
  constructor(message: string, context: CacheErrorContext = {}) {
    super(message, 'CACHE_UNSUPPORTED', context)
  }
}

/** Quote a key for a message, shortened so a 1 MiB key does not flood a log. */
export function showKey(key: unknown): string {
  if (typeof key !== 'string') return String(key)
  const shown = key.length > 80 ? `${key.slice(0, 77)}...` : key
  return JSON.stringify(shown)
}
