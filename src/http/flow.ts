/**
 * What the HTTP entries (Express, Hono, Fastify) decide alike, so that none repeats it: whether a request
 * is answered from the cache, passed to its handler untouched, or run and its response stored; RFC 9111's
 * rules for each; and one handler run per stampede. An entry only moves status, headers and bytes between
 * its framework and these decisions.
 * @internal
 */
import { randomBytes } from 'node:crypto'
import type { Budget } from '../budget.js'
import { MAX_KEY_LENGTH } from '../cache.js'
import type { Milliseconds } from '../duration.js'
import { CacheError, showKey } from '../errors.js'
import { BOOKKEEPING, ENGINE, type Engine } from '../engine.js'
import { backoff, LEASE_SUFFIX, sleep, tryLease, type Lease } from '../lease.js'
import { type CachedResponse, cacheControl, mayStore, headersMayStore, NOT_MODIFIED_HEADERS, notModified, requestKey, type ResolvedCached, storableHeaders } from './common.js'
import { checkTags, type TagRead } from '../tags.js'
import { requestTargetKey } from './keys.js'
import { traceCall, tracing, type OperationContext } from '../trace.js'

/** A request as the rules see it. */
export interface RequestView {
  /** In upper case. */
  readonly method: string
  /** The request-target exactly as received (see `requestTargetKey`). */
  readonly target: string
  /** A request header's value (name in lower case), `undefined` if absent. */
  header(name: string): string | undefined
}

/**
 * A response to send as it is: headers in order (a repeated one once per value), `null` for no body (a
 * `304`). For a `HEAD` request `head` is true and `body` is still the `GET` entry's, so that a framework
 * that frames the response from its body (Fastify) gives the right `Content-Length`; it is not sent.
 */
export interface Outgoing {
  status: number
  headers: [string, string][]
  body: Uint8Array | null
  head: boolean
}

/** A miss whose handler runs: its response is offered to `store`, and the flight ends with `done`. */
export interface Fill {
  /**
   * Whether a response with this status and these headers (names in lower case) could be stored, known
   * before its body is read: a response that will not be stored is never buffered.
   */
  wants(status: number, headers: readonly (readonly [string, string])[]): boolean
  /**
   * Store the handler's response (headers as sent, names in lower case) if the rules allow, then end the
   * flight. Never throws: a failed store is the cache's to report, and the response goes out regardless.
   */
  store(response: CachedResponse): Promise<void>
  /** End the flight without storing: the handler failed, or its response will not be stored. Idempotent. */
  done(): void
}

export type Decision = { kind: 'pass' } | { kind: 'serve'; response: Outgoing } | { kind: 'fill'; fill: Fill }

/** A response as stored: when, and for a variant (see {@link VaryManifest}) the token of its manifest. */
interface StoredResponse extends CachedResponse {
  /** `Date.now()` when it was stored, less the `Age` it came with: its `Age` is counted from here. */
  storedAt?: number
  token?: string
}

/**
 * What the base key holds when the response names in `Vary` request headers beyond the `vary` option:
 * the names, and a token that the variants stored under it carry. The variants live at the key of the
 * `vary` option's headers and these together; a variant whose token is not the manifest's (stored before
 * the entry was deleted or replaced) is not served.
 */
interface VaryManifest {
  varyOn: string[]
  token: string
}

const PASS: Decision = { kind: 'pass' }

function isResponse(value: unknown): value is StoredResponse {
  return typeof value === 'object' && value !== null && typeof (value as StoredResponse).status === 'number' && Array.isArray((value as StoredResponse).headers) && (value as StoredResponse).body instanceof Uint8Array
}

function isManifest(value: unknown): value is VaryManifest {
  return typeof value === 'object' && value !== null && Array.isArray((value as VaryManifest).varyOn) && typeof (value as VaryManifest).token === 'string'
}

/** The request header names a response varies on (lower case, sorted, once each). */
export function varyNames(headers: readonly (readonly [string, string])[]): string[] {
  const names = new Set<string>()
  for (const [name, value] of headers) {
    if (name !== 'vary') continue
    for (const part of value.split(',')) {
      const header = part.trim().toLowerCase()
      if (header !== '') names.add(header)
    }
  }
  return [...names].sort()
}

