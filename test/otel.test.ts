/**
 * cachekit/otel with the OpenTelemetry SDK itself (its in-memory span and metric exporters), over the memory
 * backend, a SQLite file and the shared Redis.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { context, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { CacheTypeError, createCache, type Cache } from '../src/index.js'
import { instrument } from '../src/otel.js'
import { uniquePrefix, uniqueTableName } from './support/prefix.js'
import { REDIS_URL, redisOrSkip } from './support/redis.js'
import { pgQuery, POSTGRES_URL, postgresOrSkip } from './support/sql.js'

const spans = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })
const meterProvider = new MeterProvider({ readers: [reader] })

const opened: Cache[] = []
const dirs: string[] = []
let stop: (() => void) | undefined

function open(config: Record<string, unknown> = {}): Cache {
  const c = createCache({ type: 'memory', ...config })
  opened.push(c)
  return c
}

function named(name: string): ReadableSpan[] {
  return spans.getFinishedSpans().filter((s) => s.name === name)
}

function only(name: string): ReadableSpan {
  const found = named(name)
  expect(found, `spans named ${name}`).toHaveLength(1)
  return found[0] as ReadableSpan
}

/** The metric's data points as `{ attributes, value }`, after an export of everything recorded so far. */
async function points(name: string): Promise<{ attributes: Record<string, unknown>; value: unknown }[]> {
  await reader.forceFlush()
  const batches = metricExporter.getMetrics()
  const last = batches[batches.length - 1]
  const metric = last?.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name)
  return (metric?.dataPoints ?? []).map((p: DataPoint<unknown>) => ({ attributes: p.attributes, value: p.value }))
}

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
})
beforeEach(() => {
  stop = instrument({ tracerProvider, meterProvider })
})
afterEach(async () => {
  stop?.()
  stop = undefined
  for (const c of opened.splice(0)) await c.close()
  spans.reset()
})
afterAll(async () => {
  context.disable()
  await meterProvider.shutdown()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('cachekit/otel: spans', () => {
  it('names each span cache.<operation>, with the backend, and hit, hits and factory_ran on reads', async () => {
    const cache = open()
    await cache.set('a', 1)
    await cache.get('a')
    await cache.get('nothing')
    await cache.getMany(['a', 'nothing', 'none'])
    await cache.getOrSet('computed', () => 'v')
    await cache.getOrSet('computed', () => 'not run')
    await cache.has('a')
    await cache.inc('n')
    await cache.delete('a')

    const set = only('cache.set')
    expect(set.kind).toBe(SpanKind.INTERNAL)
    const size = set.attributes['cache.item_size']
    expect(size).toBeGreaterThan(0)
    expect(set.attributes).toEqual({ 'cache.operation': 'set', 'cache.backend': 'memory', 'cache.item_size': size })
    expect(set.status.code).toBe(SpanStatusCode.UNSET)
    expect(named('cache.get').map((s) => s.attributes['cache.hit'])).toEqual([true, false])
    // A hit says where it was read and the entry's size, the one set wrote; a miss says neither.
    expect(named('cache.get').map((s) => [s.attributes['cache.tier'], s.attributes['cache.item_size']])).toEqual([
      ['backend', size],
      [undefined, undefined],
    ])
    expect(only('cache.getMany').attributes['cache.hits']).toBe(1)
    expect(named('cache.getOrSet').map((s) => [s.attributes['cache.hit'], s.attributes['cache.factory_ran']])).toEqual([
      [false, true],
      [true, false],
    ])
    expect(only('cache.has').attributes['cache.hit']).toBe(true)
    expect(only('cache.inc').attributes['cache.operation']).toBe('inc')
    expect(only('cache.delete').attributes['cache.backend']).toBe('memory')
    // Keys can hold personal data: none on a span unless asked for.
    for (const s of spans.getFinishedSpans()) {
      expect(Object.keys(s.attributes).filter((k) => k.startsWith('cache.key'))).toEqual([])
    }
  })

  it('a memoized call is a cache.memoize span with the function\'s name, hit and factory_ran', async () => {
    const cache = open()
    const square = cache.memoize(async function square(n: number) {
      return n * n
    })
    await square(3)
    await square(3)
    expect(named('cache.memoize').map((s) => [s.attributes['code.function.name'], s.attributes['cache.hit'], s.attributes['cache.factory_ran']])).toEqual([
      ['square', false, true],
      ['square', true, false],
    ])
    // Its key only with `keys: true`, as every span's.
    for (const s of named('cache.memoize')) expect(s.attributes['cache.key']).toBeUndefined()
  })

  it('keys: true puts the key or keys and the key prefix on spans', async () => {
    stop?.()
    stop = instrument({ tracerProvider, meterProvider, keys: true })
    const cache = open({ keyPrefix: 'app:' })
    await cache.set('user:1', 'x')
    await cache.getMany(['user:1', 'user:2'])
    expect(only('cache.set').attributes).toMatchObject({ 'cache.key': ['user:1'], 'cache.key_prefix': 'app:' })
    expect(only('cache.getMany').attributes).toMatchObject({ 'cache.key': ['user:1', 'user:2'], 'cache.key_prefix': 'app:' })
  })

  it("a span is a child of the caller's active span", async () => {
    const cache = open()
    const tracer = tracerProvider.getTracer('app')
    let requestId = ''
    await tracer.startActiveSpan('GET /user', async (request) => {
      requestId = request.spanContext().spanId
      await cache.get('user')
      request.end()
    })
    const get = only('cache.get')
    expect(get.parentSpanContext?.spanId).toBe(requestId)
    expect(get.spanContext().traceId).toBe(only('GET /user').spanContext().traceId)
  })

  it('a failed operation: status ERROR and the error\'s name, without its message (which quotes the key); counted in cache.errors', async () => {
    const cache = open()
    await cache.set('alice@example.com', 'hello')
    await expect(cache.inc('alice@example.com')).rejects.toBeInstanceOf(CacheTypeError)
    const inc = only('cache.inc')
    expect(inc.status.code).toBe(SpanStatusCode.ERROR)
    expect(inc.attributes['error.type']).toBe('CacheTypeError')
    expect(inc.events.map((e) => [e.name, e.attributes?.['exception.type'], e.attributes?.['exception.message']])).toEqual([['exception', 'CacheTypeError', 'CacheTypeError']])
    expect(JSON.stringify([inc.status, inc.attributes, inc.events])).not.toContain('alice')
    expect(await points('cache.errors')).toContainEqual({ attributes: { 'cache.operation': 'inc', 'cache.backend': 'memory', 'error.type': 'CacheTypeError' }, value: 1 })
  })

  it('keys: true records the message and stack of a failed operation', async () => {
    stop?.()
    stop = instrument({ tracerProvider, meterProvider, keys: true })
    const cache = open()
    await cache.set('alice@example.com', 'hello')
    await expect(cache.inc('alice@example.com')).rejects.toBeInstanceOf(CacheTypeError)
    const inc = only('cache.inc')
    expect(inc.status.message).toContain('alice@example.com')
    expect(String(inc.events[0]?.attributes?.['exception.message'])).toContain('alice@example.com')
    expect(String(inc.events[0]?.attributes?.['exception.stacktrace'])).toContain('CacheTypeError')
  })

  it('a factory that rejects with undefined, or with an object that cannot be printed: an ERROR span, no crash', async () => {
    const cache = open()
    const unprintable = Object.create(null) as object
    await expect(cache.getOrSet('a', () => Promise.reject(undefined))).rejects.toBeUndefined()
    await expect(cache.getOrSet('b', () => Promise.reject(unprintable))).rejects.toBe(unprintable)
    const [first, second] = named('cache.getOrSet')
    expect([first?.status.code, first?.attributes['error.type']]).toEqual([SpanStatusCode.ERROR, 'undefined'])
    expect([second?.status.code, second?.attributes['error.type']]).toEqual([SpanStatusCode.ERROR, 'object'])
  })

  it('a SQLite file: db.system.name sqlite, kind INTERNAL (in process)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachekit-otel-'))
    dirs.push(dir)
    const cache = createCache({ type: 'sqlite', path: join(dir, 'c.sqlite') })
    opened.push(cache)
    await cache.set('k', 1)
    const set = only('cache.set')
    expect(set.attributes).toEqual({ 'cache.operation': 'set', 'cache.backend': 'sqlite', 'db.system.name': 'sqlite', 'cache.item_size': expect.any(Number) })
    expect(set.kind).toBe(SpanKind.INTERNAL)
  })

  it('Redis: db.system.name redis, kind CLIENT', async (t) => {
    if (!(await redisOrSkip('the cachekit/otel Redis case'))) return t.skip()
    const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: uniquePrefix('otel') })
    opened.push(cache)
    await cache.ready()
    await cache.set('k', 1)
    expect(await cache.get('k')).toBe(1)
    await cache.clear()
    for (const name of ['cache.set', 'cache.get']) {
      const s = only(name)
      expect(s.kind).toBe(SpanKind.CLIENT)
      expect(s.attributes).toMatchObject({ 'cache.backend': 'redis', 'db.system.name': 'redis' })
    }
    expect(only('cache.get').attributes['cache.hit']).toBe(true)
  })

  it('PostgreSQL: db.system.name postgresql, kind CLIENT', async (t) => {
    if (!(await postgresOrSkip('the cachekit/otel PostgreSQL case'))) return t.skip()
    const table = uniqueTableName('otel')
    const cache = createCache({ type: 'postgres', url: POSTGRES_URL, table })
    try {
      await cache.set('k', 1)
      const s = only('cache.set')
      expect(s.kind).toBe(SpanKind.CLIENT)
      expect(s.attributes).toEqual({ 'cache.operation': 'set', 'cache.backend': 'postgres', 'db.system.name': 'postgresql', 'cache.item_size': expect.any(Number) })
    } finally {
      await cache.close()
      await pgQuery(`DROP TABLE IF EXISTS "${table}"`)
    }
  })

  it('the function it returns unsubscribes: no more spans, and a second instrument() is not affected', async () => {
    const cache = open()
    const other = new InMemorySpanExporter()
    const stopOther = instrument({ tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(other)] }), meterProvider })
    try {
      stop?.()
      stop?.() // twice is harmless
      stop = undefined
      await cache.set('k', 1)
      expect(spans.getFinishedSpans()).toEqual([])
      expect(other.getFinishedSpans().map((s) => s.name)).toEqual(['cache.set'])
    } finally {
      stopOther()
    }
  })

  it('unsubscribing with an operation in flight ends its span', async () => {
    const cache = open()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    const running = cache.getOrSet('slow', async () => {
      await gate
      return 1
    })
    // `start` is published during the call itself: the span is open now.
    stop?.()
    stop = undefined
    expect(named('cache.getOrSet')).toHaveLength(1)
    release()
    expect(await running).toBe(1)
    // It ended once, at the unsubscribe, without an outcome.
    expect(named('cache.getOrSet')).toHaveLength(1)
    expect(only('cache.getOrSet').attributes['cache.factory_ran']).toBeUndefined()
  })
})

