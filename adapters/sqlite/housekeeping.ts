/** Background work: purging expired rows, and keeping the table at `threshold` rows, in small steps. */
import type { AdapterEvent } from '../../src/adapter.js'
import type { Attempt } from './busy.js'
import { isBusy } from './driver.js'
import type { Statements, Transactions } from './statements.js'

export interface HousekeepingContext {
  statements: () => Statements
  transactions: () => Transactions
  attempt: Attempt
  isClosed: () => boolean
  now: () => number
  emit: (event: AdapterEvent) => void
  /** The most rows to keep; 0 for no bound. */
  threshold: number
  /** The most rows one step deletes. */
  batchSize: number
  /** Work of its own after each background pass (trimming the memory tier's change log). */
  after?: () => void
}

export interface Housekeeping {
  /** Count `n` rows written by this process; every `checkEvery` of them, trim to the bound. */
  wrote(n: number): void
  /** Delete every expired row, in batches that yield to the event loop; how many were deleted. */
  purgeAll(): Promise<number>
  /** Purge, then trim to the bound, every `interval` ms on an unref'd timer (none for 0). */
  start(interval: number): void
  /** Stop the timer and wait for a pass under way. */
  stop(): Promise<void>
}

const yieldToEventLoop = () => new Promise((r) => setImmediate(r))

export function housekeeping(c: HousekeepingContext): Housekeeping {
  const { threshold, batchSize, emit } = c
  // Counting rows costs a scan, so the bound is checked every 1% of `threshold` writes by this process.
  const checkEvery = Math.min(1_000, Math.max(1, Math.floor(threshold / 100)))
  let writesSinceCheck = 0
  let background: Promise<unknown> | undefined
  let timer: NodeJS.Timeout | undefined

  /**
   * Keep the table at `threshold` rows. Rows leave in order of expiry (expired ones first; with one TTL for
   * all, the least recently written), then rows that never expire, the first inserted first. Runs every
   * `checkEvery` writes of this process and on the purge timer, deleting at most `batchSize` rows per
   * step. The rowid span is an upper bound of the row count that costs one index lookup, so the count
   * itself (a scan) is only taken when the table may be over.
   */
  function enforceBound(): number {
    const s = c.statements()
    if (threshold === 0 || (s.rowidSpan.get() as number) <= threshold) return 0
    const excess = (s.count.get() as number) - threshold
    if (excess <= 0) return 0
    const removed = c.transactions().evict(Math.min(excess, batchSize))
    // More to remove than one step (a large setMany, a lowered threshold): go on in the background.
    if (removed < excess) scheduleBackground()
    return removed
  }

  /** Purge, then trim to `threshold`, step by step, unless a pass is already under way. */
  function scheduleBackground(): void {
    if (background !== undefined || c.isClosed()) return
    background = backgroundPass()
      .catch((error: unknown) => emit({ type: 'error', error: error as Error }))
      .finally(() => (background = undefined))
  }

  async function purgeAll(): Promise<number> {
    let total = 0
    while (!c.isClosed()) {
      const n = await c.attempt(() => c.statements().purgeBatch.run(c.now(), batchSize).changes)
      total += n
      if (n < batchSize) break
      await yieldToEventLoop()
    }
    return total
  }

  async function backgroundPass(): Promise<void> {
    await purgeAll()
    while (!c.isClosed() && threshold > 0 && (await c.attempt(enforceBound)) > 0) await yieldToEventLoop()
    if (c.after !== undefined && !c.isClosed()) await c.attempt(c.after)
  }

  return {
    wrote(n) {
      if (threshold === 0) return
      writesSinceCheck += n
      if (writesSinceCheck < checkEvery) return
      writesSinceCheck = 0
      try {
        enforceBound()
      } catch (error) {
        // The write itself succeeded; a failed eviction is retried at the next check.
        writesSinceCheck = checkEvery
        if (!isBusy(error)) emit({ type: 'error', error: error as Error })
      }
    },
    purgeAll,
    start(interval) {
      if (interval <= 0) return
      timer = setInterval(scheduleBackground, interval)
      timer.unref()
    },
    async stop() {
      clearInterval(timer)
      await background
    },
  }
}
