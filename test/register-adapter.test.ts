/**
 * A third-party backend, defined here and registered with `registerAdapter`: it passes the conformance
 * suite and is reachable by `type`, by URL and by environment variable, validated like a built-in.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CacheConfigError, configFromEnv, createCache, registerAdapter, type AdapterDefinition, type CommonOptions } from '../src/index.js'
import { addToPayload, type AdapterContext, type CacheAdapter, type ExpiresAt, type Payload } from '../src/adapter.js'
import type { Cache } from '../src/cache.js'
import { backendList } from '../bin/open.js'
import { findAdapter } from '../src/registry.js'
import { runAdapterConformance } from '../src/testing/index.js'

/** The options of the test's backend: which shared store (`endpoint`), and a duration it is handed in ms. */
interface AcmeOptions {
  endpoint?: string
  pause?: number | string
}

/** Every store by endpoint, so that every adapter with one endpoint reaches the same storage. */
const STORES = new Map<string, Map<string, { value: Payload; expiresAt: ExpiresAt }>>()
/** The options each factory call received, to see what `init` handed over. */
const received: Record<string, unknown>[] = []

function acmeAdapter(options: AcmeOptions, context: AdapterContext): CacheAdapter {
  received.push({ ...options })
  const endpoint = options.endpoint ?? 'default'
  let store = STORES.get(endpoint)
  if (store === undefined) STORES.set(endpoint, (store = new Map()))
  const entries = store
  const live = (key: string): { value: Payload; expiresAt: ExpiresAt } | undefined => {
    const e = entries.get(key)
    if (e !== undefined && e.expiresAt !== null && e.expiresAt <= context.now()) {
      entries.delete(key)
      return undefined
    }
    return e
  }
  return {
    name: 'acme',
    capabilities: { shared: false, atomic: true, realClock: false },
    get: (key) => live(key)?.value,
    getMany: (keys) => keys.map((k) => live(k)?.value),
    set(key, value, expiresAt) {
      entries.set(key, { value, expiresAt })
    },
    setMany(list) {
      for (const e of list) entries.set(e.key, { value: e.value, expiresAt: e.expiresAt })
    },
    add(key, value, expiresAt) {
      if (live(key) !== undefined) return false
      entries.set(key, { value, expiresAt })
      return true
    },
    increment(key, delta, expiresAt) {
      const current = live(key)
      const result = addToPayload(key, current?.value, delta)
      entries.set(key, { value: String(result), expiresAt: current === undefined ? expiresAt : current.expiresAt })
      return result
    },
    delete: (key) => live(key) !== undefined && entries.delete(key),
    deleteMany: (keys) => keys.filter((k) => live(k) !== undefined && entries.delete(k)).length,
    has: (key) => live(key) !== undefined,
    touch(key, expiresAt) {
      const e = live(key)
      if (e === undefined) return false
      e.expiresAt = expiresAt
      return true
    },
    expiresAt: (key) => live(key)?.expiresAt,
    clear(prefix) {
      for (const k of [...entries.keys()]) if (k.startsWith(prefix)) entries.delete(k)
    },
    keys: (prefix) => [...entries.keys()].filter((k) => k.startsWith(prefix) && live(k) !== undefined),
    purgeExpired() {
      let n = 0
      for (const k of [...entries.keys()]) if (entries.has(k) && live(k) === undefined) n++
      return n
    },
    close() {},
  }
}

const acme: AdapterDefinition = {
  type: 'acme',
  aliases: ['acme-cache'],
  options: { endpoint: 'string', pause: 'duration' },
  schemes: ['acme'],
  fromUrl: (url) => ({ endpoint: url.slice('acme://'.length) }),
  env: { CACHE_ACME_ENDPOINT: 'endpoint' },
  load: async () => acmeAdapter,
}

registerAdapter(acme)

runAdapterConformance({
  name: 'acme (registered)',
  create: async (context) => {
    const factory = await findAdapter('acme')!.load()
    return factory({ endpoint: 'suite' }, context)
  },
  capabilities: { shared: false, atomic: true, realClock: false },
})

