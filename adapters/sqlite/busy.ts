/** SQLITE_BUSY: waited out once by SQLite's busy timeout, and once more here without blocking the event loop. */
import { CacheBackendError } from '../../src/errors.js'
import { isBusy } from './driver.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Runs an operation now, and again later if another connection holds the lock. */
export type Attempt = <T>(op: () => T) => T | Promise<T>

/**
 * `attempt(op)` runs `op` at once (synchronously: no promise on the fast path); on SQLITE_BUSY it retries
 * with growing pauses for up to `busyTimeout` more, then fails with a `CacheBackendError` that says nothing
 * was written.
 */
export function busyRetry(where: string, busyTimeout: number, isClosed: () => boolean): Attempt {
  async function retry<T>(op: () => T, first: unknown): Promise<T> {
    const deadline = Date.now() + busyTimeout
    let delay = 2
    let last = first
    while (Date.now() < deadline && !isClosed()) {
      await sleep(delay)
      delay = Math.min(delay * 2, 100)
      try {
        return op()
      } catch (error) {
        if (!isBusy(error)) throw error
        last = error
      }
    }
    if (isClosed()) throw new CacheBackendError(`${where} was closed while a write waited for its lock; nothing was written.`, { cause: last })
    throw new CacheBackendError(
      `${where} stayed locked by another connection through two waits of \`busyTimeout\` (${busyTimeout} ms); nothing was written. ` +
        'Another process may hold a long transaction on it; raise `busyTimeout` if that is expected.',
      { cause: last },
    )
  }
  return function attempt<T>(op: () => T): T | Promise<T> {
    try {
      return op()
    } catch (error) {
      if (isBusy(error)) return retry(op, error)
      throw error
    }
  }
}
