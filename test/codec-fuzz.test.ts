/**
 * The JSON codec against hostile payloads (what another program may write into a shared backend) and
 * against random rich values: decoding never hands out a prototype of the payload's choosing, never throws
 * anything but a CacheSerializationError, and every value of cachekit's own comes back equal.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonCodec } from '../src/codec.js'
import { CacheSerializationError } from '../src/errors.js'

/** A JSON tree whose objects are lists of entries, so that keys may repeat and be `__proto__`. */
type Tree = null | boolean | number | string | Tree[] | { entries: [string, Tree][] }

const TAGS = ['Number', 'BigInt', 'undefined', 'Date', 'Buffer', 'Uint8Array', 'Map', 'Set', 'Object', 'toString', '__proto__', 'constructor']
const hostileKey = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', '$t', 'v', 'isAdmin', 'toString', 'hasOwnProperty') },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
)
const scalar: fc.Arbitrary<Tree> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '12', '-3', 'AAE=', '', '0x1', '2024-01-01'),
  fc.string({ maxLength: 8, unit: 'binary' }),
)

const { tree } = fc.letrec<{ tree: Tree; object: Tree; tagged: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('tree'), { maxLength: 4 }),
    tie('object'),
    tie('tagged'),
  ),
  object: fc.array(fc.tuple(hostileKey, tie('tree')), { maxLength: 4 }).map((entries) => ({ entries })),
  // cachekit's own tag forms, well formed or not, with a hostile value (or none) and extra members.
  tagged: fc
    .tuple(fc.constantFrom(...TAGS), fc.option(tie('tree')), fc.array(fc.tuple(hostileKey, tie('tree')), { maxLength: 2 }))
    .map(([t, v, extra]) => ({ entries: [['$t', t], ...(v === null ? [] : [['v', v] as [string, Tree]]), ...extra] })),
}))

function text(t: Tree): string {
  if (Array.isArray(t)) return `[${t.map(text).join(',')}]`
  if (t !== null && typeof t === 'object') return `{${t.entries.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`
  return JSON.stringify(t)
}

const ALLOWED_PROTOTYPES = new Set<unknown>([
  Object.prototype,
  Array.prototype,
  Date.prototype,
  Map.prototype,
  Set.prototype,
  Buffer.prototype,
  Uint8Array.prototype,
])

/** Every object reachable from a decoded value: its prototype is one of the allowed ones. */
function checkPrototypes(value: unknown, seen = new Set<object>()): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return
  seen.add(value)
  const proto: unknown = Object.getPrototypeOf(value)
  if (!ALLOWED_PROTOTYPES.has(proto)) throw new Error(`a decoded object has the prototype ${String(proto && JSON.stringify(proto))}`)
  if (value instanceof Map) {
    for (const [k, v] of value) {
      checkPrototypes(k, seen)
      checkPrototypes(v, seen)
    }
  } else if (value instanceof Set) {
    for (const v of value) checkPrototypes(v, seen)
  } else if (!(value instanceof Uint8Array) && !(value instanceof Date)) {
    for (const k of Reflect.ownKeys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, k)
      if (d === undefined || !('value' in d)) throw new Error(`a decoded object has an accessor ${String(k)}`)
      checkPrototypes(d.value, seen)
    }
  }
}

const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort()

describe('decoding hostile JSON', () => {
  it('gives only allowed prototypes and throws only CacheSerializationError', () => {
    fc.assert(
      fc.property(tree, fc.boolean(), fc.boolean(), (t, rich, bytes) => {
        const payload = (rich ? '~' : '') + text(t)
        let value: unknown
        try {
          value = jsonCodec.decode(bytes ? Buffer.from(payload) : payload)
        } catch (error) {
          if (error instanceof CacheSerializationError) return
          throw error
        }
        checkPrototypes(value)
      }),
      { numRuns: 3000 },
    )
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore)
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  })

  it('also for fast-check jsonValue with injected keys', () => {
    const injected = fc.jsonValue({ maxDepth: 4 }).chain((v) =>
      fc.tuple(fc.constant(v), fc.constantFrom('__proto__', 'constructor', 'prototype', '$t'), fc.jsonValue({ maxDepth: 2 })),
    )
    fc.assert(
      fc.property(injected, fc.boolean(), ([v, k, w], rich) => {
        const body = JSON.stringify(v)
        // Put the hostile member first in every object of the text.
        const hostile = body.replace(/\{/g, `{${JSON.stringify(k)}:${JSON.stringify(w)},`).replace(/,\}/g, '}')
        let value: unknown
        try {
          value = jsonCodec.decode((rich ? '~' : '') + hostile)
        } catch (error) {
          if (error instanceof CacheSerializationError) return
          throw error
        }
        checkPrototypes(value)
      }),
      { numRuns: 1000 },
    )
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore)
  })
})

/** Values cachekit stores: JSON plus its rich types, with keys that JSON objects find awkward. */
const valueKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', '$t', 'v'), fc.string({ maxLength: 6 }))
const noNegativeZero = (n: number) => (Object.is(n, -0) ? 0 : n)
const { value } = fc.letrec<{ value: unknown; item: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 8, unit: 'binary' })),
    fc.double().map(noNegativeZero),
    fc.bigInt(),
    fc.date({ noInvalidDate: false }),
    fc.uint8Array({ maxLength: 6 }),
    fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)),
    fc.array(tie('item'), { maxLength: 4 }),
    fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }).map((pairs) => new Map(pairs)),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
    fc.array(fc.tuple(valueKey, tie('value')), { maxLength: 4 }).map((entries) => {
      const o: Record<string, unknown> = {}
      for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
      return o
    }),
  ),
  // Array items may be undefined; object members may not (JSON drops them, and so does cachekit).
  item: fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 6, arbitrary: tie('value') }),
}))

/** Equal values, own `__proto__` members included (and classes told apart: Buffer is not Uint8Array). */
function same(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b)
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  if (a instanceof Date) return Object.is(a.getTime(), (b as Date).getTime())
  if (a instanceof Uint8Array) return Buffer.from(a).equals(Buffer.from(b as Uint8Array))
  if (a instanceof Set || a instanceof Map) {
    const x = [...a]
    const y = [...(b as Set<unknown>)]
    return x.length === y.length && x.every((v, i) => same(v, y[i]))
  }
  const ka = Reflect.ownKeys(a)
  const kb = Reflect.ownKeys(b)
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false
  return ka.every((k) => same((a as Record<PropertyKey, unknown>)[k], (b as Record<PropertyKey, unknown>)[k]))
}

describe('round trip of random rich values', () => {
  it('decode(encode(v)) equals v, own __proto__ members included', () => {
    fc.assert(
      fc.property(value, (v) => {
        const payload = jsonCodec.encode(v)
        const back = jsonCodec.decode(payload)
        expect(same(back, v), `${String(payload)}`).toBe(true)
        checkPrototypes(back)
      }),
      { numRuns: 3000 },
    )
  })
})
