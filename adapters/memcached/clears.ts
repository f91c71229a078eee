/**
 * `clear(prefix)` without flushing the server, and without listing keys (memcached cannot).
 *
 * One item, the clear registry, records an epoch (random) and, for each prefix that has been cleared, the
 * generation it was cleared at (from one counter that only grows). Every key is stored under a token made
 * of the epoch and the highest generation among the cleared prefixes that it starts with. `clear(prefix)`
 * gives the prefix a new, higher generation: every key under it gets a new token, so its old items are
 * never read again (memcached evicts them in time), and keys under other prefixes keep theirs.
 *
 * Clearing a prefix also forgets the prefixes under it (their keys' highest generation is now the
 * prefix's own, whatever theirs was), so the registry stays as small as the set of prefixes cleared. If it
 * grows past {@link MAX_REGISTRY_BYTES}, or is lost (evicted, or the server restarted), a new epoch starts:
 * every cachekit entry in the pool is cleared, never a wrong one kept.
 *
 * Read once per operation (with `clearCheckInterval` 0), in parallel with the operation itself: an operation
 * whose token turns out to be stale is done again under the new one. Operations started in the same tick
 * share one read.
 */
import { randomBytes } from 'node:crypto'
import { ANY_CAS, OP, STATUS, storeExtras } from './protocol.js'
import type { Pool, Reply } from './connection.js'

/** The registry's item. Its first letter is neither `k` nor `h`, so no cache key can take its name. */
export const REGISTRY_KEY = '_cachekit:clears'

/** Past this size, clearing starts a new epoch instead of growing the registry. */
export const MAX_REGISTRY_BYTES = 64 * 1024

const MAX_ATTEMPTS = 100

interface Stored {
  /** Format. */
  v: 1
  /** Epoch: 8 characters of base64url. */
  e: string
  /** The last generation given. */
  c: number
  /** Cleared prefixes and their generations. */
  p: [string, number][]
}

/** A registry as read: immutable; a new object for each new content. */
export class Registry {
  /** Generations by prefix length, then by prefix: one map lookup per distinct length. */
  readonly #byLength = new Map<number, Map<string, number>>()
  readonly #lengths: number[]

  constructor(
    readonly raw: Buffer,
    readonly stored: Stored,
  ) {
    for (const [prefix, generation] of stored.p) {
      let m = this.#byLength.get(prefix.length)
      if (m === undefined) this.#byLength.set(prefix.length, (m = new Map()))
      m.set(prefix, generation)
    }
    this.#lengths = [...this.#byLength.keys()].sort((a, b) => a - b)
  }

  /** The token of `fullKey`: the epoch and the highest generation of a cleared prefix of it. */
  token(fullKey: string): string {
    let highest = 0
    for (const length of this.#lengths) {
      if (length > fullKey.length) break
      const g = this.#byLength.get(length)!.get(fullKey.slice(0, length))
      if (g !== undefined && g > highest) highest = g
    }
    return `${this.stored.e}.${highest.toString(36)}`
  }
}

function newEpoch(): Stored {
  return { v: 1, e: randomBytes(6).toString('base64url'), c: 0, p: [] }
}

function parse(raw: Buffer): Stored | undefined {
  try {
    const s = JSON.parse(raw.toString('utf8')) as Stored
    if (s.v === 1 && typeof s.e === 'string' && Number.isSafeInteger(s.c) && Array.isArray(s.p)) return s
  } catch {
    // Not ours, or damaged: replaced by a new epoch.
  }
  return undefined
}

/** The registry after clearing `prefix`. */
export function cleared(s: Stored, prefix: string): Stored {
  if (prefix === '') return newEpoch()
  const c = s.c + 1
  const next: Stored = { v: 1, e: s.e, c, p: [...s.p.filter(([q]) => !q.startsWith(prefix)), [prefix, c]] }
  return Buffer.byteLength(JSON.stringify(next)) > MAX_REGISTRY_BYTES ? newEpoch() : next
}

