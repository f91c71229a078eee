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
} from '../../src/adapter.js'
import { CacheConfigError } from '../../src/errors.js'
import { parseSize, showBytes } from '../../src/size.js'
import type { MemoryAdapterOptions } from './definition.js'

export type { MemoryAdapterOptions } from './definition.js'

/** Defaults of the memory options (also in their TSDoc). */
export const MEMORY_DEFAULTS = {
  /** 64 MiB: 10,000 entries (the default `threshold`) of 6.5 KiB; fewer of larger values. */
  maxBytes: 64 * 2 ** 20,
} as const

interface Entry {
  value: Payload
  expiresAt: ExpiresAt
  /** Bytes of the key and the value, counted once when the entry is made (0 without a byte bound). */
  size: number
}

/** The bytes an entry is charged: its key's UTF-8 bytes plus its payload's. */
function sizeOf(key: string, value: Payload): number {
  return Buffer.byteLength(key) + (typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength)
}

/** How often expired entries are swept from memory, so that unread entries do not stay until evicted. */
export const MEMORY_PURGE_INTERVAL_MS = 60_000

/** True in a `node:cluster` worker or a PM2 instance: where a memory cache is per worker, and each worker counts on its own copy. */
function inWorker(): boolean {
  return cluster.isWorker || process.env.NODE_APP_INSTANCE !== undefined || process.env.pm_id !== undefined
}

/**
 * One process's memory, bounded by `threshold` entries and `maxBytes` bytes (least recently used entries
 * go first). Not shared: each worker of a cluster has its own copy, so counters and `add` are atomic within
 * one process only.
 *
 * @throws {CacheConfigError} for an invalid `maxBytes`.
 */
export function memoryAdapter(options: MemoryAdapterOptions, context: AdapterContext): CacheAdapter {
  const { now, threshold } = context
  // resolveConfig hands over bytes; a factory called directly may still get '64mb'.
  let maxBytes: number
  try {
    maxBytes = options.maxBytes === undefined ? (threshold === 0 ? 0 : MEMORY_DEFAULTS.maxBytes) : parseSize(options.maxBytes, '`maxBytes`', { option: 'maxBytes' })
  } catch (error) {
    throw new CacheConfigError((error as Error).message, { option: 'maxBytes', cause: error })
  }
  // lru-cache preallocates `max` slots; unbounded means a Map (swept by the purge timer).
  const store: Map<string, Entry> | LRUCache<string, Entry> =
    threshold > 0 || maxBytes > 0
      ? new LRUCache<string, Entry>({
          ...(threshold > 0 ? { max: threshold } : {}),
          // lru-cache refuses a size of 0; an entry of an empty key and value is charged one byte.
          ...(maxBytes > 0 ? { maxSize: maxBytes, sizeCalculation: (e: Entry) => Math.max(1, e.size) } : {}),
        } as LRUCache.Options<string, Entry, unknown>)
      : new Map<string, Entry>()
  /** An entry for `key`, or the error that says it cannot fit (thrown before anything is written). */
  const makeEntry = (key: string, value: Payload, expiresAt: ExpiresAt): Entry => {
    // Without a byte bound nothing reads the size: it is not counted.
    const size = maxBytes > 0 ? sizeOf(key, value) : 0
    if (size > maxBytes) {
      throw new Error(
        `the entry takes ${showBytes(size)} (key and encoded value), more than maxBytes (${showBytes(maxBytes)}): it was not stored, and any value the key had is kept. Raise \`maxBytes\`, or set it to 0 for no byte bound.`,
      )
    }
    return { value, expiresAt, size }
  }
  if (threshold === 0 && maxBytes === 0) {
    context.emit({ type: 'warning', message: 'the memory cache is unbounded (threshold 0 and no maxBytes): expired entries are swept every minute, but live ones grow without limit.' })
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
      store.set(key, makeEntry(key, value, expiresAt))
    },
    setMany(entries: readonly AdapterEntry[]) {
      // Every entry is made (and checked) before any is written: a batch with one too large writes nothing.
      const made = entries.map(({ key, value, expiresAt }) => [key, makeEntry(key, value, expiresAt)] as const)
      for (const [key, e] of made) store.set(key, e)
    },
    add(key, value, expiresAt) {
      if (live(key) !== undefined) return false
      store.set(key, makeEntry(key, value, expiresAt))
      return true
    },
    increment(key, delta, expiresAt) {
      const current = live(key)
      const result = addToPayload(key, current?.value, delta)
      store.set(key, makeEntry(key, String(result), current === undefined ? expiresAt : current.expiresAt))
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
