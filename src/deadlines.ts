import type { Milliseconds } from './duration.js'

/** One watched call: {@link Deadlines.start} returns it, {@link Deadlines.end} settles it. */
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
export class Deadlines {
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