/** RFC 9111 3.5: a response that a shared cache may give to a request carrying `Authorization`. */
function sharedDespiteAuthorization(headers: readonly (readonly [string, string])[]): boolean {
  const cc = cacheControl(headers as CachedResponse['headers'])
  return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate')
}

function headerOf(headers: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [n, v] of headers) if (n === name) return v
  return undefined
}

/** The `Age` a response came with, in seconds (0 if none or invalid). */
function ageOf(headers: readonly (readonly [string, string])[]): number {
  const age = headerOf(headers, 'age')
  return age !== undefined && /^\d+$/.test(age.trim()) ? Number(age.trim()) : 0
}

/**
 * `ttl: 'auto'`: how long the response says it stays fresh for a shared cache (RFC 9111 4.2.1), in ms:
 * `s-maxage`, else `max-age`, else `Expires` less `Date` (or now), less the `Age` it came with.
 * @returns `undefined` if it says nothing (the cache's `defaultTtl` applies), `null` if it must not be
 * stored: `no-cache` (it may not be served without revalidation, which this cache does not do) or no
 * longer fresh.
 */
export function freshness(headers: readonly (readonly [string, string])[], now = Date.now()): Milliseconds | null | undefined {
  const cc = cacheControl(headers as CachedResponse['headers'])
  if (cc.has('no-cache')) return null
  let seconds: number
  const maxAge = cc.get('s-maxage') ?? cc.get('max-age')
  if (maxAge !== undefined) {
    // An invalid value is treated as stale (RFC 9111 1.2.2).
    seconds = /^\d+$/.test(maxAge) ? Number(maxAge) : 0
  } else {
    const expires = headerOf(headers, 'expires')
    if (expires === undefined) return undefined
    // An invalid Expires ("0") means already expired (RFC 9111 5.3).
    const at = Date.parse(expires)
    const date = Date.parse(headerOf(headers, 'date') ?? '')
    seconds = Number.isNaN(at) ? 0 : (at - (Number.isNaN(date) ? now : date)) / 1000
  }
  const left = seconds - ageOf(headers)
  return left > 0 ? Math.floor(left * 1000) : null
}

/** Everything one request's decisions share. */
interface Context<Req> {
  opts: ResolvedCached<Req>
  engine: Engine
  req: RequestView
  key: string
  /**
   * With `tags`: the versions of the response's tags, read before its handler runs, that a stored response
   * carries (so one built across an invalidation is stored as already stale); `null` when they could not be
   * read (the backend failed, fail-open): then nothing is stored. Unset without tags.
   */
  stamp?: TagRead | null
  /** The response's tags (from the `tags` option), checked before anything is read. */
  tags: readonly string[]
}

/** What a read of the cache found for a request. */
interface Found {
  hit?: StoredResponse
  manifest?: VaryManifest
}

/** The key of the variant of `ctx`'s request for a manifest's extra names. */
function variantKey(ctx: Context<never>, varyOn: readonly string[]): string {
  const { opts, req } = ctx
  return requestTargetKey(req.target, {
    keyPrefix: opts.keyPrefix,
    queryString: opts.queryString,
    vary: [...new Set([...opts.vary, ...varyOn])].map((name) => [name, req.header(name) ?? ''] as const),
  })
}

/** Whether a stored response may answer this request. */
function usable(ctx: Context<never>, hit: StoredResponse, variant: boolean): boolean {
  if (!ctx.opts.cacheAuthorized && ctx.req.header('authorization') !== undefined && !sharedDespiteAuthorization(hit.headers)) return false
  // At the base key, a response can only vary on the `vary` option's headers (an entry that names others
  // was stored by an older version, before variants had keys of their own).
  return variant || varyNames(hit.headers).every((name) => ctx.opts.vary.includes(name))
}

/** Read the request's entry: the response at its key, or through the manifest there, its variant. */
async function lookup(ctx: Context<never>, budget: Budget): Promise<Found> {
  const entry = await ctx.engine.get<unknown>(ctx.key, budget)
  if (isManifest(entry)) {
    const variant = await ctx.engine.get<unknown>(variantKey(ctx, entry.varyOn), budget)
    if (isResponse(variant) && variant.token === entry.token && usable(ctx, variant, true)) return { hit: variant, manifest: entry }
    return { manifest: entry }
  }
  return isResponse(entry) && usable(ctx, entry, false) ? { hit: entry } : {}
}

