/**
 * Keyv's own test suite (@keyv/test-suite: API, values, namespaces, iterator) against `toKeyvStore(...)`
 * for every adapter in the registry that can be loaded here.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { keyvApiTests, keyvIteratorTests, keyvNamespaceTest, keyvValueTests } from '@keyv/test-suite'
import Keyv from 'keyv'
import * as vitest from 'vitest'
import { afterAll, describe, expect, it } from 'vitest'
import { createCache, type Cache } from '../src/index.js'
import { toKeyvStore } from '../src/keyv.js'
import { ADAPTERS, type AdapterDefinition } from '../src/registry.js'
import { REDIS_URL, serverAvailable } from './keyv-servers.js'

const dir = mkdtempSync(join(tmpdir(), 'cachekit-keyv-suite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A config reaching each backend, by the URL scheme its registry entry declares. */
const BY_SCHEME: Record<string, (def: AdapterDefinition) => Record<string, unknown>> = {
  memory: () => ({ url: 'memory:' }),
  file: (def) => ({ url: `file:${join(dir, def.type)}` }),
  sqlite: (def) => ({ url: `sqlite:${join(dir, `${def.type}.sqlite`)}` }),
  redis: () => ({ url: REDIS_URL }),
}
/** Backends without a URL of their own. */
const BY_TYPE: Record<string, () => Record<string, unknown>> = {
  keyv: () => ({ type: 'keyv', store: new Map() }),
}
/** Backends that cannot be a Keyv store, and why. */
const EXCLUDED: Record<string, string> = {
  null: 'stores nothing by design, so no store test can pass',
}

function configFor(def: AdapterDefinition): Record<string, unknown> | undefined {
  const byType = BY_TYPE[def.type]
  if (byType !== undefined) return byType()
  const scheme = def.schemes?.find((s) => BY_SCHEME[s] !== undefined)
  return scheme === undefined ? undefined : BY_SCHEME[scheme]?.(def)
}

it('every adapter of the registry is either covered here or excluded with a reason', () => {
  const uncovered = ADAPTERS.filter((d) => EXCLUDED[d.type] === undefined && configFor(d) === undefined).map((d) => d.type)
  expect(uncovered).toEqual([])
})

const needsRedis = (def: AdapterDefinition): boolean => def.schemes?.some((s) => s === 'redis' || s === 'rediss') === true
const redisUp = ADAPTERS.some(needsRedis) ? await serverAvailable('Redis') : false

for (const def of ADAPTERS) {
  if (EXCLUDED[def.type] !== undefined) continue
  if (needsRedis(def) && !redisUp) continue
  const loadable = await def.load().then(
    () => true,
    (error: unknown) => {
      console.warn(`\n!!! SKIPPING @keyv/test-suite for the ${def.type} adapter: it cannot be loaded here (${(error as Error).message}).\n`)
      return false
    },
  )
  if (!loadable) continue

  describe(`@keyv/test-suite over toKeyvStore(${def.type})`, () => {
    let cache: Cache | undefined
    const store = () => {
      cache ??= createCache({ ...configFor(def), keyPrefix: `ck-keyv-suite:${randomBytes(5).toString('hex')}:` } as Parameters<typeof createCache>[0])
      return toKeyvStore(cache)
    }
    afterAll(async () => {
      if (cache === undefined) return
      await cache.clear()
      await cache.close()
    })
    keyvApiTests(vitest, Keyv, store)
    keyvValueTests(vitest, Keyv, store)
    keyvNamespaceTest(vitest, Keyv, store)
    keyvIteratorTests(vitest, Keyv, store)
  })
}

describe('toKeyvStore', () => {
  it('takes an adapter too, and disconnect() closes only what it made', async () => {
    const { memoryAdapter } = await import('../adapters/memory.js')
    const adapter = memoryAdapter({}, { now: Date.now, threshold: 100, emit: () => {} })
    const owned = toKeyvStore(adapter)
    const keyv = new Keyv({ store: owned })
    await keyv.set('k', { a: 1 })
    expect(await keyv.get('k')).toEqual({ a: 1 })
    await keyv.disconnect()
    expect(owned.cache.initialized).toBe(false)

    const mine = createCache('memory:')
    await new Keyv({ store: toKeyvStore(mine) }).disconnect()
    expect(mine.initialized).toBe(true)
    await mine.close()
    expect(() => toKeyvStore({} as never)).toThrow(/takes a cachekit Cache/)
  })

  it("a Keyv set without a TTL never expires, whatever the cache's defaultTtl", async () => {
    let t = Date.now()
    const cache = createCache({ type: 'memory', defaultTtl: '1s', now: () => t })
    const store = toKeyvStore(cache)
    await store.set('forever', 'f')
    await store.set('short', 's', 1_000)
    t += 10_000
    expect(await store.get('forever')).toBe('f')
    expect(await store.get('short')).toBeUndefined()
    expect(await store.has('short')).toBe(false)
    await cache.close()
  })
})
