import { EventEmitter } from 'node:events'
import type { CacheError } from './errors.js'
import { redactText } from './redact.js'

/** What an `'error'` listener learns besides the error: the operation and key. */
export interface ErrorInfo {
  op: string
  key?: string
}

/** The events a cache emits. Listeners are shared by a cache and its namespaces. */
export interface CacheEvents {
  /** A backend failure absorbed by fail-open, or a background failure (a purge, a refresh). */
  error: [error: CacheError, info: ErrorInfo]
  hit: [key: string]
  miss: [key: string]
  set: [key: string]
  delete: [key: string]
  /** A stored entry could not be read (a truncated file, a payload of another program) and was dropped. */
  corrupt: [key: string | undefined, detail: string]
  /** Something the operator should know once (an unbounded memory cache, a memory cache in a cluster). */
  warning: [message: string]
  /**
   * The memory tier (`l1`) stopped being used because its invalidation channel went down (`'bypassed'`:
   * it was flushed, and every read goes to the backend), or is used again (`'restored'`).
   */
  l1: [state: 'bypassed' | 'restored', reason: string]
}

export type CacheEventName = keyof CacheEvents
export type CacheListener<E extends CacheEventName> = (...args: CacheEvents[E]) => void

/** How often an unhandled `'error'` is written to stderr at most, so an outage does not flood logs. */
const ERROR_LOG_INTERVAL_MS = 10_000

/**
 * An EventEmitter that never throws for an unhandled `'error'`: with no listener, errors and warnings go
 * to stderr instead, errors at most once per {@link ERROR_LOG_INTERVAL_MS} and each warning once.
 */
export class CacheEmitter extends EventEmitter {
  #lastErrorLog = 0
  #suppressed = 0
  readonly #warned = new Set<string>()

  emitError(error: CacheError, info: ErrorInfo): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', error, info)
      return
    }
    const now = Date.now()
    if (now - this.#lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      this.#suppressed++
      return
    }
    const more = this.#suppressed > 0 ? ` (${this.#suppressed} more since the last report)` : ''
    this.#lastErrorLog = now
    this.#suppressed = 0
    // Messages are built without credentials; hiding any URL's again costs nothing on this rare path.
    console.warn(`cachekit: ${redactText(error.message)}${more}. Listen with cache.on('error', ...) to handle these.`)
  }

  /** Warn once per distinct message. */
  warnOnce(message: string): void {
    if (this.#warned.has(message)) return
    this.#warned.add(message)
    if (this.listenerCount('warning') > 0) this.emit('warning', message)
    else console.warn(`cachekit: ${redactText(message)}`)
  }
}
