/**
 * The memory tier's store: per full key, the payload the backend holds, its decoded value once a read has
 * made it, and until when it may be served. Bounded by entries and by bytes (the payloads' sizes), least
 * recently used out first. Fills are guarded: see {@link TierStore.ticket}.
 */
import type { Payload } from '../adapter.js'

/** An entry in the tier. */
export interface TierEntry {
  readonly payload: Payload
  /** Until when (the cache's clock, ms) this entry may be served: its backend expiry or the tier's `ttl`, the sooner. */
  readonly until: number
  readonly bytes: number
  /** 0: not decoded yet; 1: `value` is the shared, frozen value; 2: each hit decodes a copy of `payload`. */
  state: 0 | 1 | 2
  value: unknown
}

/** Counters of the tier, for `stats().l1`. */
export interface TierCounters {
  hits: number
  misses: number
  invalidations: number
  flushes: number
}

/** The size a payload counts for: a string's UTF-16 length twice (what V8 may hold), bytes as they are. */
function sizeOf(payload: Payload): number {
  return typeof payload === 'string' ? payload.length * 2 : payload.byteLength
}

/**
 * For the fill race's control test only (test/l1.test.ts): with `unguarded` true a fill is stored whatever
 * changed since its ticket, which the test shows leaves an old value in memory. Never set it elsewhere.
 * @internal
 */
export const fillGuard = { unguarded: false }

export class TierStore {
  readonly #entries = new Map<string, TierEntry>()
  #bytes = 0
  /** Counts every invalidation, flush and own write: a fill's ticket is its value when the read was sent. */
  #generation = 0
  /** A fill whose ticket is below this is refused (a flush happened while it read). */
  #floor = 0
  /** The generation at which each key was last changed, kept while any fill is out. */
  readonly #changed = new Map<string, number>()
  #fillsOut = 0
  readonly counters: TierCounters = { hits: 0, misses: 0, invalidations: 0, flushes: 0 }

  constructor(
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** The live entry at `key`, or `undefined`; an entry past its `until` is dropped. Moves it to most recent. */
  get(key: string, now: number): TierEntry | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.until <= now) {
      this.#drop(key, entry)
      return undefined
    }
    // Most recently used last: the Map's order is the eviction order.
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return entry
  }

  /** The entry at `key` as it is, without moving it or checking its time. */
  peek(key: string): TierEntry | undefined {
    return this.#entries.get(key)
  }

  /**
   * Taken before a read is sent to the backend. The value read may be stored with {@link fill} only if
   * nothing changed the key (an invalidation, a flush, a write of this process) between the ticket and the
   * fill: else the read may have returned what the change replaced, and storing it would keep the old value
   * until its TTL (the classic tiered-cache race).
   */
  ticket(): number {
    this.#fillsOut++
    return this.#generation
  }

  /** Store what a read returned, unless a change since `ticket` may have made it old. Ends the ticket. */
  fill(key: string, ticket: number, payload: Payload | undefined, until: number, now: number): void {
    const fresh = fillGuard.unguarded || (ticket >= this.#floor && (this.#changed.get(key) ?? -1) <= ticket)
    this.#endTicket()
    if (!fresh || payload === undefined || until <= now) return
    this.#put(key, payload, until)
  }

  /** End a ticket without storing anything (the read failed). */
  abandon(): void {
    this.#endTicket()
  }

  /** A write of this process resolved: hold what it stored (nothing, when `payload` is undefined). */
  wrote(key: string, payload: Payload | undefined, until: number, now: number): void {
    this.#mark(key)
    const old = this.#entries.get(key)
    if (old !== undefined) this.#drop(key, old)
    if (payload !== undefined && until > now) this.#put(key, payload, until)
  }

  /** Another process (or this one, through the channel) changed `key`: drop it, and refuse fills that raced it. */
  invalidate(key: string): void {
    this.#mark(key)
    const old = this.#entries.get(key)
    if (old !== undefined) {
      this.#drop(key, old)
      this.counters.invalidations++
    }
  }

  /** Forget everything, and refuse every fill that is out. */
  flush(): void {
    this.#generation++
    this.#floor = this.#generation
    this.#changed.clear()
    if (this.#entries.size > 0) this.counters.flushes++
    this.#entries.clear()
    this.#bytes = 0
  }

  /** Drop every entry under `prefix` (all when empty), and refuse every fill that is out. */
  flushPrefix(prefix: string): void {
    if (prefix === '') {
      this.flush()
      return
    }
    this.#generation++
    this.#floor = this.#generation
    this.#changed.clear()
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) this.#drop(key, entry)
  }

  #mark(key: string): void {
    this.#generation++
    // Only a fill that is out can be refused: with none, there is nothing to remember.
    if (this.#fillsOut > 0) this.#changed.set(key, this.#generation)
  }

  #endTicket(): void {
    this.#fillsOut--
    if (this.#fillsOut <= 0) {
      this.#fillsOut = 0
      this.#changed.clear()
    }
  }

  #put(key: string, payload: Payload, until: number): void {
    const bytes = sizeOf(payload) + key.length * 2
    if (bytes > this.maxBytes) return
    const old = this.#entries.get(key)
    if (old !== undefined) this.#drop(key, old)
    this.#entries.set(key, { payload, until, bytes, state: 0, value: undefined })
    this.#bytes += bytes
    while (this.#entries.size > this.maxEntries || this.#bytes > this.maxBytes) {
      const first = this.#entries.keys().next()
      if (first.done === true) break
      this.#drop(first.value, this.#entries.get(first.value) as TierEntry)
    }
  }

  #drop(key: string, entry: TierEntry): void {
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }
}

/**
 * Freeze `value` deeply if freezing protects all of it (plain objects, arrays, primitives) and return true;
 * false, changing nothing, when it holds something a freeze cannot make read-only (a Map, Set, Date, typed
 * array or class instance): such a value is returned as a copy on each hit.
 */
export function freezeDeep(value: unknown): boolean {
  if (!freezable(value)) return false
  freeze(value)
  return true
}

function freezable(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (Array.isArray(value)) return value.every(freezable)
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return false
  for (const key of Object.keys(value)) if (!freezable((value as Record<string, unknown>)[key])) return false
  return true
}

function freeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return
  for (const item of Array.isArray(value) ? value : Object.values(value)) freeze(item)
  Object.freeze(value)
}
