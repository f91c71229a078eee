import type { Milliseconds } from './duration.js'
import { CacheBackendError, showKey, type CacheError } from './errors.js'

/**
 * The deadline of one public call that sends several commands (a `getOrSet`, a memoized call), shared by
 * all of them so that their timeouts do not add up. Only time spent waiting for the backend counts: the
 * factory's (the user's own work) and the sleeps between polls of another process's lease do not (see
 * {@link Budget.offClock}).
 *
 * The first command that fails, or a deadline that has passed, stops the call: the Cache sends nothing more
 * for it, and what it would have sent behaves as after that failure (a read is a miss, a write `false`,
 * `add` throws), without a second `'error'`.
 *
 * Cheap on the hot path: without a deadline (a local backend, no `operationTimeout`) it never reads the
 * clock; with one, it reads the clock once when the call starts and not again for its first command.
 * @internal
 */
export class Budget {
  /** `performance.now()` at which the deadline passes; `Infinity` without one. */
  #end: number
  #first = true
  /** The error that stopped the call (a backend failure, or the deadline), once it has stopped. */
  stopped: CacheError | undefined

  /**
   * @param ms the deadline, or `undefined` for none.
   * @param option the option it comes from, named in the error when it passes.
   */
  constructor(
    readonly ms: Milliseconds | undefined,
    readonly option: string,
  ) {
    this.#end = ms === undefined ? Infinity : performance.now() + ms
  }

  /**
   * What the next command may take, for the adapter: `undefined` means a whole command timeout (the first
   * command of a call, which starts with all of it, or a call without a deadline).
   * @throws {CacheBackendError} if the call has stopped or its deadline has passed: the command is not sent.
   */
  timeout(op: string, key: string | undefined): Milliseconds | undefined {
    if (this.stopped !== undefined) throw this.stopped
    if (this.#first) {
      this.#first = false
      return undefined
    }
    if (this.#end === Infinity) return undefined
    const left = this.#end - performance.now()
    if (left > 0) return left
    throw new CacheBackendError(
      `${op}${key === undefined ? '' : ` ${showKey(key)}`} was not sent: its call has waited ${this.ms} ms (\`${this.option}\`) for the backend in all, ` +
        'so it goes on without the cache. Raise `operationTimeout` if the backend is slow but working.',
      key === undefined ? {} : { key },
    )
  }

  /** True if the next command would not be sent (the call stopped, or its deadline passed). Reads the clock. */
  spent(): boolean {
    return this.stopped !== undefined || this.#end - performance.now() <= 0
  }

  /** Stop the call at `error` (the first one counts). */
  stop(error: CacheError): void {
    this.stopped ??= error
  }

  /** Run `work` off the clock: its time (the factory's, a sleep's) does not count against the deadline. */
  async offClock<T>(work: () => T | Promise<T>): Promise<T> {
    if (this.#end === Infinity) return work()
    const start = performance.now()
    try {
      return await work()
    } finally {
      this.#end += performance.now() - start
    }
  }
}
