/**
 * The memory tier (`l1`): a bounded store in this process in front of a shared backend, kept coherent
 * through the backend's invalidation channel. It is itself an adapter, so everything built on a cache
 * (getOrSet and its lease, memoize, tags, HTTP, sessions) reads through it, and the conformance suite
 * runs over it as over any backend. The rules (docs/tiered.md):
 * - a read is answered from memory only while the channel is up, and only until the entry's backend expiry
 *   or `l1.ttl`, whichever is sooner; without a channel (keyv), by `l1.ttl` alone;
 * - every write goes to the backend first; once it resolves, this process holds what it wrote (its own
 *   writes are read back at once) or drops the key (`inc`, `touch`, `delete`: the backend decides);
 * - atomic operations (`add`, `increment`, `deleteIfEquals`) never answer from memory;
 * - a fill (a miss read from the backend) is stored only if nothing changed the key since the read was
 *   sent (see `TierStore.ticket`), so a read racing an invalidation never keeps the old value;
 * - when the channel goes down the tier is flushed and bypassed until it is back, with an `'l1'` event.
 */
import type { AdapterEntry, Awaitable, CacheAdapter, ExpiresAt, InvalidationChannel, Payload } from '../adapter.js'
import type { Milliseconds } from '../duration.js'
import type { L1Settings } from './options.js'
import { TierStore, type TierEntry } from './store.js'

/** What the tier reports to its cache. */
export interface TierHooks {
  now: () => number
  /** The cache's key prefix: the channel listens to changes under it. */
  prefix: string
  /** The channel went down (the tier is bypassed) or came back. */
  onState(up: boolean, reason: string): void
  warn(message: string): void
}

/** `stats().l1`. */
export interface L1Stats {
  hits: number
  misses: number
  entries: number
  bytes: number
  invalidations: number
  flushes: number
  /** False while the tier is bypassed (its channel is down or not up yet). */
  active: boolean
  /** How this backend tells the tier of other processes' writes: pushed, read on a timer, or none (by `l1.ttl` only). */
  channel: 'push' | 'poll' | 'none'
}

/** The memory tier as its cache sees it, beside the adapter it is. */
export interface Tier {
  readonly settings: L1Settings
  /** The live, decoded entry for a full key while the tier is in use, counted as a hit; else `undefined` (not counted). */
  lookup(key: string): TierEntry | undefined
  /** The entry for a full key, not counted and not checked for expiry: to keep the value a read just decoded. */
  peek(key: string): TierEntry | undefined
  /** The backend's own answer for a full key, around the tier (a session read: another worker's login must show at once). */
  fresh(key: string, timeout?: Milliseconds): Awaitable<Payload | undefined>
  stats(): L1Stats
}

/** How long a fresh `ready()` waits for the channel to come up before the cache goes on without the tier. */
const CHANNEL_START_WAIT_MS = 2_000

export interface TieredAdapter extends CacheAdapter {
  readonly tier: Tier
}

