/**
 * The server's own limit on each statement of cachekit's: 80% of `commandTimeout`, so that the server gives
 * up on a statement stuck behind a lock before the client stops waiting for it. Were the server's limit the
 * client's, a lock released between the two deadlines would let a write whose caller was told it failed (an
 * `inc`, say) land late, and be counted twice when the caller tried again.
 */
export function serverStatementTimeout(commandTimeout: number): number {
  return Math.max(1, Math.floor(commandTimeout * 0.8))
}

/**
 * The server's limit for a write sent with `left` ms before its client-side deadline (a command given less
 * than the whole `commandTimeout`): 80% of what is left, as above, so that the server still gives up first.
 * `undefined` when that is under {@link MIN_SHORT_MS}: the write is then not sent at all (failing before
 * sending is the one way to be sure it never lands late).
 */
export function shortStatementTimeout(left: number): number | undefined {
  const ms = Math.floor(left * 0.8)
  return ms < MIN_SHORT_MS ? undefined : ms
}

/** The least server limit a short write is sent with. */
export const MIN_SHORT_MS = 5

/** The error of a command given `given` ms (the rest of its call's deadline) that it did not get an answer within. */
export function shortTimeoutError(where: string, control: CallControl, given: number): Error {
  const n = Math.max(0, Math.round(given))
  const deadline = `the ${n} ms left of its call's deadline (operationTimeout, else commandTimeout)`
  if (control.phase === 'acquire') return new Error(`${where}: no connection within ${deadline}`)
  return new Error(`${where} did not answer within ${deadline}`)
}

/** The error of a write not sent because too little was left of its call's deadline (see {@link shortStatementTimeout}). */
export function notSentError(where: string, left: number): Error {
  return new Error(
    `${where}: a write was not sent: only ${Math.max(0, Math.round(left))} ms were left of its call's deadline (operationTimeout, else commandTimeout), ` +
      'too little for the server to give up on it before cachekit stops waiting',
  )
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
  /** `performance.now()` at which the call fails. */
  readonly deadline: number
  /** The call was given less than the whole timeout (what was left of its public call's deadline). */
  readonly short: boolean
}

/** Sweeps per timeout: a call fails between `ms` and `ms * (1 + 1/SWEEPS)` after it started. */
const SWEEPS = 8

/**
 * One timeout for every call of a backend, watched by one interval rather than a timer per call. Calls with
 * the whole timeout start in deadline order, so their pending set (insertion-ordered) is sorted: a sweep
 * fails those that are due and stops at the first that is not. Calls given less (the rest of their public
 * call's deadline, see src/budget.ts) are kept apart and all looked at on each sweep: they are few, only the
 * later commands of a `getOrSet` or memoized call. The interval runs only while calls are pending.
 */
export class CallTimeouts {
  readonly #pending = new Set<Watched>()
  readonly #short = new Set<Watched>()
  #timer: NodeJS.Timeout | undefined

  constructor(readonly ms: number) {}

  /**
   * Run `call`; the promise settles with its outcome, or rejects with `timeoutError()` once `ms` (or `timeout`,
   * if less) have passed (and then runs the call's `onTimeout`).
   */
  run<T>(call: (control: CallControl) => Promise<T>, timeoutError: (control: CallControl) => Error, timeout?: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const short = timeout !== undefined && timeout < this.ms
      const deadline = performance.now() + (short ? timeout : this.ms)
      const control: CallControl = { done: false, onTimeout: undefined, phase: 'acquire', deadline, short }
      const set = short ? this.#short : this.#pending
      const watched: Watched = {
        deadline,
        fail: () => {
          ;(control as { done: boolean }).done = true
          reject(timeoutError(control))
          control.onTimeout?.()
        },
      }
      set.add(watched)
      if (this.#timer === undefined) this.#timer = setInterval(this.#sweep, Math.max(1, Math.ceil(this.ms / SWEEPS))).unref()
      const settle = () => {
        ;(control as { done: boolean }).done = true
        set.delete(watched)
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
    return this.#pending.size + this.#short.size
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
    for (const w of this.#short) {
      if (w.deadline > now) continue
      this.#short.delete(w)
      w.fail()
    }
    if (this.size === 0) this.stop()
  }
}
