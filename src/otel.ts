/**
 * `cachekit/otel`: OpenTelemetry spans and metrics from the `cachekit:operation` tracing channel.
 *
 * ```ts
 * import { instrument } from 'cachekit/otel'
 * const stop = instrument()            // the global tracer and meter providers
 * instrument({ tracerProvider, meterProvider, keys: true })
 * ```
 */
import { tracingChannel } from 'node:diagnostics_channel'
import {
  context as otelContext,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type Histogram,
  type MeterProvider,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api'
import { TRACE_CHANNEL, type OperationContext } from './trace.js'

export interface InstrumentOptions {
  /** Where spans go; the global provider when left out. */
  tracerProvider?: TracerProvider
  /** Where metrics go; the global provider when left out. */
  meterProvider?: MeterProvider
  /**
   * Put the keys (`cache.key`) and the key prefix (`cache.key_prefix`) on spans. Off by default: keys can hold
   * personal data (an email, a user id). Metrics never carry keys.
   */
  keys?: boolean
}

/** The `db.system.name` of each backend that has one; the others (memory, filesystem, keyv, null) have none. */
const DB_SYSTEM: Record<string, string> = {
  redis: 'redis',
  sqlite: 'sqlite',
  postgres: 'postgresql',
  mysql: 'mysql',
  memcached: 'memcached',
}

/** Backends reached over a connection: their spans are of kind CLIENT, the others INTERNAL. */
const REMOTE = new Set(['redis', 'postgres', 'mysql', 'memcached', 'keyv'])

const SCOPE = 'cachekit'

interface Pending {
  span: Span
  started: number
  /**
   * `error` was published (whatever was thrown, `undefined` included). Seen at `end`, the call threw before
   * it returned a promise, and `end` closes the span; a rejection publishes `error` after `end`.
   */
  failed: boolean
}

/** The name of what was thrown, never throwing itself (a factory may reject with anything). */
function errorName(error: unknown): string {
  try {
    if (error instanceof Error) return error.name
    return error === null ? 'null' : typeof error
  } catch {
    return 'unknown'
  }
}

function errorMessage(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error)
  } catch {
    return errorName(error)
  }
}

/** Hits and misses of a finished read: `get`, `has` and `getOrSet` one key; `getMany` its keys. */
function hitsOf(c: OperationContext): [hits: number, misses: number] | undefined {
  if (c.operation === 'getMany' && c.hits !== undefined) return [c.hits, (c.keys?.length ?? c.hits) - c.hits]
  if (c.hit === undefined) return undefined
  return c.hit ? [1, 0] : [0, 1]
}

/**
 * Subscribe to the tracing channel and turn every cache operation of this process into a span named
 * `cache.<operation>` (`cache.get`, `cache.set`, ...) and into metrics:
 * - `cache.operation.duration` (histogram, seconds) by `cache.operation` and `cache.backend`;
 * - `cache.hits` and `cache.misses` (counters) by the same, for the reads (`get`, `getMany`, `has`, `getOrSet`,
 *   `memoize`, `http`);
 *   a hit of `get` or `getOrSet` also by `cache.tier` (`l1` or `backend`), when the call's own read answered;
 * - `cache.errors` (counter) by the same and `error.type` (the error's name), for operations that rejected.
 *
 * Memoized calls are spans `cache.memoize` (with `code.function.name`), and requests to a cached route
 * `cache.http` (from the request until the cache answered it or handed it to the handler); both say
 * `cache.hit` and `cache.factory_ran` (for `http`, whether the handler ran).
 *
 * Span attributes: `cache.operation`, `cache.backend`, `db.system.name` (for redis, sqlite, postgresql, mysql,
 * memcached), `cache.hit` on reads, `cache.hits` on `getMany`, `cache.factory_ran` on `getOrSet`, `memoize` and
 * `http`, `cache.tier`
 * on a hit that this call read, `cache.item_size` (the encoded entry's bytes: read on a hit, written by
 * `set` and `add`), and with
 * `keys: true` also `cache.key` (the key or keys) and `cache.key_prefix`. A failed operation's span has status
 * ERROR, `error.type` (the error's name, e.g. `CacheTypeError`) and an exception event; its message (which
 * quotes the key) and stack only with `keys: true`. cachekit's errors never hold a credential.
 *
 * Spans start in the caller's active context, so they are children of the caller's span (a request's, say).
 *
 * @returns a function that unsubscribes. The spans of operations still in flight then end at once, without
 * their outcome.
 */