export class Clears {
  /** The last registry read. */
  known: Registry | undefined
  #checkedAt = -Infinity
  /** A read not sent yet, which every operation started in this tick joins. */
  #next: Promise<Registry> | undefined

  constructor(
    readonly pool: Pool,
    /** `clearCheckInterval`: how long a read registry may be used without reading it again. */
    readonly interval: number,
    /** Told when a new epoch clears everything (a lost or full registry). */
    readonly onReset: (reason: string) => void,
  ) {}

  /** The registry as of a read that starts after this call (or one within `interval`). */
  current(): Promise<Registry> {
    if (this.known !== undefined && this.interval > 0 && performance.now() - this.#checkedAt < this.interval) return Promise.resolve(this.known)
    if (this.#next !== undefined) return this.#next
    const next = new Promise<void>((resolve) => process.nextTick(resolve)).then(() => {
      this.#next = undefined
      return this.#read()
    })
    this.#next = next
    return next
  }

  #adopt(reply: Reply): Registry | undefined {
    const known = this.known
    if (known !== undefined && known.raw.equals(reply.value)) return known
    const stored = parse(reply.value)
    if (stored === undefined) return undefined
    return (this.known = new Registry(Buffer.from(reply.value), stored))
  }

  async #read(): Promise<Registry> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const started = performance.now()
      const reply = await this.pool.send(REGISTRY_KEY, OP.get)
      if (reply.status === STATUS.ok) {
        const registry = this.#adopt(reply)
        if (registry !== undefined) {
          this.#checkedAt = started
          return registry
        }
        // Unreadable: start a new epoch over it, if nobody changed it meanwhile.
        await this.#write(newEpoch(), reply.cas)
        continue
      }
      if (reply.status !== STATUS.notFound) throw new Error(`${this.pool.where}: reading the clear registry failed (status ${reply.status})`)
      if (this.known !== undefined) this.onReset('the clear registry was lost (evicted, or the server restarted): a new epoch starts, so every earlier entry is cleared')
      await this.#write(newEpoch(), undefined)
    }
    throw new Error(`${this.pool.where}: the clear registry kept changing; try again`)
  }

  /** Write `s` if the registry is still as read (`cas`), or still absent (`undefined`): true if written. */
  async #write(s: Stored, cas: Buffer | undefined): Promise<boolean> {
    const value = Buffer.from(JSON.stringify(s))
    const reply = await this.pool.send(REGISTRY_KEY, cas === undefined ? OP.add : OP.set, storeExtras(0), value, cas ?? ANY_CAS)
    if (reply.status === STATUS.ok) {
      this.known = new Registry(value, s)
      return true
    }
    if (reply.status === STATUS.exists || reply.status === STATUS.notStored || reply.status === STATUS.notFound) return false
    throw new Error(`${this.pool.where}: writing the clear registry failed (status ${reply.status})`)
  }

  /** Clear every key that starts with `prefix` (all of them for `''`): a new generation for the prefix. */
  async clear(prefix: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const reply = await this.pool.send(REGISTRY_KEY, OP.get)
      if (reply.status !== STATUS.ok && reply.status !== STATUS.notFound) throw new Error(`${this.pool.where}: reading the clear registry failed (status ${reply.status})`)
      const stored = reply.status === STATUS.ok ? parse(reply.value) : undefined
      const next = cleared(stored ?? newEpoch(), prefix)
      if (prefix !== '' && next.c === 0) this.onReset(`the clear registry reached ${MAX_REGISTRY_BYTES} bytes: a new epoch starts, so every cachekit entry in the pool is cleared`)
      if (await this.#write(next, reply.status === STATUS.ok ? reply.cas : undefined)) {
        this.#checkedAt = performance.now()
        return
      }
    }
    throw new Error(`${this.pool.where}: clear() kept meeting concurrent clears; try again`)
  }
}
