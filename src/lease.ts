import { randomBytes } from 'node:crypto'
import type { Budget } from './budget.js'
import type { Milliseconds } from './duration.js'
import { BOOKKEEPING, type Engine } from './engine.js'

/** The suffix of the key that holds a lease on `key`. */
export const LEASE_SUFFIX = `${BOOKKEEPING}lease`

/**
 * A lease on a key, held by this process: taken with the backend's atomic `add` under a random token, so
 * that exactly one process across every process sharing the backend holds it. It expires by itself after
 * its TTL if the holder dies; while the holder lives it is renewed every third of its TTL, so a factory
 * slower than the TTL does not lose it.
 */
export interface Lease {
  readonly key: string
  readonly token: string
  /**
   * Give the lease up (only if this process still holds it). Never throws. As a command of the call
   * `budget` belongs to: once that call has stopped waiting for the backend, the release is sent in the
   * background instead (and if it fails, the lease expires by its TTL).
   */
  release(budget?: Budget): Promise<void>
}

/**
 * Take the lease on `leaseKey` if nobody holds it, as a command of the call `budget` belongs to.
 * @returns the lease, or `null` if another process (or call) holds it.
 * @throws {CacheBackendError} if the backend fails (the caller decides whether to go on without a lease).
 */
export async function tryLease(engine: Engine, leaseKey: string, ttl: Milliseconds, budget: Budget = engine.budget()): Promise<Lease | null> {
  const token = randomBytes(12).toString('base64url')
  if (!(await engine.add(leaseKey, token, ttl, budget))) return null
  let released = false
  const heartbeat = setInterval(() => {
    void (async () => {
      if (released) return
      // Renew only while still ours; a lease taken over after a long stall is the new holder's.
      const beat = engine.budget()
      if ((await engine.get(leaseKey, beat)) === token && !released) await engine.touch(leaseKey, ttl, beat)
    })().catch(() => {})
  }, Math.max(1, Math.floor(ttl / 3)))
  heartbeat.unref()
  return {
    key: leaseKey,
    token,
    async release(budget) {
      if (released) return
      released = true
      clearInterval(heartbeat)
      // A lease that cannot be released expires by itself after its TTL.
      if (budget !== undefined && budget.spent()) {
        void releaseLease(engine, leaseKey, token, engine.budget()).catch(() => {})
        return
      }
      try {
        await releaseLease(engine, leaseKey, token, budget ?? engine.budget())
      } catch {
        // As above.
      }
    },
  }
}

/**
 * Delete the lease only if it still holds `token`. With an adapter that implements `deleteIfEquals` (an
 * atomic compare-and-delete) this is exact. Otherwise it is a read, a comparison and a delete: the lease
 * could change hands between the read and the delete only if it expired in that instant, which the
 * heartbeat prevents while the holder runs (a holder frozen for longer than the TTL is the one case left,
 * and then the worst outcome is one extra factory run, never a wrong value).
 */
async function releaseLease(engine: Engine, leaseKey: string, token: string, budget: Budget): Promise<void> {
  const { adapter } = engine
  if (adapter?.deleteIfEquals !== undefined) {
    await adapter.deleteIfEquals(engine.fullKey(leaseKey), engine.encode(token), budget.timeout('deleteIfEquals', leaseKey))
    return
  }
  if ((await engine.get(leaseKey, budget)) === token) await engine.delete(leaseKey, budget)
}

/** Sleep `ms`. The timer keeps the process alive: a waiter's caller is awaiting it. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Exponential backoff with jitter, so waiters in many processes do not poll in step. */
export function backoff(attempt: number, first = 5, max = 200): number {
  const base = Math.min(max, first * 1.6 ** attempt)
  return Math.round(base * (0.75 + Math.random() * 0.5))
}
