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
  /** Read since it was last passed over for eviction (see `#evict`). */
  used: boolean
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

/** The most keys remembered as changed while reads and writes are out (see `#mark`). */
const CHANGED_LIMIT = 10_000

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
    // A mark, not a move: moving an entry to the Map's end on every hit costs more than the hit.
    entry.used = true
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

  /** Nothing changed `key` since `ticket` was taken: what was read (or written) then is still the latest. */
  #unchangedSince(key: string, ticket: number): boolean {
    return fillGuard.unguarded || (ticket >= this.#floor && (this.#changed.get(key) ?? -1) <= ticket)
  }

  /**
   * Store what a read returned, unless a change since `ticket` may have made it old. Ends the ticket. A read
   * that found nothing (or an expired or too large value) drops what was held: a later read must not return
   * something older than what this one answered.
   */
  fill(key: string, ticket: number, payload: Payload | undefined, until: number, now: number): void {
    const fresh = this.#unchangedSince(key, ticket)
    this.#endTicket()
    if (!fresh) return
    const old = this.#entries.get(key)
    if (old !== undefined) this.#drop(key, old)
    if (payload === undefined || until <= now) return
    this.#put(key, payload, until)
  }

  /** End a ticket without storing anything (the read or write failed), or after a write's `wrote`. */
  abandon(): void {
    this.#endTicket()
  }

  /**
   * A write of this process, sent when `ticket` was taken, resolved: hold what it stored (nothing, when
   * `payload` is undefined), unless another change to `key` was heard of while it was under way. That change
   * may be newer than this write (another process wrote after it, and the announcement came before this
   * write's answer): then the key is dropped, and the next read asks the backend. Does not end the ticket.
   */
  wrote(key: string, payload: Payload | undefined, until: number, now: number, ticket: number): void {
    const fresh = this.#unchangedSince(key, ticket)
    this.#mark(key)
    const old = this.#entries.get(key)
    if (old !== undefined) this.#drop(key, old)
    if (fresh && payload !== undefined && until > now) this.#put(key, payload, until)
  }

  /** Another process (or this one, where the channel cannot tell its own writes apart) changed `key`: drop it, and refuse fills that raced it. */
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
    if (this.#fillsOut === 0) return
    this.#changed.set(key, this.#generation)
    // Reads always out on a busy server never let the map empty: past a bound, refuse every fill that is out
    // instead (as a flush does, without dropping what is held) and start again.
    if (this.#changed.size > CHANGED_LIMIT) {
      this.#floor = this.#generation + 1
      this.#generation++
      this.#changed.clear()
    }
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
    this.#entries.set(key, { payload, until, bytes, state: 0, value: undefined, used: false })
    this.#bytes += bytes
    if (this.#entries.size > this.maxEntries || this.#bytes > this.maxBytes) this.#evict(key)
  }

  /**
   * Down to the bounds, oldest first, with a second chance (CLOCK): an entry read since it was last passed
   * over goes to the back, unmarked, instead of out. So entries that are read stay, as in an LRU, without a
   * hit paying for a move. The entry just stored (`keep`) is never the one evicted for itself.
   */
  #evict(keep: string): void {
    let passes = 0
    while ((this.#entries.size > this.maxEntries || this.#bytes > this.maxBytes) && this.#entries.size > 1) {
      const first = this.#entries.entries().next()
      if (first.done === true) break
      const [key, entry] = first.value
      if (key !== keep && (!entry.used || passes > this.#entries.size)) {
        this.#drop(key, entry)
        continue
      }
      entry.used = false
      this.#entries.delete(key)
      this.#entries.set(key, entry)
      passes++
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
  try {
    if (!freezable(value, new Set())) return false
    freeze(value)
    return true
  } catch {
    // Deeper than the stack allows: returned as a copy on each hit, as a value that cannot be frozen.
    return false
  }
}

/** Plain objects and arrays all the way down; a cycle (the v8 serializer keeps them) is followed once. */
function freezable(value: unknown, seen: Set<object>): boolean {
  if (typeof value !== 'object' || value === null) return true
  if (seen.has(value)) return true
  seen.add(value)
  if (Array.isArray(value)) return value.every((item) => freezable(item, seen))
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return false
  for (const key of Object.keys(value)) if (!freezable((value as Record<string, unknown>)[key], seen)) return false
  return true
}

/** Freeze every object in `value`; a frozen one is not entered again, so a cycle ends. */
function freeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return
  Object.freeze(value)
  for (const item of Array.isArray(value) ? value : Object.values(value)) freeze(item)
}