/** A stored response as it answers this request: `304` to a matching conditional, `Age`, no body for `HEAD`. */
function answer(ctx: Context<never>, hit: StoredResponse): Decision {
  const { req, opts } = ctx
  const unchanged = notModified(hit, req.header('if-none-match'), req.header('if-modified-since'))
  const headers: [string, string][] = []
  let length = false
  for (const [name, value] of hit.headers) {
    if (unchanged && !NOT_MODIFIED_HEADERS.has(name)) continue
    if (name === 'content-length') length = true
    headers.push([name, value])
  }
  if (hit.storedAt !== undefined) headers.push(['age', String(Math.max(0, Math.floor((Date.now() - hit.storedAt) / 1000)))])
  if (opts.xCache) headers.push(['x-cache', 'HIT'])
  const head = req.method === 'HEAD'
  if (unchanged) return { kind: 'serve', response: { status: 304, headers, body: null, head } }
  if (!length) headers.push(['content-length', String(hit.body.byteLength)])
  return { kind: 'serve', response: { status: hit.status, headers, body: hit.body, head } }
}

/** The flight a filling request leads: whom it wakes, and the lease it holds, when it is done. */
interface Flight {
  end(): void
  lease: Lease | undefined
  /** The longest the flight lasts: a handler still running then no longer holds anyone up. */
  wait: Milliseconds
}

/**
 * Decide what to do with a request. `raw` is the framework's request (or context), for `unless` and
 * `forcedUpdate`.
 * @throws what the cache throws with `failOpen: false` when its backend fails, and what `unless` or
 * `forcedUpdate` throw.
 */
export async function decide<Req>(opts: ResolvedCached<Req>, raw: Req, req: RequestView): Promise<Decision> {
  const { method } = req
  if ((method !== 'GET' && method !== 'HEAD') || (await opts.unless?.(raw)) === true) return PASS
  const key = requestKey(opts, req.target, (name) => req.header(name))
  // A raw path may hold cachekit's bookkeeping marker: such a key could name another entry's lease.
  if (key.includes(BOOKKEEPING) || key.length > MAX_KEY_LENGTH) return PASS
  const engine = await opts.cache()[ENGINE]()
  const given = opts.tags
  // Checked before anything is read or run, so that a bad tag fails the request with nothing to undo.
  const tags = given === undefined ? [] : checkTags(typeof given === 'function' ? given(raw) : given, `cached() of ${showKey(key)}`, key)
  const ctx: Context<Req> = { opts, engine, req, key, tags }
  let forced = false
  const run = async (): Promise<Decision> => {
    if ((await opts.forcedUpdate?.(raw)) === true) {
      forced = true
      return method === 'GET' ? stamped(ctx, { kind: 'fill', fill: fill(ctx, undefined, undefined) }) : PASS
    }
    const decision = await fromCache(ctx)
    // One logical read of the user's, counted once: a hit if the cache answered it (after waiting for
    // another request's handler, too), a miss if its handler runs.
    engine.record(decision.kind === 'serve' ? 'hit' : 'miss', key)
    return stamped(ctx, decision)
  }
  if (!tracing()) return run()
  // Published as one `http` operation, from the request until the cache answered it or handed it to the handler.
  const context: OperationContext = { operation: 'http', backend: engine.adapter?.name ?? 'none', keyPrefix: engine.fullKey(''), key }
  return traceCall(context, async () => {
    const decision = await run()
    // A forced update read nothing: no hit and no miss (as in stats()), but the handler runs.
    if (!forced) context.hit = decision.kind === 'serve'
    context.factoryRan = decision.kind !== 'serve'
    return decision
  })
}

/**
 * A fill with `tags`: their versions are read now, before the handler runs (see {@link Context.stamp}).
 * @throws what reading the versions throws (failOpen false); the flight it leads is ended first.
 */
