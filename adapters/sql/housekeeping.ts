import type { AdapterEvent } from '../../src/adapter.js'

/** The statements housekeeping runs, each on at most `limit` rows, so that no lock is held for long. */
export interface HousekeepingSteps {
  /** Delete up to `limit` rows expired at `now`; how many went. */
  purge(now: number, limit: number): Promise<number>
  /** The row count, counted no further than `limit`. */
  countUpTo(limit: number): Promise<number>
  /** Delete up to `limit` rows, those that expire soonest first and those that never expire last; how many went. */
  evict(limit: number): Promise<number>
}

export interface HousekeepingOptions {
  now: () => number
  /** Rows the table may hold; 0 means unbounded. */
  threshold: number
  batchSize: number
  /** ms between background passes; 0 means none (purgeExpired() still works). */
  interval: number
  emit: (event: AdapterEvent) => void
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Expired rows purged and the row count bounded, in batches of `batchSize` rows (one short statement each,
 * yielding between them): on an unref'd timer every `interval`, when this process has written about 1% of
 * `threshold` rows since the last check, and on demand.
 */
export class Housekeeping {
  readonly #steps: HousekeepingSteps
  readonly #o: HousekeepingOptions
  readonly #checkEvery: number
  #writes = 0
  #timer: NodeJS.Timeout | undefined
  #background: Promise<void> | undefined
  /** Asked for while a pass ran: one more pass follows, so that the last writes are counted too. */
  #again: boolean | undefined
  #closed = false

  constructor(steps: HousekeepingSteps, options: HousekeepingOptions) {
    this.#steps = steps
    this.#o = options
    this.#checkEvery = Math.min(1_000, Math.max(1, Math.floor(options.threshold / 100)))
  }

  /** Start the timer (once the table is known to be there). */
  start(): void {
    if (this.#o.interval > 0 && this.#timer === undefined && !this.#closed) {
      this.#timer = setInterval(() => this.schedule(true), this.#o.interval).unref()
    }
  }

  /** Count `n` rows written; past the check interval, bound the table in the background. */
  wrote(n: number): void {
    if (this.#o.threshold === 0) return
    this.#writes += n
    if (this.#writes < this.#checkEvery) return
    this.#writes = 0
    this.schedule(false)
  }

  /** A background pass (purge, then bound) unless one is under way. Errors become `'error'` events. */
  schedule(purge: boolean): void {
    if (this.#closed) return
    if (this.#background !== undefined) {
      this.#again = (this.#again ?? false) || purge
      return
    }
    this.#background = (async () => {
      if (purge) await this.purgeAll()
      await this.bound()
    })()
      .catch((error: unknown) => {
        if (!this.#closed) this.#o.emit({ type: 'error', error: error as Error })
      })
      .finally(() => {
        this.#background = undefined
        const again = this.#again
        this.#again = undefined
        if (again !== undefined) this.schedule(again)
      })
  }

  /** Delete every expired row, batch by batch; how many went. */
  async purgeAll(): Promise<number> {
    let total = 0
    while (!this.#closed) {
      const n = await this.#steps.purge(this.#o.now(), this.#o.batchSize)
      total += n
      if (n < this.#o.batchSize) break
      await yieldToLoop()
    }
    return total
  }

  /** Evict rows until the table holds at most `threshold`; how many went. */
  async bound(): Promise<number> {
    const { threshold, batchSize } = this.#o
    if (threshold === 0) return 0
    let total = 0
    while (!this.#closed) {
      const excess = (await this.#steps.countUpTo(threshold + batchSize)) - threshold
      if (excess <= 0) break
      const n = await this.#steps.evict(Math.min(excess, batchSize))
      total += n
      if (n === 0 || excess < batchSize) break
      await yieldToLoop()
    }
    return total
  }

  /** Stop the timer and wait for a pass under way. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.#background
  }
}
