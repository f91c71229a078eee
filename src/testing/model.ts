import fc from 'fast-check'
import { expect, it } from 'vitest'
import { CacheTypeError } from '../errors.js'
import type { Harness } from './harness.js'

type Op =
  | { op: 'set'; key: string; value: string | number; ttl: number }
  | { op: 'get'; key: string }
  | { op: 'add'; key: string; value: string | number; ttl: number }
  | { op: 'inc'; key: string; delta: number; ttl: number }
  | { op: 'delete'; key: string }
  | { op: 'touch'; key: string; ttl: number }
  | { op: 'has'; key: string }
  | { op: 'clear' }
  | { op: 'advance'; ms: number }

interface ModelEntry {
  value: string | number
  expiresAt: number | null
}

const keyArb = fc.constantFrom('a', 'b', 'c', 'd')
const valueArb = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 8 }))
/** TTLs in ms; 0 never expires. */
const ttlArb = fc.constantFrom(0, 1_000, 5_000, 60_000)

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb, ttl: ttlArb }),
  fc.record({ op: fc.constant('get' as const), key: keyArb }),
  fc.record({ op: fc.constant('add' as const), key: keyArb, value: valueArb, ttl: ttlArb }),
  fc.record({ op: fc.constant('inc' as const), key: keyArb, delta: fc.integer({ min: -5, max: 5 }), ttl: ttlArb }),
  fc.record({ op: fc.constant('delete' as const), key: keyArb }),
  fc.record({ op: fc.constant('touch' as const), key: keyArb, ttl: ttlArb }),
  fc.record({ op: fc.constant('has' as const), key: keyArb }),
  fc.record({ op: fc.constant('clear' as const) }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(500, 1_000, 4_000, 61_000) }),
)

/**
 * Random sequences of operations, checked step by step against a small reference model over the fake
 * clock. On a backend with its own clock, time does not move: `advance` is skipped.
 */
export function modelTests(h: () => Harness): void {
  it('behaves like the reference model under random operation sequences', async () => {
    const hh = h()
    const root = await hh.cache()
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        const c = root.namespace(`run${run++}:`)
        const model = new Map<string, ModelEntry>()
        const now = () => hh.clock.now()
        const live = (key: string): ModelEntry | undefined => {
          const e = model.get(key)
          if (e === undefined) return undefined
          if (e.expiresAt !== null && e.expiresAt <= now()) {
            model.delete(key)
            return undefined
          }
          return e
        }
        const expiry = (ttl: number) => (ttl === 0 ? null : now() + ttl)
        for (const o of ops) {
          switch (o.op) {
            case 'set':
              expect(await c.set(o.key, o.value, o.ttl)).toBe(true)
              model.set(o.key, { value: o.value, expiresAt: expiry(o.ttl) })
              break
            case 'get':
              expect(await c.get(o.key)).toEqual(live(o.key)?.value)
              break
            case 'has':
              expect(await c.has(o.key)).toBe(live(o.key) !== undefined)
              break
            case 'add': {
              const absent = live(o.key) === undefined
              expect(await c.add(o.key, o.value, o.ttl)).toBe(absent)
              if (absent) model.set(o.key, { value: o.value, expiresAt: expiry(o.ttl) })
              break
            }
            case 'inc': {
              const e = live(o.key)
              if (e !== undefined && !Number.isSafeInteger(e.value)) {
                await expect(c.inc(o.key, o.delta, o.ttl)).rejects.toBeInstanceOf(CacheTypeError)
              } else {
                const expected = ((e?.value as number | undefined) ?? 0) + o.delta
                expect(await c.inc(o.key, o.delta, o.ttl)).toBe(expected)
                model.set(o.key, { value: expected, expiresAt: e === undefined ? expiry(o.ttl) : e.expiresAt })
              }
              break
            }
            case 'delete':
              expect(await c.delete(o.key)).toBe(live(o.key) !== undefined)
              model.delete(o.key)
              break
            case 'touch': {
              const e = live(o.key)
              expect(await c.touch(o.key, o.ttl)).toBe(e !== undefined)
              if (e !== undefined) e.expiresAt = expiry(o.ttl)
              break
            }
            case 'clear':
              await c.clear()
              model.clear()
              break
            case 'advance':
              if (!hh.caps.realClock) hh.clock.advance(o.ms)
              break
          }
        }
      }),
      { numRuns: hh.caps.realClock ? 15 : 40 },
    )
  })
}
