import { tracingChannel } from 'node:diagnostics_channel'

/** The name of the TracingChannel every public operation of a cache publishes on. */
export const TRACE_CHANNEL = 'cachekit:operation'

/** The public operations a cache traces, by method name. */
export type TracedOperation =
  | 'get'
  | 'getMany'
  | 'set'
  | 'setMany'
  | 'add'
  | 'delete'
  | 'deleteMany'
  | 'has'
  | 'inc'
  | 'dec'
  | 'ttl'
  | 'touch'
  | 'getOrSet'
  | 'invalidateTags'
  | 'clear'
  | 'purgeExpired'
  /** A call of a memoized function (`cache.memoize`, `@cache.memoized`). */
  | 'memoize'
  /** A request to a route of the HTTP middleware (`cached()` of cachekit/express, cachekit/hono, cachekit/fastify). */
  | 'http'

/**
 * The context of one traced operation: what a subscriber to {@link TRACE_CHANNEL} receives on `start`,
 * and again, with the outcome filled in, on `asyncStart`, `asyncEnd` and `error`.
 */
export interface OperationContext {
  operation: TracedOperation
  /** The backend's name (`'memory'`, `'redis'`, `'sqlite'`, ...), or the configured type while it connects. */
  backend: string
  /** The cache's key prefix, its namespaces' included. */
  keyPrefix: string
  /** The key, as the caller gave it, of a single-key operation; of a memoized call or a response, the entry's key. */
  key?: string
  /** `memoize`: the memoized function's name. */
  name?: string
  /** The keys of `getMany`, `setMany` and `deleteMany`, or the tags of `invalidateTags`. */
  keys?: readonly string[]
  /**
   * `get`, `has`, `getOrSet`, `memoize`: whether the key held a value (for `getOrSet` and `memoize`: the
   * factory did not run). `http`: whether the cache answered the request (unset for a forced update).
   */
  hit?: boolean
  /** `getMany`: how many of `keys` held a value. */
  hits?: number
  /** `getOrSet` and `memoize`: whether this call ran the factory (the function). `http`: whether the handler ran. */
  factoryRan?: boolean
  /**
   * `get` and `getOrSet`, on a hit this call read: where the value came from, `'l1'` (this process's memory
   * tier) or `'backend'`. Unset on a miss, and for a `getOrSet` that waited for another caller's value or
   * (with `grace`) read through its single-flight.
   */
  tier?: 'l1' | 'backend'
  /**
   * The size in bytes of the entry as the backend stores it (a tagged one with its tag versions): read, on a
   * hit of `get` or `getOrSet`; sent, by `set` and `add`; for `getMany` the sum of its hits' (none without a
   * hit), for `setMany` of its entries'. Never for `memoize` or `http`.
   */
  itemSize?: number
  /** What the operation resolved to (set by the channel). */
  result?: unknown
  /** What it rejected with (set by the channel). */
  error?: unknown
}

const channel = tracingChannel<unknown, OperationContext>(TRACE_CHANNEL)

// `hasSubscribers` of a TracingChannel is missing before Node 20.13 and 22.0: then any of its five channels.
const subscribed: () => boolean =
  typeof (channel as { hasSubscribers?: boolean }).hasSubscribers === 'boolean'
    ? () => channel.hasSubscribers
    : () =>
        channel.start.hasSubscribers ||
        channel.end.hasSubscribers ||
        channel.asyncStart.hasSubscribers ||
        channel.asyncEnd.hasSubscribers ||
        channel.error.hasSubscribers

type Method = (this: unknown, ...args: unknown[]) => Promise<unknown>

/** Whether anybody listens on {@link TRACE_CHANNEL}: when not, publish nothing and build no context. */
export const tracing = (): boolean => subscribed()

/** Publish one call that is not a method of the cache (a memoized call, a response) with `context`. */
export function traceCall<T>(context: OperationContext, run: () => Promise<T>): Promise<T> {
  return channel.tracePromise(run, context)
}

/** What a traced call of `get`, `getOrSet`, `set` or `add` fills in from inside (its fourth argument). */
export type TraceReport = Pick<OperationContext, 'tier' | 'itemSize'>

/** The size in bytes of an encoded entry, for {@link OperationContext.itemSize}. */
export const payloadSize = (payload: string | Uint8Array): number => (typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength)

/** A read found `payload` in `tier`: what a traced `get` or `getOrSet` says of it (cleared if it ends a miss). */
export function reportRead(report: TraceReport, tier: 'l1' | 'backend', payload: string | Uint8Array): void {
  report.tier = tier
  report.itemSize = payloadSize(payload)
}

/** A read that ended a miss (a corrupt or stale entry, or a factory's run) says nothing of a tier. */
function settleRead(context: OperationContext, hit: boolean): void {
  context.hit = hit
  if (!hit) {
    delete context.tier
    delete context.itemSize
  }
}