async function stamped<Req>(ctx: Context<Req>, decision: Decision): Promise<Decision> {
  if (decision.kind !== 'fill' || ctx.tags.length === 0) return decision
  try {
    ctx.stamp = (await ctx.engine.readTagged([], ctx.tags, ctx.engine.budget())).stamp ?? null
    return decision
  } catch (error) {
    decision.fill.done()
    throw error
  }
}

async function fromCache(ctx: Context<never>): Promise<Decision> {
  const { opts, req } = ctx
  const budget = ctx.engine.budget()
  const found = await lookup(ctx, budget)
  if (found.hit !== undefined) return answer(ctx, found.hit)
  if (opts.singleFlight === false) return req.method === 'GET' ? { kind: 'fill', fill: fill(ctx, found.manifest, undefined) } : PASS
  // A HEAD stores nothing (it has no body), and a conditional request's handler may answer 304, which is
  // not stored either: they wait for a running handler, but lead none, or its waiters would all run theirs.
  const leads = req.method === 'GET' && req.header('if-none-match') === undefined && req.header('if-modified-since') === undefined
  return flight(ctx, opts.singleFlight, budget, found, leads)
}

/** The key of a request's in-process flight, beside getOrSet's own flights in the engine's map. */
const FLIGHT_SUFFIX = `${BOOKKEEPING}http`

/**
 * One handler run per stampede. In this process: the first miss leads, the others wait for it to end,
 * then read the entry again. Across processes: the leader also takes the lease on the key; a request that
 * finds it taken polls until the entry appears, or the lease is gone without one (the leader's response
 * was not stored), or `wait` has passed; then it runs its own handler, without a lease.
 */
async function flight(ctx: Context<never>, lease: { ttl: Milliseconds; wait: Milliseconds }, budget: Budget, found: Found, leads: boolean): Promise<Decision> {
  const { engine } = ctx
  const own = (manifest: VaryManifest | undefined): Decision => (ctx.req.method === 'GET' ? { kind: 'fill', fill: fill(ctx, manifest, undefined) } : PASS)
  // With tags, this process's invalidations of them are part of the key: a request after one never waits
  // for a handler that started before it (its response would be stale once stored).
  const flightKey = engine.fullKey(ctx.key) + FLIGHT_SUFFIX + (ctx.tags.length === 0 ? '' : `@${engine.tagEpoch(ctx.tags)}`)
  const running = engine.inflight.get(flightKey)
  if (running !== undefined) {
    await waitAtMost(running, lease.wait)
    const again = await lookup(ctx, engine.budget())
    return again.hit !== undefined ? answer(ctx, again.hit) : own(again.manifest)
  }
  if (!leads) return own(found.manifest)
  let wake!: () => void
  const led = new Promise<void>((resolve) => (wake = resolve))
  engine.inflight.set(flightKey, led)
  const end = () => {
    if (engine.inflight.get(flightKey) === led) engine.inflight.delete(flightKey)
    wake()
  }
  try {
    const across = await acrossProcesses(ctx, lease, budget, found)
    if (across.hit !== undefined) {
      end()
      return answer(ctx, across.hit)
    }
    return { kind: 'fill', fill: fill(ctx, across.manifest, { end, lease: across.lease, wait: lease.wait }) }
  } catch (error) {
    end()
    throw error
  }
}

function waitAtMost(done: Promise<unknown>, ms: Milliseconds): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  return Promise.race([done.then(() => {}, () => {}), late]).finally(() => clearTimeout(timer))
}

