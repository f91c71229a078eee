/**
 * `inc` on one key, batched per process: calls that arrive while a compare-and-set step for the key is in
 * flight wait, then go together in the next step, each getting its own result (`v+d1`, `v+d1+d2`, ...). Across
 * processes each step is still one compare-and-set, so the sum is exact; within a process, 250 concurrent
 * calls make a few steps instead of 250 rivals for one CAS.
 */
import type { ExpiresAt } from '../../src/adapter.js'

/** One waiting call. */
export interface CounterOp {
  delta: number
  expiresAt: ExpiresAt
  resolve: (value: number) => void
  reject: (error: unknown) => void
}

/** Runs one step for a batch: one outcome per call, a number or the error for that call alone. */
export type ApplyBatch = (fullKey: string, ops: readonly CounterOp[]) => Promise<(number | Error)[]>

export class Counters {
  /** Calls waiting for the step in flight, by key; a key is present while a step runs for it. */
  readonly #waiting = new Map<string, CounterOp[]>()

  constructor(readonly apply: ApplyBatch) {}

  increment(fullKey: string, delta: number, expiresAt: ExpiresAt): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const op = { delta, expiresAt, resolve, reject }
      const waiting = this.#waiting.get(fullKey)
      if (waiting !== undefined) {
        waiting.push(op)
        return
      }
      this.#waiting.set(fullKey, [])
      void this.#run(fullKey, [op])
    })
  }

  async #run(fullKey: string, first: CounterOp[]): Promise<void> {
    let ops = first
    for (;;) {
      try {
        const outcomes = await this.apply(fullKey, ops)
        ops.forEach((op, i) => {
          const outcome = outcomes[i]
          if (typeof outcome === 'number') op.resolve(outcome)
          else op.reject(outcome)
        })
      } catch (error) {
        for (const op of ops) op.reject(error)
      }
      const waiting = this.#waiting.get(fullKey)!
      if (waiting.length === 0) {
        this.#waiting.delete(fullKey)
        return
      }
      ops = waiting.splice(0)
    }
  }
}