describe('cachekit/otel: metrics', () => {
  it('duration by operation and backend; hits and misses of every read, getMany key by key', async () => {
    stop?.()
    stop = instrument({ tracerProvider, meterProvider, keys: true })
    const cache = open({ keyPrefix: uniquePrefix('otel-metrics') + ':' })
    const before = async (name: string, operation: string) =>
      ((await points(name)).find((p) => p.attributes['cache.operation'] === operation && p.attributes['cache.backend'] === 'memory')?.value as number | undefined) ?? 0
    const [hits0, misses0, manyHits0, manyMisses0] = [await before('cache.hits', 'get'), await before('cache.misses', 'get'), await before('cache.hits', 'getMany'), await before('cache.misses', 'getMany')]
    await cache.set('a', 1)
    await cache.get('a')
    await cache.get('a')
    await cache.get('b')
    await cache.getMany(['a', 'b', 'c'])
    expect((await before('cache.hits', 'get')) - hits0).toBe(2)
    expect((await before('cache.misses', 'get')) - misses0).toBe(1)
    expect((await before('cache.hits', 'getMany')) - manyHits0).toBe(1)
    expect((await before('cache.misses', 'getMany')) - manyMisses0).toBe(2)
    const durations = await points('cache.operation.duration')
    const getDuration = durations.find((p) => p.attributes['cache.operation'] === 'get' && p.attributes['cache.backend'] === 'memory')
    expect(getDuration).toBeDefined()
    const histogram = getDuration?.value as Histogram
    expect(histogram.count).toBeGreaterThanOrEqual(3)
    expect(histogram.sum).toBeGreaterThan(0)
    // Metrics never carry keys, even with `keys: true`.
    for (const p of durations) expect(Object.keys(p.attributes).sort()).toEqual(['cache.backend', 'cache.operation'])
    for (const p of await points('cache.misses')) expect(Object.keys(p.attributes).sort()).toEqual(['cache.backend', 'cache.operation'])
    for (const p of await points('cache.hits')) expect(Object.keys(p.attributes).filter((k) => k !== 'cache.tier').sort()).toEqual(['cache.backend', 'cache.operation'])
  })

  it('hits of the memory tier (l1) and of the backend are counted apart, and their spans say which', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cachekit-otel-l1-'))
    dirs.push(dir)
    const path = join(dir, 'l1.sqlite')
    const writer = open({ type: 'sqlite', path })
    const tierHits = async (tier: string) =>
      ((await points('cache.hits')).find((p) => p.attributes['cache.operation'] === 'get' && p.attributes['cache.backend'] === 'sqlite' && p.attributes['cache.tier'] === tier)
        ?.value as number | undefined) ?? 0
    const [l10, backend0] = [await tierHits('l1'), await tierHits('backend')]
    await writer.set('k', { big: 'x'.repeat(100) })
    // Opened after the write, so that its memory tier starts empty and hears of no change after: its first
    // read goes to the file and fills the tier, the next ones answer from memory.
    const other = open({ type: 'sqlite', path, l1: true })
    await other.ready()
    await other.get('k')
    await other.get('k')
    await other.get('k')
    await other.getOrSet('k', () => 'not run')
    expect(named('cache.get').map((s) => s.attributes['cache.tier'])).toEqual(['backend', 'l1', 'l1'])
    expect(only('cache.getOrSet').attributes).toMatchObject({ 'cache.hit': true, 'cache.tier': 'l1' })
    const written = only('cache.set').attributes['cache.item_size']
    expect(written).toBeGreaterThan(100)
    for (const s of [...named('cache.get'), ...named('cache.getOrSet')]) expect(s.attributes['cache.item_size']).toBe(written)
    expect((await tierHits('backend')) - backend0).toBe(1)
    expect((await tierHits('l1')) - l10).toBe(2)
  })
})
