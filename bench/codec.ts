/**
 * What the default codec costs over bare JSON for plain values (they must not pay for the rich types),
 * and what a rich value costs. `node --import tsx bench/codec.ts`
 */
import { Bench } from 'tinybench'
import { jsonCodec } from '../src/codec.js'

const values: Record<string, unknown> = {
  integer: 123456,
  string: 'a short string value',
  user: { id: 42, name: 'Ann', email: 'ann@example.com', roles: ['admin', 'dev'], active: true, score: 9.5 },
  list: Array.from({ length: 100 }, (_, i) => ({ id: i, title: `item ${i}`, tags: ['a', 'b'], done: i % 2 === 0 })),
}
const rich = { when: new Date(0), ids: new Set([1, 2, 3]), big: 10n }

const bench = new Bench({ time: 300 })
for (const [name, value] of Object.entries(values)) {
  const text = JSON.stringify(value)
  const payload = jsonCodec.encode(value)
  bench.add(`JSON.stringify ${name}`, () => JSON.stringify(value))
  bench.add(`codec.encode   ${name}`, () => jsonCodec.encode(value))
  bench.add(`JSON.parse     ${name}`, () => JSON.parse(text))
  bench.add(`codec.decode   ${name}`, () => jsonCodec.decode(payload))
}
const richPayload = jsonCodec.encode(rich)
bench.add('codec.encode   rich', () => jsonCodec.encode(rich))
bench.add('codec.decode   rich', () => jsonCodec.decode(richPayload))
await bench.run()

const hz = (name: string) => bench.tasks.find((t) => t.name === name)?.result?.throughput?.mean ?? (bench.tasks.find((t) => t.name === name)?.result as { hz?: number } | undefined)?.hz ?? Number.NaN
console.log('value    encode/JSON.stringify  decode/JSON.parse   (1.00 = no overhead; higher is slower)')
for (const name of Object.keys(values)) {
  const enc = hz(`JSON.stringify ${name}`) / hz(`codec.encode   ${name}`)
  const dec = hz(`JSON.parse     ${name}`) / hz(`codec.decode   ${name}`)
  console.log(`${name.padEnd(8)} ${enc.toFixed(2).padStart(10)}x ${dec.toFixed(2).padStart(20)}x`)
}
console.log(`rich     encode ${Math.round(hz('codec.encode   rich')).toLocaleString()} ops/s, decode ${Math.round(hz('codec.decode   rich')).toLocaleString()} ops/s`)
