/**
 * What tracing costs a memory cache: get (hit), set and inc with nobody subscribed to `cachekit:operation`
 * and with a subscriber that keeps each operation's duration (as an exporter would), interleaved in rotated
 * rounds. The cost with nobody subscribed, against a build without tracing, is bench/against.ts's to show.
 * Run: node --import tsx bench/tracing.ts [--rounds 5]
 */
import { tracingChannel } from 'node:diagnostics_channel'
import { parseArgs } from 'node:util'
import { Bench } from 'tinybench'
import { createCache, TRACE_CHANNEL, type OperationContext } from '../src/index.js'

const { values } = parseArgs({ options: { rounds: { type: 'string' } } })
const ROUNDS = Number(values.rounds ?? 5)
const channel = tracingChannel<unknown, OperationContext & { began?: number }>(TRACE_CHANNEL)
let durations = 0
const subscriber = {
  start: (c: OperationContext & { began?: number }) => void (c.began = performance.now()),
  end: () => {},
  asyncStart: () => {},
  asyncEnd: (c: OperationContext & { began?: number }) => void (durations += performance.now() - (c.began ?? 0)),
  error: () => {},
}

const cache = createCache({ type: 'memory' })
await cache.ready()
const value = { id: 1, name: 'a user', roles: ['reader', 'writer'], visits: 42 }
await cache.set('k', value, '1h')
const OPS = { get: () => cache.get('k'), set: () => cache.set('k', value, '1h'), inc: () => cache.inc('n') }
const figures = new Map<string, number[]>()
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? (['none', 'subscribed'] as const) : (['subscribed', 'none'] as const)
  for (const who of order) {
    if (who === 'subscribed') channel.subscribe(subscriber)
    const bench = new Bench({ time: 300 })
    for (const [op, run] of Object.entries(OPS)) bench.add(op, run)
    await bench.run()
    if (who === 'subscribed') channel.unsubscribe(subscriber)
    for (const task of bench.tasks) figures.set(`${task.name} ${who}`, [...(figures.get(`${task.name} ${who}`) ?? []), task.result?.throughput?.mean ?? 0])
  }
}
console.log(`\ntracing on a memory cache: ops/s (median of ${ROUNDS} rounds)`)
console.log(`  ${'op'.padEnd(6)}${'no subscriber'.padStart(15)}${'subscribed'.padStart(12)}   subscribed / none`)
for (const op of Object.keys(OPS)) {
  const none = median(figures.get(`${op} none`) ?? [])
  const subscribed = median(figures.get(`${op} subscribed`) ?? [])
  console.log(`  ${op.padEnd(6)}${Math.round(none).toLocaleString('en').padStart(15)}${Math.round(subscribed).toLocaleString('en').padStart(12)}   ${(subscribed / none).toFixed(2)}x`)
}
if (durations <= 0) throw new Error('bench/tracing.ts: the subscriber saw no operation')
await cache.close()
