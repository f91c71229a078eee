import { expect, it } from 'vitest'
import type { Cache } from '../cache.js'
import { CacheSerializationError } from '../errors.js'
import { ENGINE } from '../engine.js'
import type { Harness } from './harness.js'

/** Store `payload` at `key` as another program would: straight into the backend, past the codec. */
async function plant(c: Cache, key: string, payload: string): Promise<void> {
  const engine = await c[ENGINE]()
  if (engine.adapter === undefined) throw new Error('the backend did not load')
  await engine.adapter.set(engine.fullKey(key), payload, null)
}

const EVIL = '{"__proto__":{"isAdmin":true},"a":1}'

/**
 * Payloads that another program wrote into a shared backend: they decode without choosing a prototype, and
 * what is not a form cachekit writes is a miss (with a `'corrupt'` event), never a throw.
 */
export function craftedPayloadTests(h: () => Harness): void {
  it('a __proto__ member never becomes a prototype, in plain and rich payloads and nested in them', async () => {
    const c = await h().cache()
    const planted: [string, string, (v: unknown) => unknown][] = [
      ['plain', EVIL, (v) => v],
      ['rich', `~{"__proto__":{"isAdmin":true},"a":1,"when":{"$t":"Date","v":0}}`, (v) => v],
      ['in an array', `~[${EVIL},{"$t":"BigInt","v":"1"}]`, (v) => (v as unknown[])[0]],
      ['in a Map', `~{"$t":"Map","v":[["k",${EVIL}]]}`, (v) => (v as Map<string, unknown>).get('k')],
      ['in a Set', `~{"$t":"Set","v":[${EVIL}]}`, (v) => [...(v as Set<unknown>)][0]],
      ['under the Object tag', `~{"$t":"Object","v":{"$t":"x","o":${EVIL}}}`, (v) => (v as Record<string, unknown>).o],
    ]
    for (const [key, payload] of planted) await plant(c, key, payload)
    for (const [key, , pick] of planted) {
      const o = pick(await c.get(key)) as Record<string, unknown>
      expect(Object.getPrototypeOf(o), key).toBe(Object.prototype)
      expect(o.isAdmin, key).toBeUndefined()
      expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value, key).toEqual({ isAdmin: true })
    }
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  })

  it("keeps a value's own __proto__ member beside a rich type", async () => {
    const c = await h().cache()
    const value: Record<string, unknown> = { when: new Date(7) }
    Object.defineProperty(value, '__proto__', { value: { role: 'x' }, enumerable: true, writable: true, configurable: true })
    await c.set('v', value)
    const back = (await c.get('v')) as Record<string, unknown>
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toEqual({ role: 'x' })
    expect(back.when).toEqual(new Date(7))
  })

  it('a malformed rich payload is a miss and a corrupt event, never a throw', async () => {
    const c = await h().cache()
    const corrupt: string[] = []
    const errors: unknown[] = []
    c.on('corrupt', (key) => corrupt.push(String(key)))
    c.on('error', (error) => errors.push(error))
    await plant(c, 'map', '~{"$t":"Map","v":5}')
    await plant(c, 'big', '~{"$t":"BigInt","v":"1e3"}')
    await plant(c, 'deep', `~${'['.repeat(100_000)}${']'.repeat(100_000)}`)
    expect(await c.get('map')).toBeUndefined()
    expect(await c.get('big')).toBeUndefined()
    expect(await c.get('deep')).toBeUndefined()
    expect(corrupt).toEqual(['map', 'big', 'deep'])
    expect(errors.every((e) => e instanceof CacheSerializationError)).toBe(true)
  })
}
