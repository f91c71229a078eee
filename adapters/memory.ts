import cluster from 'node:cluster'
import { LRUCache } from 'lru-cache'
import {
  addToPayload,
  samePayload,
  type AdapterContext,
  type AdapterEntry,
  type CacheAdapter,
  type ExpiresAt,
  type Payload,
} from '../src/adapter.js'

/** The memory backend has no options of its own; `threshold` bounds it. */
export type MemoryAdapterOptions = Record<string, never>

interface Entry {
  value: Payload
  expiresAt: ExpiresAt
}

/** How often expired entries are swept from memory, so that unread entries do not stay until evicted. */
export const MEMORY_PURGE_INTERVAL_MS = 60_000

/** True in a `node:cluster` worker or a PM2 instance: where a memory cache is the seeds' bug. */
function inWorker(): boolean {
  return cluster.isWorker || process.env.NODE_APP_INSTANCE !== undefined || process.env.pm_id !== undefined
}

/**
 * One process's memory, bounded by `threshold` (least recently used entries go first). Not shared: each
 * worker of a cluster has its own copy, so counters and `add` are atomic within one process only.
 */
export function memoryAdapter(_options: MemoryAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now, threshold } = context
  // lru-cache preallocates `max` slots; unbounded means a Map (swept by the purge timer).
  const store: Map<string, Entry> | LRUCache<string, Entry> =
    threshold > 0 ? new LRUCache<string, Entry>({ max: threshold }) : new Map<string, Entry>()
  if (threshold === 0) {
    context.emit({ type: 'warning', message: 'the memory cache is unbounded (threshold 0): expired entries are swept every minute, but live ones grow without limit.' })
  }
  if (inWorker()) {
    context.emit({
      type: 'warning',
      message:
        'a memory cache in a cluster worker or PM2 instance: each worker has its own copy, so counters, add and getOrSet are not shared. Use a shared backend (sqlite, filesystem or redis).',
    })
  }

  const live = (key: string): Entry | undefined => {
    const entry = store.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt !== null && entry.expiresAt <= now()) {
      store.delete(key)
      return undefined
    }
    return entry
  }

  const purgeExpired = (): number => {
    const t = now()
    let removed = 0
    for (const [key, entry] of store.entries()) {
      if (entry.expiresAt !== null && entry.expiresAt <= t) {
        store.delete(key)
        removed++
      }
    }
    return removed
  }

  const timer = setInterval(purgeExpired, MEMORY_PURGE_INTERVAL_MS)
  timer.unref()

  return {
    name: 'memory',
    capabilities: { shared: false, atomic: true, realClock: false },
    get: (key) => live(key)?.value,
    getMany: (keys) => keys.map((key) => live(key)?.value),
    set(key, value, expiresAt) {
      store.set(key, { value, expiresAt })
    },
    setMany(entries: readonly AdapterEntry[]) {
      for (const { key, value, expiresAt } of entries) store.set(key, { value, expiresAt })
    },
    add(key, value, expiresAt) {
      if (live(key) !== undefined) return false
      store.set(key, { value, expiresAt })
      return true
    },
    increment(key, delta, expiresAt) {
      const entry = live(key)
      const result = addToPayload(key, entry?.value, delta)
      store.set(key, { value: String(result), expiresAt: entry === undefined ? expiresAt : entry.expiresAt })
      return result
    },
    delete: (key) => live(key) !== undefined && store.delete(key),
    deleteMany(keys) {
      let n = 0
      for (const key of keys) if (live(key) !== undefined && store.delete(key)) n++
      return n
    },
    has: (key) => live(key) !== undefined,
    expiresAt: (key) => live(key)?.expiresAt,
    deleteIfEquals(key, value) {
      const entry = live(key)
      return entry !== undefined && samePayload(entry.value, value) && store.delete(key)
    },
    touch(key, expiresAt) {
      const entry = live(key)
      if (entry === undefined) return false
      entry.expiresAt = expiresAt
      return true
    },
    clear(prefix) {
      if (prefix === '') return store.clear()
      for (const key of [...store.keys()]) if (key.startsWith(prefix)) store.delete(key)
    },
    *keys(prefix) {
      const t = now()
      for (const [key, entry] of [...store.entries()]) {
        if (key.startsWith(prefix) && (entry.expiresAt === null || entry.expiresAt > t)) yield key
      }
    },
    purgeExpired,
    close() {
      clearInterval(timer)
      store.clear()
    },
  }
}