/** Wrap a shared backend in the memory tier. */
export function tieredAdapter(inner: CacheAdapter, settings: L1Settings, hooks: TierHooks): TieredAdapter {
  const { now } = hooks
  const store = new TierStore(settings.threshold, settings.maxBytes)
  const ttl = settings.ttl
  const channel: InvalidationChannel | undefined = inner.invalidations?.(hooks.prefix, { staleness: settings.staleness })
  /** The tier answers reads only while this is true: with a channel, while it is up. */
  let up = channel === undefined
  let started: Promise<void> | undefined
  /** The channel has been up once: from then on, its going down and coming back are reported. */
  let wasUp = false
  let startFailureSaid = false
  let closed = false
  const counters = store.counters
  const check = channel?.check === undefined ? undefined : channel.check.bind(channel)

  if (channel === undefined) {
    hooks.warn(
      `l1 on the ${inner.name} backend: it has no channel to tell this process of other processes' writes, so a value another process ` +
        `changed may be read from memory for up to l1.ttl (${ttl} ms). Lower l1.ttl to bound it, or use a backend with a channel (Redis, SQLite).`,
    )
  }

  const until = (expiresAt: ExpiresAt, t: number): number => Math.min(expiresAt ?? Infinity, t + ttl)

  /** Bytes that are a view of a larger buffer (a driver's socket chunk) are copied: held, they would keep it all alive. */
  const own = (payload: Payload): Payload =>
    typeof payload === 'string' || payload.byteLength === payload.buffer.byteLength ? payload : Uint8Array.prototype.slice.call(payload)

  const fetchEntry = async (key: string, timeout?: Milliseconds): Promise<{ value: Payload; expiresAt: ExpiresAt } | undefined> => {
    if (inner.getEntry !== undefined) return inner.getEntry(key, timeout)
    const [value, expiresAt] = await Promise.all([inner.get(key, timeout), inner.expiresAt(key)])
    if (value === undefined || expiresAt === undefined) return undefined
    return { value, expiresAt }
  }

  /** Read `key` from the backend and keep it, unless a change raced the read. */
  const readThrough = async (key: string, timeout?: Milliseconds): Promise<Payload | undefined> => {
    const ticket = store.ticket()
    let entry: { value: Payload; expiresAt: ExpiresAt } | undefined
    try {
      entry = await fetchEntry(key, timeout)
    } catch (error) {
      store.abandon()
      throw error
    }
    const t = now()
    if (up) store.fill(key, ticket, entry === undefined ? undefined : own(entry.value), entry === undefined ? 0 : until(entry.expiresAt, t), t)
    else store.abandon()
    return entry?.value
  }

  /** The write that `write` is running: its ticket, taken before it was sent. */
  let writing = 0

  /** After a write resolved: hold what it stored, or drop the key (see `TierStore.wrote`). */
  const wrote = (key: string, payload: Payload | undefined, expiresAt: ExpiresAt): void => {
    const t = now()
    store.wrote(key, up ? payload : undefined, payload === undefined ? 0 : until(expiresAt, t), t, writing)
  }

  /**
   * Run a write; on success record it with `after`, on failure drop the keys (their state is unknown). A
   * ticket is taken before the write is sent, so that a change heard of while it is under way (possibly a
   * newer write of another process) makes this process drop the key rather than hold its own, older value.
   */
  const write = <R>(keys: readonly string[], run: () => R | Promise<R>, after: (result: R) => void): R | Promise<R> => {
    const ticket = store.ticket()
    const finish = (r: R): R => {
      writing = ticket
      try {
        after(r)
      } finally {
        store.abandon()
      }
      return r
    }
    const fail = (error: unknown): never => {
      for (const key of keys) store.wrote(key, undefined, 0, 0, ticket)
      store.abandon()
      throw error
    }
    let result: R | Promise<R>
    try {
      result = run()
    } catch (error) {
      return fail(error)
    }
    if (result instanceof Promise) return result.then(finish, fail)
    return finish(result)
  }

  const listener = {
    invalidate(keys: readonly string[]) {
      for (const key of keys) store.invalidate(key)
    },
    flush() {
      store.flush()
    },
    state(isUp: boolean, reason: string) {
      store.flush()
      if (closed) return
      // A channel that cannot start at all (tracking refused, a read-only file) is said once, not kept quiet.
      if (!isUp && !wasUp && !startFailureSaid) {
        startFailureSaid = true
        hooks.onState(false, reason)
      }
      if (up === isUp) return
      up = isUp
      // The first time the channel comes up is the start, not a return.
      if (isUp && !wasUp) {
        wasUp = true
        return
      }
      hooks.onState(isUp, reason)
    },
  }

  const tier: Tier = {
    settings,
    lookup(key) {
      check?.()
      if (!up) return undefined
      const entry = store.get(key, now())
      // An entry not decoded yet (or tagged, whose tags must be checked) is read through `get`, which counts it.
      if (entry === undefined || entry.state === 0) return undefined
      counters.hits++
      return entry
    },
    peek: (key) => (up ? store.peek(key) : undefined),
    fresh: (key, timeout) => inner.get(key, timeout),
    stats: () => ({
      hits: counters.hits,
      misses: counters.misses,
      entries: store.size,
      bytes: store.bytes,
      invalidations: counters.invalidations,
      flushes: counters.flushes,
      active: up && !closed,
      channel: channel?.kind ?? 'none',
    }),
  }

  const adapter: TieredAdapter = {
    name: inner.name,
    capabilities: inner.capabilities,
    ...(inner.commandTimeout === undefined ? {} : { commandTimeout: inner.commandTimeout }),
    tier,

    async ready() {
      await inner.ready?.()
      if (channel === undefined) return
      started ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CHANNEL_START_WAIT_MS)
        timer.unref?.()
        const wrapped = {
          ...listener,
          state(isUp: boolean, reason: string) {
            listener.state(isUp, reason)
            clearTimeout(timer)
            resolve()
          },
        }
        channel.start(wrapped)
      })
      await started
    },

    get(key, timeout) {
      check?.()
      if (!up) return inner.get(key, timeout)
      const entry = store.get(key, now())
      if (entry !== undefined) {
        counters.hits++
        return entry.payload
      }
      counters.misses++
      return readThrough(key, timeout)
    },

    async getMany(keys, timeout) {
      check?.()
      if (!up) return inner.getMany(keys, timeout)
      const t = now()
      const out: (Payload | undefined)[] = []
      const missing: number[] = []
      for (let i = 0; i < keys.length; i++) {
        const entry = store.get(keys[i] as string, t)
        if (entry === undefined) missing.push(i)
        else counters.hits++
        out.push(entry?.payload)
      }
      if (missing.length === 0) return out
      counters.misses += missing.length
      const read = await Promise.all(missing.map((i) => readThrough(keys[i] as string, timeout)))
      for (let j = 0; j < missing.length; j++) out[missing[j] as number] = read[j]
      return out
    },

    set(key, value, expiresAt, timeout) {
      return write([key], () => inner.set(key, value, expiresAt, timeout), () => wrote(key, value, expiresAt))
    },

    setMany(entries: readonly AdapterEntry[]) {
      return write(entries.map((e) => e.key), () => inner.setMany(entries), () => {
        for (const e of entries) wrote(e.key, e.value, e.expiresAt)
      })
    },

    // Atomic: always the backend's answer. The key is held only if this call stored it.
    add(key, value, expiresAt, timeout) {
      return write([key], () => inner.add(key, value, expiresAt, timeout), (added) => wrote(key, added ? value : undefined, expiresAt))
    },

    // The backend decides the result and keeps the expiry, which this process does not know: drop the key.
    increment(key, delta, expiresAt) {
      return write([key], () => inner.increment(key, delta, expiresAt), () => wrote(key, undefined, null))
    },

    delete(key, timeout) {
      return write([key], () => inner.delete(key, timeout), () => wrote(key, undefined, null))
    },

    deleteMany(keys) {
      return write(keys, () => inner.deleteMany(keys), () => {
        for (const key of keys) wrote(key, undefined, null)
      })
    },

    has(key) {
      check?.()
      if (up && store.get(key, now()) !== undefined) return true
      return inner.has(key)
    },

    touch(key, expiresAt) {
      return write([key], () => inner.touch(key, expiresAt), () => wrote(key, undefined, null))
    },

    expiresAt: (key) => inner.expiresAt(key),

    ...(inner.deleteIfEquals === undefined
      ? {}
      : {
          deleteIfEquals(key: string, value: Payload, timeout?: Milliseconds) {
            return write([key], () => inner.deleteIfEquals!(key, value, timeout), () => wrote(key, undefined, null))
          },
        }),

    async clear(prefix) {
      try {
        await inner.clear(prefix)
      } finally {
        store.flushPrefix(prefix)
      }
    },

    keys: (prefix) => inner.keys(prefix),
    ...(inner.inspect === undefined ? {} : { inspect: (prefix: string) => inner.inspect!(prefix) }),
    purgeExpired: () => inner.purgeExpired(),

    async close() {
      if (closed) return
      closed = true
      up = false
      store.flush()
      try {
        await channel?.close()
      } finally {
        await inner.close()
      }
    },
  }
  return adapter
}
