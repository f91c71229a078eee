import { describe, expect, it } from 'vitest'
import { jsonCodec, v8Codec } from '../src/codec.js'
import { createCache } from '../src/index.js'
import { VALUE_TABLE } from '../src/testing/index.js'

describe('the json codec', () => {
  it('stores plain JSON values as plain JSON text, read by one JSON.parse', () => {
    for (const value of [0, -1, 1.5, 'spam', '', true, null, { a: [1, { b: 'c' }] }, []]) {
      const payload = jsonCodec.encode(value)
      expect(payload).toBe(JSON.stringify(value))
      expect(JSON.parse(payload as string)).toEqual(value)
    }
  })

  it('stores an integer as its decimal text', () => {
    expect(jsonCodec.encode(42)).toBe('42')
    expect(jsonCodec.encode(-7)).toBe('-7')
    expect(jsonCodec.encode(Number.MAX_SAFE_INTEGER)).toBe(String(Number.MAX_SAFE_INTEGER))
    expect(jsonCodec.decode('41')).toBe(41)
  })

  it('marks rich payloads so that a plain string never reads as one', () => {
    expect(String(jsonCodec.encode(new Date(0)))).toMatch(/^~/)
    expect(jsonCodec.decode(jsonCodec.encode('~{"$t":"Date","v":0}'))).toBe('~{"$t":"Date","v":0}')
  })

  it('round-trips the whole value table, as text and as bytes', () => {
    for (const [, value] of VALUE_TABLE) {
      const payload = jsonCodec.encode(value)
      expect(jsonCodec.decode(payload)).toEqual(value)
      expect(jsonCodec.decode(Buffer.from(payload as string))).toEqual(value)
    }
  })

  it('drops undefined object properties as JSON does, and keeps undefined array items', () => {
    expect(jsonCodec.decode(jsonCodec.encode({ a: 1, b: undefined }))).toStrictEqual({ a: 1 })
    expect(jsonCodec.decode(jsonCodec.encode([1, undefined, 3]))).toStrictEqual([1, undefined, 3])
  })

  it('stores a class instance with toJSON as its JSON form', () => {
    class Money {
      constructor(readonly cents: number) {}
      toJSON() {
        return `${this.cents / 100} EUR`
      }
    }
    expect(jsonCodec.decode(jsonCodec.encode({ price: new Money(150) }))).toEqual({ price: '1.5 EUR' })
  })

  it('a payload that is not cachekit JSON is a CacheSerializationError naming what it starts with', () => {
    expect(() => jsonCodec.decode('hello')).toThrow(/starts with "hello"/)
    expect(() => jsonCodec.decode(new Uint8Array([0xff, 0xfe]))).toThrow(/UTF-8/)
  })
})

describe('the v8 codec', () => {
  it('keeps integers as decimal text and everything else structured-cloned', () => {
    expect(v8Codec.encode(42)).toBe('42')
    const cyclic: Record<string, unknown> = { a: new Map([[1, new Set([2])]]) }
    cyclic.self = cyclic
    const back = v8Codec.decode(v8Codec.encode(cyclic)) as Record<string, unknown>
    expect(back.self).toBe(back)
    expect(back.a).toEqual(new Map([[1, new Set([2])]]))
  })

  it('works as the serializer option, with inc', async () => {
    const c = createCache({ type: 'memory', serializer: 'v8' })
    await c.set('when', new Date(5))
    expect(await c.get('when')).toEqual(new Date(5))
    await c.set('n', 41)
    expect(await c.inc('n')).toBe(42)
    await c.close()
  })
})

describe('a custom codec', () => {
  it('is used for values, while integers stay decimal text so inc works', async () => {
    const calls: string[] = []
    const c = createCache({
      type: 'memory',
      serializer: {
        encode: (v) => {
          calls.push('encode')
          return `custom:${JSON.stringify(v)}`
        },
        decode: (p) => {
          calls.push('decode')
          return JSON.parse(String(p).slice('custom:'.length))
        },
      },
    })
    await c.set('o', { a: 1 })
    expect(await c.get('o')).toEqual({ a: 1 })
    await c.set('n', 1)
    expect(await c.inc('n')).toBe(2)
    expect(await c.get('n')).toBe(2)
    expect(calls).toEqual(['encode', 'decode'])
    await c.close()
  })
})