/** How one operation fills its context from its arguments, and its outcome from its result. */
interface Shape {
  /** Fill the context from the arguments (reading nothing that could throw or be consumed); returns what the method gets. */
  args?(context: OperationContext, args: unknown[]): unknown[]
  outcome?(context: OperationContext, result: unknown): void
}

const single: Shape = {
  args(context, args) {
    if (typeof args[0] === 'string') context.key = args[0]
    return args
  },
}

const read: Shape = { ...single, outcome: (context, result) => settleRead(context, result !== undefined) }

/** A key as the context shows it; the method refuses one that is not a string. */
const keyText = (key: unknown): string => (typeof key === 'string' ? key : '')

function keysOf(context: OperationContext, args: unknown[]): unknown[] {
  // A copy: the caller may reuse its array after the call.
  if (Array.isArray(args[0]) && args[0].every((k) => typeof k === 'string')) context.keys = [...(args[0] as string[])]
  return args
}

/** The operations that are methods of a cache. */
type MethodOperation = Exclude<TracedOperation, 'memoize' | 'http'>

const SHAPES: Record<MethodOperation, Shape> = {
  get: read,
  has: { ...single, outcome: (context, result) => (context.hit = result === true) },
  getMany: {
    args: keysOf,
    outcome(context, result) {
      if (Array.isArray(result)) context.hits = result.reduce((n: number, v) => (v === undefined ? n : n + 1), 0)
    },
  },
  set: single,
  add: single,
  delete: single,
  inc: single,
  dec: single,
  ttl: single,
  touch: single,
  setMany: {
    // The keys where reading them consumes nothing: an array of pairs, a Map, a plain object. A one-shot
    // iterable (a generator) is left for the method to read, and its keys are not in the context.
    args(context, args) {
      const entries = args[0]
      if (Array.isArray(entries)) context.keys = entries.map((pair) => (Array.isArray(pair) ? keyText(pair[0]) : ''))
      else if (entries instanceof Map) context.keys = Array.from(entries.keys(), keyText)
      else if (entries !== null && typeof entries === 'object' && typeof (entries as Iterable<unknown>)[Symbol.iterator] !== 'function') context.keys = Object.keys(entries)
      return args
    },
  },
  deleteMany: { args: keysOf },
  getOrSet: {
    args(context, args) {
      single.args?.(context, args)
      const factory = args[1]
      if (typeof factory !== 'function') return args
      context.factoryRan = false
      const counted = function (this: unknown, ...factoryArgs: unknown[]): unknown {
        // A refresh in the grace period may run after the call ended: that run is not this call's.
        if (context.hit === undefined) context.factoryRan = true
        return (factory as (...a: unknown[]) => unknown).apply(this, factoryArgs)
      }
      return [args[0], counted, ...args.slice(2)]
    },
    outcome: (context) => settleRead(context, context.factoryRan !== true),
  },
  invalidateTags: { args: keysOf },
  clear: {},
  purgeExpired: {},
}

/**
 * Make every operation of {@link SHAPES} on `proto` publish on {@link TRACE_CHANNEL}. With no subscriber a
 * call costs one check more; with one, the call runs inside `tracePromise` with its context.
 */
export function traceOperations(proto: object, describe: (cache: unknown) => { backend: string; keyPrefix: string }): void {
  const methods = proto as Record<MethodOperation, Method>
  for (const operation of Object.keys(SHAPES) as MethodOperation[]) {
    const method = methods[operation]
    const shape = SHAPES[operation]
    const outcome = shape.outcome
    const traced = function (this: unknown, args: unknown[]): Promise<unknown> {
      const context: OperationContext = { operation, ...describe(this) }
      // Nothing here throws for any argument: the method checks them, and its refusal is this call's error.
      const passed = shape.args === undefined ? args : shape.args(context, args)
      // The context goes in as a fourth argument, after the three a public operation takes at most: the
      // operations that know more from inside (which tier answered, the entry's size) fill it in.
      const run =
        outcome === undefined
          ? () => method.call(this, passed[0], passed[1], passed[2], context)
          : async () => {
              const result = await method.call(this, passed[0], passed[1], passed[2], context)
              outcome(context, result)
              return result
            }
      return channel.tracePromise(run, context)
    }
    // Three parameters, not a rest parameter: the untraced call allocates nothing. No operation takes more,
    // and none tells an argument left out from an undefined one.
    methods[operation] = {
      [operation](this: unknown, a?: unknown, b?: unknown, c?: unknown): Promise<unknown> {
        if (!subscribed()) return method.call(this, a, b, c)
        return traced.call(this, [a, b, c])
      },
    }[operation] as Method
  }
}
