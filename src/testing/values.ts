import { expect, it } from 'vitest'
import type { Harness } from './harness.js'

/** The values every backend must round-trip, each equal and of the same type. */
export const VALUE_TABLE: readonly (readonly [string, unknown])[] = [
  ['false', false],
  ['true', true],
  ['zero', 0],
  ['minus one', -1],
  ['5e12', 5_000_000_000_000],
  ['MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER],
  ['MIN_SAFE_INTEGER', Number.MIN_SAFE_INTEGER],
  ['1.5', 1.5],
  ['empty string', ''],
  ['spam', 'spam'],
  ['digits as a string', '42'],
  ['quoted string', '"quoted"'],
  ['unicode', 'Grüße, 世界, Ω'],
  ['emoji', '🦄👩‍💻🏳️‍🌈'],
  ['empty object', {}],
  ['empty array', []],
  ['nested', { a: [1, 'two', { three: [null, true] }], b: { c: { d: 'e' } } }],
  ['nested arrays', [[1, [2, [3, []]]]]],
  ['null', null],
  ['Date', new Date('2024-02-29T12:34:56.789Z')],
  ['Map', new Map<unknown, unknown>([['a', 1], [2, { b: [3] }]])],
  ['Set', new Set([1, 'two', 3])],
  ['BigInt', 12345678901234567890n],
  ['negative BigInt', -9n],
  ['Buffer', Buffer.from([0, 1, 2, 250, 255])],
  ['Uint8Array', new Uint8Array([9, 8, 7])],
  ['rich types nested', { when: new Date(0), tags: new Set(['x']), big: [1n, 2n], bytes: Buffer.from('hi') }],
  ['an object with a $t key', { $t: 'Date', v: 0 }],
  ['NaN and Infinity', [Number.NaN, Infinity, -Infinity]],
]

function sameType(a: unknown, b: unknown): void {
  expect(Object.prototype.toString.call(a)).toBe(Object.prototype.toString.call(b))
  if (Buffer.isBuffer(b)) expect(Buffer.isBuffer(a)).toBe(true)
  else if (b instanceof Uint8Array) expect(Buffer.isBuffer(a)).toBe(false)
}

export function valueTests(h: () => Harness): void {
  for (const [label, value] of VALUE_TABLE) {
    it(`round-trips ${label}`, async () => {
      const c = await h().cache()
      expect(await c.set('v', value)).toBe(true)
      const back = await c.get('v')
      expect(back).toEqual(value)
      sameType(back, value)
      const [many] = await c.getMany(['v'])
      expect(many).toEqual(value)
    })
  }

  it('round-trips every value of the table at once with setMany/getMany', async () => {
    const c = await h().cache()
    await c.setMany(VALUE_TABLE.map(([label, value]) => [label, value] as const))
    expect(await c.getMany(VALUE_TABLE.map(([label]) => label))).toEqual(VALUE_TABLE.map(([, value]) => value))
  })
}
