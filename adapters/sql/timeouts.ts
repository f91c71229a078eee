/**
 * The server's own limit on each statement of cachekit's: 80% of `commandTimeout`, so that the server gives
 * up on a statement stuck behind a lock before the client stops waiting for it. Were the server's limit the
 * client's, a lock released between the two deadlines would let a write whose caller was told it failed (an
 * `inc`, say) land late, and be counted twice when the caller tried again.
 */
export function serverStatementTimeout(commandTimeout: number): number {
  return Math.max(1, Math.floor(commandTimeout * 0.8))
}

/** A call being watched: its deadline, and how to fail it. */
interface Watched {
  readonly deadline: number
  readonly fail: () => void
}

/** What a watched call sees of its watch. */
export interface CallControl {
  /** True once the call has timed out or settled: a connection it gets now must be given back unused. */
  readonly done: boolean
  /** Runs if the call times out while under way, e.g. to drop a connection that stopped answering. */
  onTimeout: (() => void) | undefined
  /** Where the call is, for the timeout's message: waiting for a connection, or for the server's answer. */
  phase: 'acquire' | 'query'
}

/** Sweeps per timeout: a call fails between `ms` and `ms * (1 + 1/SWEEPS)` after it started. */
const SWEEPS = 8

/**
 * One timeout for every call of a backend, watched by one interval rather than a timer per call. Calls share
 * the timeout, so they start in deadline order and the pending set (insertion-ordered) is sorted: a sweep
 * fails those that are due and stops at the first that is not. The interval runs only while calls are pending.
 */
export class CallTimeouts {
  readonly #pending = new Set<Watched>()
  #timer: NodeJS.Timeout | undefined

  constructor(readonly ms: number) {}

  /**
   * Run `call`; the promise settles with its outcome, or rejects with `timeoutError()` once `ms` have passed
   * (and then runs the call's `onTimeout`).
   */
  run<T>(call: (control: CallControl) => Promise<T>, timeoutError: (control: CallControl) => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const control: CallControl = { done: false, onTimeout: undefined, phase: 'acquire' }
      const watched: Watched = {
        deadline: performance.now() + this.ms,
        fail: () => {
          ;(control as { done: boolean }).done = true
          reject(timeoutError(control))
          control.onTimeout?.()
        },
      }
      this.#pending.add(watched)
      if (this.#timer === undefined) this.#timer = setInterval(this.#sweep, Math.max(1, Math.ceil(this.ms / SWEEPS))).unref()
      const settle = () => {
        ;(control as { done: boolean }).done = true
        this.#pending.delete(watched)
      }
      call(control).then(
        (value) => {
          if (control.done) return
          settle()
          resolve(value)
        },
        (error: unknown) => {
          if (control.done) return
          settle()
          reject(error as Error)
        },
      )
    })
  }

  /** Calls still watched, for tests. */
  get size(): number {
    return this.#pending.size
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  readonly #sweep = (): void => {
    const now = performance.now()
    for (const w of this.#pending) {
      if (w.deadline > now) break
      this.#pending.delete(w)
      w.fail()
    }
    if (this.#pending.size === 0) this.stop()
  }
}