/** The lease part of {@link flight}: a hit (another process stored it meanwhile), or the lease (or none) to fill with. */
async function acrossProcesses(ctx: Context<never>, options: { ttl: Milliseconds; wait: Milliseconds }, budget: Budget, found: Found): Promise<Found & { lease?: Lease }> {
  const { engine } = ctx
  const caps = engine.adapter?.capabilities
  if (caps === undefined || !caps.shared || !caps.atomic || budget.stopped !== undefined) return found
  const leaseKey = ctx.key + LEASE_SUFFIX
  let lease: Lease | null
  try {
    lease = await tryLease(engine, leaseKey, options.ttl, budget)
  } catch (error) {
    // The backend failed: with fail-open, report it and go on without a lease, as getOrSet does.
    if (!engine.failOpen || !(error instanceof CacheError)) throw error
    engine.emitError(error, { op: 'cached.lease', key: ctx.key })
    return found
  }
  if (lease !== null) {
    // The previous holder may have stored its response and released between our read and our `add`.
    const again = await lookup(ctx, budget)
    if (again.hit !== undefined) await lease.release(budget)
    return again.hit !== undefined ? again : { ...again, lease }
  }
  const deadline = Date.now() + options.wait
  for (let attempt = 0; ; attempt++) {
    await budget.offClock(() => sleep(backoff(attempt)))
    // The lease first, then the entry: the holder stores before it releases, so a lease seen gone and
    // then no entry means its response was not stored.
    const held = (await engine.get(leaseKey, budget)) !== undefined
    const again = await lookup(ctx, budget)
    if (again.hit !== undefined || !held || Date.now() >= deadline || budget.stopped !== undefined) return again
  }
}

/** A request whose handler runs, and whose response may be stored. */
function fill(ctx: Context<never>, manifest: VaryManifest | undefined, led: Flight | undefined): Fill {
  const { opts, engine, req, key } = ctx
  let ended = false
  let timer: NodeJS.Timeout | undefined
  const done = () => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    // The lease before the wake-up of this process's waiters, who read the entry again either way.
    if (led?.lease !== undefined) void led.lease.release()
    led?.end()
  }
  // A handler that never ends (or a framework that never says so) must not hold the key's later requests,
  // here or in other processes, for longer than `wait`: its waiters then run their own handlers, the next
  // miss leads anew. Its response is still stored if it comes.
  if (led !== undefined) {
    timer = setTimeout(done, led.wait)
    timer.unref()
  }
  const wants = (status: number, headers: readonly (readonly [string, string])[]): boolean => {
    if (req.method !== 'GET' || status >= 500 || (!opts.customFilter && status !== 200)) return false
    if (!headersMayStore(headers as CachedResponse['headers'])) return false
    if (!opts.cacheAuthorized && req.header('authorization') !== undefined && !sharedDespiteAuthorization(headers)) return false
    return opts.ttl !== 'auto' || freshness(headers) !== null
  }
  return {
    wants,
    done,
    async store(response) {
      try {
        if (!wants(response.status, response.headers)) return
        const ttl = opts.ttl === 'auto' ? freshness(response.headers) : opts.ttl
        if (ttl === null) return
        const candidate: CachedResponse = { status: response.status, headers: storableHeaders(response.headers), body: response.body }
        if (!mayStore(candidate, opts.responseFilter)) return
        const storedAt = Date.now() - ageOf(response.headers) * 1000
        // Tagged, but the versions could not be read: nothing is stored rather than an entry no tag can reach.
        if (ctx.stamp === null) return
        const stamp = ctx.stamp
        const budget = engine.budget()
        const varyOn = varyNames(candidate.headers).filter((name) => !opts.vary.includes(name))
        if (varyOn.length === 0) {
          if (await engine.set(key, { ...candidate, storedAt }, ttl, budget, stamp)) engine.record('set', key)
          return
        }
        // Variants of one entry share the manifest's token; a new manifest (none, or other names) makes
        // every variant stored under the old one unreachable.
        const same = manifest !== undefined && manifest.varyOn.join(',') === varyOn.join(',')
        const token = same ? manifest.token : randomBytes(9).toString('base64url')
        const variant = variantKey(ctx, varyOn)
        // The variant carries the tags; its manifest need not: a variant a tag made stale is a miss.
        if (await engine.set(variant, { ...candidate, storedAt, token }, ttl, budget, stamp)) {
          // The variant first: a reader that finds the manifest finds its variant.
          await engine.set(key, { varyOn, token } satisfies VaryManifest, ttl, budget)
          engine.record('set', variant)
        }
      } catch (error) {
        // With fail-open the cache reported it and returned false. Without, report it here rather than
        // fail a response that is fine and goes out.
        if (error instanceof CacheError) engine.emitError(error, { op: 'cached.store', key })
        else throw error
      } finally {
        done()
      }
    },
  }
}
