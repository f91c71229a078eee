import { describe, expect, it } from 'vitest'
import { jsonCodec, v8Codec } from '../src/codec.js'
import { CacheSerializationError, createCache } from '../src/index.js'
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

describe('crafted payloads (written by another program)', () => {
  const decode = (text: string) => jsonCodec.decode(text) as Record<string, unknown>

  it('a __proto__ member never becomes the prototype: it stays an own data property', () => {
    for (const text of ['~{"__proto__":{"isAdmin":true},"a":1}', '{"__proto__":{"isAdmin":true},"a":1}']) {
      const back = decode(text)
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
      expect(back.isAdmin).toBeUndefined()
      expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toEqual({ isAdmin: true })
      expect(back.a).toBe(1)
    }
  })

  it('nested forms too: inside objects, arrays, Maps, Sets and the Object tag', () => {
    const evil = '{"__proto__":{"isAdmin":true}}'
    const payloads = [
      `~{"x":{"y":${evil}}}`,
      `~[1,${evil}]`,
      `~{"$t":"Map","v":[["k",${evil}],[${evil},1]]}`,
      `~{"$t":"Set","v":[${evil}]}`,
      `~{"$t":"Object","v":{"$t":"x","__proto__":{"isAdmin":true}}}`,
      `~{"$t":"Object","v":{"$t":"x","in":${evil}}}`,
    ]
    for (const text of payloads) {
      const seen: object[] = []
      const walk = (v: unknown): void => {
        if (typeof v !== 'object' || v === null) return
        seen.push(v)
        if (v instanceof Map) {
          for (const [k, x] of v) {
            walk(k)
            walk(x)
          }
        }
        else if (v instanceof Set) for (const x of v) walk(x)
        else for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k])
      }
      walk(jsonCodec.decode(text))
      const plain = seen.filter((o) => !(o instanceof Map || o instanceof Set || Array.isArray(o)))
      expect(plain.length, text).toBeGreaterThan(0)
      for (const o of plain) {
        expect(Object.getPrototypeOf(o), text).toBe(Object.prototype)
        if (!Object.hasOwn(o, 'isAdmin')) expect((o as { isAdmin?: unknown }).isAdmin, text).toBeUndefined()
      }
      expect(plain.some((o) => Object.hasOwn(o, '__proto__')), text).toBe(true)
    }
    expect(({} as { isAdmin?: unknown }).isAdmin).toBeUndefined()
  })

  it('malformed tag forms are a CacheSerializationError, never a TypeError or SyntaxError', () => {
    for (const inner of [
      '{"$t":"Map","v":5}',
      '{"$t":"Map","v":[5]}',
      '{"$t":"Map","v":[[1]]}',
      '{"$t":"Map"}',
      '{"$t":"Set","v":null}',
      '{"$t":"Set","v":"abc"}',
      '{"$t":"BigInt","v":"abc"}',
      '{"$t":"BigInt","v":"0x10"}',
      '{"$t":"BigInt","v":1}',
      '{"$t":"Buffer","v":5}',
      '{"$t":"Uint8Array","v":{}}',
      '{"$t":"Date","v":"2024-01-01"}',
      '{"$t":"Number","v":"5"}',
      '{"$t":"Object","v":null}',
      '{"$t":"Object","v":[1]}',
      '{"$t":"Object","v":1}',
      '{"$t":"toString"}',
      '{"$t":"__proto__"}',
    ]) {
      for (const text of [`~${inner}`, `~[${inner}]`, `~{"a":${inner}}`]) {
        expect(() => jsonCodec.decode(text), text).toThrow(CacheSerializationError)
      }
    }
  })

  it('a payload nested too deeply for the walk is a CacheSerializationError', () => {
    const depth = 200_000
    expect(() => jsonCodec.decode(`~${'['.repeat(depth)}${']'.repeat(depth)}`)).toThrow(CacheSerializationError)
  })
})

describe('an own __proto__ member of a value', () => {
  const withProto = (proto: unknown, rest: Record<string, unknown>): Record<string, unknown> => {
    const o: Record<string, unknown> = { ...rest }
    Object.defineProperty(o, '__proto__', { value: proto, enumerable: true, writable: true, configurable: true })
    return o
  }
  const ownProto = (o: unknown) => Object.getOwnPropertyDescriptor(o, '__proto__')?.value

  it('is kept beside a rich type, and decodes as an own member', () => {
    for (const value of [
      withProto(1, { when: new Date(0) }),
      withProto({ a: 1 }, { ids: new Set([1]) }),
      withProto(new Date(5), {}),
      JSON.parse('{"__proto__":1}') as Record<string, unknown>,
    ]) {
      const back = jsonCodec.decode(jsonCodec.encode(value)) as Record<string, unknown>
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
      expect(Object.hasOwn(back, '__proto__')).toBe(true)
      expect(ownProto(back)).toEqual(ownProto(value))
      expect(back).toStrictEqual(value)
    }
  })

  it('beside a $t key (the Object tag) too', () => {
    const value = withProto({ x: 1n }, { $t: 'Date' })
    const back = jsonCodec.decode(jsonCodec.encode(value)) as Record<string, unknown>
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    expect(ownProto(back)).toEqual({ x: 1n })
    expect(back.$t).toBe('Date')
  })

  it('inside a Map and a Set', () => {
    const value = new Map<unknown, unknown>([[withProto(2, { k: 1n }), new Set([withProto(3, { big: 2n })])]])
    const back = jsonCodec.decode(jsonCodec.encode(value)) as Map<unknown, Set<unknown>>
    const [k, set] = [...back][0] ?? []
    expect(ownProto(k)).toBe(2)
    expect(ownProto([...(set ?? [])][0])).toBe(3)
  })
})

describe('BigInt size', () => {
  it('a BigInt of more than 100,000 digits is refused both ways, so a crafted one cannot stall a read', () => {
    const most = 10n ** 100_000n - 1n
    expect(jsonCodec.decode(jsonCodec.encode(most))).toBe(most)
    expect(jsonCodec.decode(jsonCodec.encode(-most))).toBe(-most)
    expect(() => jsonCodec.encode(most + 1n)).toThrow(/BigInt of more than 100000 digits.*serializer: 'v8'/)
    expect(() => jsonCodec.encode([-most - 1n])).toThrow(CacheSerializationError)
    expect(() => jsonCodec.decode(`~{"$t":"BigInt","v":"${'9'.repeat(100_001)}"}`)).toThrow(CacheSerializationError)
  })
})
