/**
 * inc/dec's CacheTypeError names the caller's key: adapters see full keys (prefix and namespaces included),
 * the Cache says it with the key the caller wrote. The conformance suite checks every built-in backend;
 * here, an adapter of a third party that throws a CacheTypeError of its own making.
 */
import { describe, expect, it } from 'vitest'
import { memoryAdapter } from '../adapters/memory/index.js'
import { CacheTypeError, createCache } from '../src/index.js'

describe("inc's CacheTypeError", () => {
  it("keeps the refusal, so the message and the key are the caller's", async () => {
    const c = createCache({ type: 'memory', keyPrefix: 'app:v2:' })
    await c.set('name', 'ann')
    const error = (await c.inc('name').catch((e: unknown) => e)) as CacheTypeError
    expect(error).toBeInstanceOf(CacheTypeError)
    expect(error.message).toBe('Cannot increment "name": its value is not an integer. It was left as it was.')
    expect(error.key).toBe('name')
    expect(error.refusal).toEqual({ base: undefined, delta: 1 })
    await c.close()
  })

  it("rewrites a third-party adapter's own CacheTypeError that quotes the full key, keeping it as the cause", async () => {
    const c = createCache({
      keyPrefix: 'app:',
      adapter: (context) => {
        const inner = memoryAdapter({}, context)
        return {
          ...inner,
          name: 'custom',
          increment: (key: string) => {
            throw new CacheTypeError(`Cannot increment ${JSON.stringify(key)}: it holds a list.`, { key })
          },
        }
      },
    })
    const error = (await c.namespace('ns:').inc('k').catch((e: unknown) => e)) as CacheTypeError
    expect(error).toBeInstanceOf(CacheTypeError)
    expect(error.message).toBe('Cannot increment "k": it holds a list.')
    expect(error.key).toBe('k')
    expect((error.cause as CacheTypeError).key).toBe('app:ns:k')
    await c.close()
  })
})
