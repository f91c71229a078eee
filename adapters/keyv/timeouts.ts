/**
 * Timeouts of the calls to the Keyv store. Each operation (its wait for the key's turn included) and each
 * step of a scan gets `commandTimeout`, watched by one shared timer. An operation that timed out sends
 * nothing more, and a write it had sent holds its keys (`late`) until the store answers it, so that a late
 * answer cannot land after a newer write: later operations on those keys wait for it, within their own timeout.
 */
import type { Milliseconds } from '../../src/duration.js'
import { CacheBackendError, CacheError, showKey } from '../../src/errors.js'

/** One watched call: {@link DeadlineTimer.start} returns it, {@link DeadlineTimer.end} settles it. */
export interface Watch {
  /** `performance.now()` when it expires. */
  readonly deadline: number
  /** Ended, or expired: either way, nothing more may be sent for it. */
  done: boolean
  readonly expire: () => void
}

/**
 * Deadlines of calls that all share one timeout, watched by a single timer instead of a
 * setTimeout/clearTimeout pair per call. Calls start in deadline order, so the pending set (which keeps
 * insertion order) is sorted by deadline: a sweep expires the calls that are due and stops at the first
 * that is not, then sleeps until that one is due. Ending a call is a Set delete; the timer is not touched.
 */
export class DeadlineTimer {
  readonly #pending = new Set<Watch>()
  #timer: NodeJS.Timeout | undefined

  constructor(readonly ms: Milliseconds) {}

  /** Watch a call: `expire` runs once `ms` have passed, unless {@link end} came first. */
  start(expire: () => void): Watch {
    const watch: Watch = { deadline: performance.now() + this.ms, done: false, expire }
    this.#pending.add(watch)
    if (this.#timer === undefined) this.#arm(this.ms)
    return watch
  }

  /** The call answered: true if in time, false if it had already expired. */
  end(watch: Watch): boolean {
    if (watch.done) return false
    watch.done = true
    this.#pending.delete(watch)
    return true
  }

  /** Calls still watched (for tests). */
  get size(): number {
    return this.#pending.size
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#sweep, Math.max(1, Math.ceil(ms)))
    // The store's own socket keeps the process alive while a call is pending; the sweep need not.
    this.#timer.unref()
  }

  readonly #sweep = (): void => {
    this.#timer = undefined
    const now = performance.now()
    for (const watch of this.#pending) {
      if (watch.deadline > now) {
        this.#arm(watch.deadline - now)
        return
      }
      this.#pending.delete(watch)
      watch.done = true
      watch.expire()
    }
  }
}

/** One operation's deadline (none on a `Map`) and the write it is waiting for, if any. */
export interface Op {
  watch: Watch | undefined
  write: { keys: readonly string[]; answer: PromiseLike<unknown> } | undefined
}

/** Thrown inside an operation that timed out when it would go on to call the store; nobody awaits it. */
const ABANDONED = new CacheBackendError('The operation timed out before this call to the Keyv store, which was not sent.')

const noop = (): void => {}
const isThenable = (value: unknown): value is PromiseLike<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function'

/** The operations of one bridge on its store, each within `ms`, and the late writes they left behind. */
export class BoundedCalls {
  /** The store is a `Map`, which answers at once: no timeouts to watch. */
  untimed = false
  readonly #deadlines: DeadlineTimer
  /** Keys whose write timed out and is still unanswered, with the promise that settles when it is. */
  readonly #late = new Map<string, Promise<void>>()

  /**
   * @param ms the timeout of each operation.
   * @param timeoutName the option that set `ms`, named in the timeout's message.
   * @param redact how a store's error is made safe to show.
   */
  constructor(
    readonly ms: Milliseconds,
    readonly timeoutName: string,
    readonly redact: (error: unknown) => Error,
  ) {
    this.#deadlines = new DeadlineTimer(ms)
  }

  /** Run one operation within `ms`. A `Map` answers at once and is not timed. */
  run<T>(op: string, keys: string | readonly string[] | undefined, work: (o: Op) => Promise<T>): Promise<T> {
    if (this.untimed) return work({ watch: undefined, write: undefined })
    return new Promise<T>((resolve, reject) => {
      const o: Op = { watch: undefined, write: undefined }
      const watch = this.#deadlines.start(() => {
        if (o.write !== undefined) this.#markLate(o.write.keys, o.write.answer)
        reject(this.#timeoutError(op, keys))
      })
      o.watch = watch
      work(o).then(
        (value) => {
          if (this.#deadlines.end(watch)) resolve(value)
        },
        (error: unknown) => {
          if (this.#deadlines.end(watch)) reject(error instanceof CacheError ? error : this.redact(error))
        },
      )
    })
  }

  /** Send a call of `o` to the store, unless `o` has timed out: then nobody waits for it, and the store is left alone. */
  send<T>(o: Op, call: () => T): T {
    if (o.watch?.done === true) throw ABANDONED
    return call()
  }

  /** Send a write of `keys`; if `o` times out before the store answers, those keys wait for the answer. */
  async sendWrite(o: Op, keys: readonly string[], call: () => unknown): Promise<void> {
    const answer = this.send(o, call)
    if (!isThenable(answer)) return
    if (o.watch === undefined) return void (await answer)
    o.write = { keys, answer }
    try {
      await answer
    } finally {
      o.write = undefined
    }
  }

  /** The unanswered write of `key` that timed out, if any: the next operation on `key` waits for it. */
  lateWrite(key: string): Promise<void> | undefined {
    return this.#late.size === 0 ? undefined : this.#late.get(key)
  }

  #timeoutError(op: string, keys: string | readonly string[] | undefined): CacheBackendError {
    const key = typeof keys === 'string' ? keys : keys?.[0]
    const what = typeof keys === 'string' || keys?.length === 1 ? ` of key ${showKey(key)}` : key === undefined ? '' : ` of ${keys?.length} keys (the first ${showKey(key)})`
    return new CacheBackendError(
      `The Keyv store did not answer ${op}${what} within ${this.ms} ms (${this.timeoutName}). Check that the store's server is up and not blocked (a lock, a full disk), or raise \`${this.timeoutName}\`.`,
      key === undefined ? {} : { key },
    )
  }

  #markLate(keys: readonly string[], answer: PromiseLike<unknown>): void {
    const settled = Promise.resolve(answer).then(noop, noop)
    for (const key of keys) {
      const before = this.#late.get(key)
      const mark = before === undefined ? settled : Promise.all([before, settled]).then(noop)
      this.#late.set(key, mark)
      void mark.then(() => {
        if (this.#late.get(key) === mark) this.#late.delete(key)
      })
    }
  }
}
