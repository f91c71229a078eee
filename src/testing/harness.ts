import { randomBytes } from 'node:crypto'
import type { AdapterCapabilities, AdapterContext, CacheAdapter } from '../adapter.js'
import { Cache } from '../cache.js'
import type { CacheConfig, CommonOptions } from '../config/index.js'

/** What a conformance run needs to know about an adapter. */
export interface ConformanceOptions {
  /** Shown in the test names. */
  name: string
  /**
   * Build an adapter over the backend under test. Called once per cache a test needs; every call must reach
   * the same storage (the same file, folder or database), so that isolation between prefixes is tested.
   */
  create: (context: AdapterContext) => CacheAdapter | Promise<CacheAdapter>
  /**
   * The capabilities the adapter declares; the suite checks that it does. They change what runs: `shared`
   * runs the multi-process tests (with `processConfig`), `shared` and `atomic` together the cross-process
   * `inc`/`add` races, and `realClock` makes TTL tests wait in real time instead of moving a fake clock.
   */
  capabilities: AdapterCapabilities
  /**
   * A plain config (no functions) that child processes pass to `createCache` to reach the same backend.
   * Required for the multi-process tests of a `shared` adapter.
   */
  processConfig?: Exclude<CacheConfig, string> | string
  /**
   * Common options every cache of the suite is opened with, e.g. `{ l1: true }` to run the whole suite
   * through the memory tier (give `processConfig` the same).
   */
  cacheOptions?: Omit<CommonOptions, 'adapter' | 'type' | 'now'>
  /** The `threshold` handed to the adapter. @default 10000 */
  threshold?: number
  /** Run after the whole suite, e.g. to remove a temporary folder. */
  cleanup?: () => void | Promise<void>
}

/** A controllable clock: starts at the real time, moves only when told. */
export class FakeClock {
  constructor(public t: number = Date.now()) {}
  readonly now = (): number => this.t
  advance(ms: number): void {
    this.t += ms
  }
}

/** Per-test state: caches over fresh adapters, a clock, and a way to let time pass. */
export class Harness {
  readonly clock = new FakeClock()
  readonly caps: AdapterCapabilities
  readonly #opened: Cache[] = []
  readonly #options: ConformanceOptions

  constructor(options: ConformanceOptions, caps: AdapterCapabilities) {
    this.#options = options
    this.caps = caps
  }

  /** A cache over a new adapter, under a random prefix so that runs and tests never collide. */
  async cache(options: Omit<CommonOptions, 'adapter' | 'type' | 'now'> = {}): Promise<Cache> {
    const now = this.caps.realClock ? Date.now : this.clock.now
    // As `init` tells an adapter it builds: payloads may be bytes with any serializer but JSON.
    const bytes = options.serializer !== undefined && options.serializer !== 'json'
    const adapter = await this.#options.create({ now, threshold: this.#options.threshold ?? 10_000, emit: () => {}, bytes })
    const cache = new Cache().init({ keyPrefix: `ck-test:${randomBytes(6).toString('hex')}:`, now, ...this.#options.cacheOptions, ...options, adapter })
    await cache.ready()
    this.#opened.push(cache)
    return cache
  }

  /** Let `ms` pass: move the fake clock, or really wait (plus a margin) on a backend with its own clock. */
  async elapse(ms: number): Promise<void> {
    if (this.caps.realClock) await new Promise((resolve) => setTimeout(resolve, ms + 50))
    else this.clock.advance(ms)
  }

  /**
   * A TTL short enough to wait out on a real clock, long enough not to expire by accident. Several tests
   * check that an entry is still live one or two commands after it was written: on a loaded machine more
   * than 300 ms passed between two commands to Redis, so a real clock gets a second.
   */
  get shortTtl(): number {
    return this.caps.realClock ? 1_000 : 60_000
  }

  async close(): Promise<void> {
    for (const c of this.#opened.splice(0)) {
      if (c.initialized) {
        await c.clear().catch(() => {})
        await c.close()
      }
    }
  }
}
