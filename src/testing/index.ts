/**
 * `cachekit/testing`: the conformance suite every adapter passes. Apply it with one call in a test file:
 *
 * @example
 * import { runAdapterConformance } from 'cachekit/testing'
 * runAdapterConformance({
 *   name: 'memory',
 *   create: (ctx) => memoryAdapter({}, ctx),
 *   capabilities: { shared: false, atomic: true, realClock: false },
 * })
 *
 * It needs `vitest` (and `fast-check` for the model test) in the caller's devDependencies.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { atomicTests, deleteIfEqualsTests } from './atomic.js'
import { basicTests } from './basics.js'
import { Harness, type ConformanceOptions } from './harness.js'
import { isolationTests } from './isolation.js'
import { lifecycleTests } from './lifecycle.js'
import { limitTests } from './limits.js'
import { modelTests } from './model.js'
import { craftedPayloadTests } from './payloads.js'
import { processTests } from './processes.js'
import { tagTests } from './tags.js'
import { touchTests } from './touch.js'
import { ttlTests } from './ttl.js'
import { keyTests } from './keys.js'
import { valueTests } from './values.js'

export { FakeClock, Harness, type ConformanceOptions } from './harness.js'
export { VALUE_TABLE } from './values.js'
export { runInProcesses, type ProcessJob } from './processes.js'

/**
 * Register the conformance suite for one adapter. Capability flags change what runs: `shared` adds the
 * multi-process tests (set in one process, read in another), `shared` with `atomic` adds 8 processes
 * racing `inc` and `add`, and `realClock` makes TTL tests wait in real time. The in-process concurrency
 * tests run for every adapter: each must be atomic within one process.
 */
export function runAdapterConformance(options: ConformanceOptions): void {
  describe(`adapter conformance: ${options.name}`, () => {
    let harness: Harness | undefined
    const h = (): Harness => {
      if (harness === undefined) throw new Error('conformance harness used outside a test')
      return harness
    }
    beforeEach(() => {
      harness = new Harness(options, options.capabilities)
    })
    afterEach(async () => {
      await harness?.close()
      harness = undefined
    })
    if (options.cleanup !== undefined) afterAll(options.cleanup)

    it('declares the capabilities it is tested with', async () => {
      const adapter = await options.create({ now: Date.now, threshold: options.threshold ?? 10_000, emit: () => {} })
      try {
        expect(adapter.capabilities).toEqual(options.capabilities)
      } finally {
        await adapter.close()
      }
    })
    describe('values', () => valueTests(h))
    describe('basics', () => basicTests(h, options.capabilities))
    describe('add, inc, dec', () => {
      atomicTests(h)
      deleteIfEqualsTests(options)
    })
    describe('TTL', () => ttlTests(h, options.capabilities))
    describe('touch', () => touchTests(h))
    describe('isolation', () => isolationTests(h))
    // The keys area runs on every backend; one that cannot list its keys (capabilities.listKeys false) leaves
    // out only the assertions on what keys() lists.
    describe('keys', () => keyTests(h, options.capabilities))
    describe('crafted payloads', () => craftedPayloadTests(h))
    describe('limits', () => limitTests(h, options.capabilities))
    describe('model', () => modelTests(h))
    describe('tags', () => tagTests(h))
    describe('lifecycle', () => lifecycleTests(h))
    if (options.capabilities.shared) describe('across processes', () => processTests(options))
  })
}