export function instrument(options: InstrumentOptions = {}): () => void {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE)
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE)
  const withKeys = options.keys === true
  const duration: Histogram = meter.createHistogram('cache.operation.duration', {
    description: 'How long a cache operation took, from the call until its promise settled',
    unit: 's',
  })
  const hits: Counter = meter.createCounter('cache.hits', { description: 'Reads that found a value' })
  const misses: Counter = meter.createCounter('cache.misses', { description: 'Reads that found nothing' })
  const errors: Counter = meter.createCounter('cache.errors', { description: 'Cache operations that rejected' })
  // One entry per operation in flight; the context object is the channel's, fresh for each call.
  const pending = new Map<object, Pending>()

  const finish = (c: OperationContext, p: Pending): void => {
    pending.delete(c)
    const labels: Attributes = { 'cache.operation': c.operation, 'cache.backend': c.backend }
    duration.record((performance.now() - p.started) / 1000, labels)
    if (p.failed) {
      const name = errorName(c.error)
      errors.add(1, { ...labels, 'error.type': name })
      p.span.setAttribute('error.type', name)
      if (withKeys) {
        const message = errorMessage(c.error)
        p.span.recordException(c.error instanceof Error ? c.error : { name, message })
        p.span.setStatus({ code: SpanStatusCode.ERROR, message })
      } else {
        // cachekit's messages quote the key, and a factory's error may hold anything: without `keys`, its name only.
        p.span.recordException({ name, message: name })
        p.span.setStatus({ code: SpanStatusCode.ERROR })
      }
    } else {
      const counted = hitsOf(c)
      if (counted !== undefined) {
        if (counted[0] > 0) hits.add(counted[0], c.tier === undefined ? labels : { ...labels, 'cache.tier': c.tier })
        if (counted[1] > 0) misses.add(counted[1], labels)
      }
      if (c.hit !== undefined) p.span.setAttribute('cache.hit', c.hit)
      if (c.hits !== undefined) p.span.setAttribute('cache.hits', c.hits)
      if (c.factoryRan !== undefined) p.span.setAttribute('cache.factory_ran', c.factoryRan)
      if (c.tier !== undefined) p.span.setAttribute('cache.tier', c.tier)
      if (c.itemSize !== undefined) p.span.setAttribute('cache.item_size', c.itemSize)
    }
    p.span.end()
  }

  const handlers = {
    start(message: unknown) {
      const c = message as OperationContext
      const attributes: Attributes = { 'cache.operation': c.operation, 'cache.backend': c.backend }
      const system = DB_SYSTEM[c.backend]
      if (system !== undefined) attributes['db.system.name'] = system
      // A memoized function's name is the program's, not a user's data.
      if (c.name !== undefined) attributes['code.function.name'] = c.name
      if (withKeys) {
        attributes['cache.key_prefix'] = c.keyPrefix
        if (c.key !== undefined) attributes['cache.key'] = [c.key]
        else if (c.keys !== undefined) attributes['cache.key'] = [...c.keys]
      }
      const span = tracer.startSpan(
        `cache.${c.operation}`,
        { kind: REMOTE.has(c.backend) ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes },
        otelContext.active(),
      )
      pending.set(c, { span, started: performance.now(), failed: false })
    },
    end(message: unknown) {
      const c = message as OperationContext
      const p = pending.get(c)
      if (p?.failed === true) finish(c, p)
    },
    asyncStart() {},
    asyncEnd(message: unknown) {
      const c = message as OperationContext
      const p = pending.get(c)
      if (p !== undefined) finish(c, p)
    },
    error(message: unknown) {
      const p = pending.get(message as object)
      if (p !== undefined) p.failed = true
    },
  }
  const channel = tracingChannel<unknown, OperationContext>(TRACE_CHANNEL)
  channel.subscribe(handlers)
  let subscribed = true
  return () => {
    if (!subscribed) return
    subscribed = false
    channel.unsubscribe(handlers)
    for (const p of pending.values()) p.span.end()
    pending.clear()
  }
}