describe('registerAdapter', () => {
  const opened: Cache[] = []
  const open = (config: Parameters<typeof createCache>[0]): Cache => {
    const c = createCache(config)
    opened.push(c)
    return c
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()))
  })

  it('a registered type is reachable by its type and alias, and its options arrive parsed', async () => {
    const config: CommonOptions & AcmeOptions = { type: 'acme', endpoint: 'by-type', pause: '2s' }
    const c = open(config)
    await c.set('k', 'v')
    expect(await c.get('k')).toBe('v')
    expect(c.stats().type).toBe('acme')
    expect(received.at(-1)).toEqual({ endpoint: 'by-type', pause: 2000 })
    expect(STORES.get('by-type')?.size).toBe(1)
    const byAlias = open({ type: 'acme-cache' })
    await byAlias.set('a', 1)
    expect(byAlias.stats().type).toBe('acme')
  })

  it("the CLI's list of backends comes from the registry, the registered one included", () => {
    expect(backendList()).toContain('memory (memory:), filesystem (file:), null (null:), sqlite (sqlite: sqlite3:), redis (redis: rediss:), keyv (no URL)')
    expect(backendList()).toContain('acme (acme:)')
  })

  it('its URL scheme works in init', async () => {
    const c = open('acme://by-url')
    await c.set('k', 'v')
    expect(received.at(-1)).toEqual({ endpoint: 'by-url' })
    expect(STORES.get('by-url')?.size).toBe(1)
  })

  it('configFromEnv reads its variables, and CACHE_URL with its scheme', async () => {
    expect(configFromEnv({ CACHE_ACME_ENDPOINT: 'by-env' }, { warn: () => {} })).toEqual({ type: 'acme', endpoint: 'by-env' })
    expect(configFromEnv({ CACHE_TYPE: 'acme', CACHE_ACME_ENDPOINT: 'by-env' })).toEqual({ type: 'acme', endpoint: 'by-env' })
    expect(configFromEnv({ CACHE_URL: 'acme://by-env-url' })).toEqual({ url: 'acme://by-env-url' })
    const c = open(configFromEnv({ CACHE_ACME_ENDPOINT: 'by-env' }))
    await c.set('k', 'v')
    expect(STORES.get('by-env')?.size).toBe(1)
    const byUrl = open(configFromEnv({ CACHE_URL: 'acme://by-env-url' }))
    await byUrl.set('k', 'v')
    expect(byUrl.stats().type).toBe('acme')
    expect(STORES.get('by-env-url')?.size).toBe(1)
    // Another backend's variable is named as ignored, as for a built-in.
    const warned: string[] = []
    configFromEnv({ CACHE_TYPE: 'memory', CACHE_ACME_ENDPOINT: 'x' }, { warn: (m) => warned.push(m) })
    expect(warned.join()).toContain('CACHE_ACME_ENDPOINT')
  })

  it('its options are validated like a built-in: a misspelling gets a suggestion, a wrong kind is named', () => {
    const misspelled = { type: 'acme', endpont: 'x' }
    expect(() => createCache(misspelled)).toThrow(/Unknown cache option `endpont`\. Did you mean `endpoint`\?/)
    const wrongKind = { type: 'acme', pause: true }
    expect(() => createCache(wrongKind as never)).toThrow(/`pause` must be a duration/)
    const otherBackend = { type: 'memory', endpoint: 'x' }
    expect(() => createCache(otherBackend)).toThrow(/option of the `acme` backend, not of `memory`/)
    expect(() => createCache({ type: 'acmee' })).toThrow(/Did you mean `acme`\?/)
  })

  it('refuses a type, alias, scheme or variable that exists, naming it', () => {
    const base = { options: {}, load: async () => acmeAdapter }
    const refused = (definition: unknown): CacheConfigError => {
      try {
        registerAdapter(definition as AdapterDefinition)
      } catch (error) {
        expect(error).toBeInstanceOf(CacheConfigError)
        return error as CacheConfigError
      }
      throw new Error('registered')
    }
    expect(refused({ ...base, type: 'memory' }).message).toMatch(/registerAdapter\("memory"\): the type `memory` is already taken by the built-in `memory` backend/)
    expect(refused({ ...base, type: 'acme' }).message).toMatch(/the type `acme` is already taken by the registered `acme` backend/)
    expect(refused({ ...base, type: 'other', aliases: ['file'] }).message).toMatch(/registerAdapter\("other"\): the type `file` is already taken by the built-in `filesystem`/)
    expect(refused({ ...base, type: 'other', schemes: ['redis'] }).message).toMatch(/the URL scheme `redis:` is already taken by the built-in `redis`/)
    expect(refused({ ...base, type: 'other', options: { dir: 'string' }, env: { CACHE_DIR: 'dir' } }).message).toMatch(/the variable `CACHE_DIR` is already taken by the built-in `filesystem`/)
    expect(refused({ ...base, type: 'other', env: { CACHE_URL: 'url' } }).message).toMatch(/`CACHE_URL` is a variable of every cache/)
    // Nothing half-registered: "other" is still free.
    expect(findAdapter('other')).toBeUndefined()
  })

  it('refuses a malformed definition, naming the type and the field', () => {
    const load = async (): Promise<typeof acmeAdapter> => acmeAdapter
    expect(() => registerAdapter(undefined as never)).toThrow(CacheConfigError)
    expect(() => registerAdapter({ type: '', options: {}, load })).toThrow(/`type` must be a name/)
    expect(() => registerAdapter({ type: 'bad', options: { x: 'text' as never }, load })).toThrow(/registerAdapter\("bad"\): `options` gives `x` the kind "text"/)
    expect(() => registerAdapter({ type: 'bad', options: { defaultTtl: 'duration' }, load })).toThrow(/declares `defaultTtl`, an option of every cache/)
    expect(() => registerAdapter({ type: 'bad', options: {} } as never)).toThrow(/registerAdapter\("bad"\): `load` must be a function/)
    expect(() => registerAdapter({ type: 'bad', options: {}, schemes: ['Bad:'], load })).toThrow(/`schemes` must be an array of lowercase URL schemes/)
    expect(() => registerAdapter({ type: 'bad', options: {}, env: { CACHE_BAD: 'nope' }, load })).toThrow(/maps CACHE_BAD to `nope`, which is not one of its options/)
    expect(() => registerAdapter({ type: 'bad', options: {}, fromUrl: () => ({}), load })).toThrow(/`fromUrl` is given without `schemes`/)
    expect(findAdapter('bad')).toBeUndefined()
  })
})
