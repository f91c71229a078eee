import { randomUUID } from 'node:crypto'
import type { ParseArgsConfig } from 'node:util'
import { parseDuration, type Duration } from '../src/duration.js'
import { CacheArgumentError, CacheBackendError } from '../src/errors.js'
import { cliConfig, openCache, type Opened } from './open.js'
import { globToRegExp, progress, showMs, showValue, toPlain, withoutSecrets } from './output.js'
import { describeRace, race } from './race-clients.js'
import { inspectStore, Rates, readReports, showFrame, type Frame } from './watch.js'

type Options = NonNullable<ParseArgsConfig['options']>
type Values = Record<string, string | boolean | undefined>

/** What a command gets: its positional arguments and every option's value. */
export interface Context {
  args: string[]
  values: Values
}

/** One CLI command. `run` resolves to the exit code. */
export interface Command {
  name: string
  usage: string
  summary: string
  description: string
  options: Options
  optionHelp: string[]
  /** The least and most positional arguments. */
  args: [number, number]
  run(ctx: Context): Promise<number>
}

export const GLOBAL_OPTIONS: Options = {
  url: { type: 'string' },
  prefix: { type: 'string' },
  json: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
}

const OK = 0
const MISS = 1

/** Entries above which `clear` deletes in batches with a progress bar (on a terminal). */
const LARGE = 1000
const BATCH = 500

function print(ctx: Context, human: string, json: unknown): void {
  process.stdout.write(ctx.values.json === true ? `${JSON.stringify(toPlain(json))}\n` : `${human}\n`)
}

function warn(message: string): void {
  process.stderr.write(`cachekit: warning: ${withoutSecrets(message)}\n`)
}

/** Parse a CLI duration. Bare numbers are refused: on a command line `60` could mean seconds or ms. */
function cliDuration(text: string, what: string): number {
  if (/^\s*\d+(\.\d+)?\s*$/.test(text) && Number(text) !== 0) {
    throw new CacheArgumentError(`${what} ${JSON.stringify(text)} needs a unit: write e.g. 30s, 5m, 1h or 500ms (0 means never expire).`)
  }
  return parseDuration(text as Duration, what)
}

/** Run `body` with an open cache, closing it afterwards, bounded by `--timeout` (only its opening when `bounded` is false). */
async function withCache(ctx: Context, body: (o: Opened) => Promise<number>, bounded = true): Promise<number> {
  const limit = cliDuration(typeof ctx.values.timeout === 'string' ? ctx.values.timeout : '30s', '--timeout')
  const { source } = cliConfig(typeof ctx.values.url === 'string' ? ctx.values.url : undefined)
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CacheBackendError(`gave up after ${showMs(limit)}: the cache from ${source} did not answer. Is it reachable? (--timeout sets the limit)`)),
      limit,
    )
  })
  const opened = openCache({
    ...(typeof ctx.values.url === 'string' ? { url: ctx.values.url } : {}),
    ...(typeof ctx.values.prefix === 'string' ? { prefix: ctx.values.prefix } : {}),
    warn,
  })
  try {
    const o = await Promise.race([opened, timedOut])
    try {
      await Promise.race([o.cache.ready(), timedOut])
      if (!bounded) clearTimeout(timer)
      return await (bounded ? Promise.race([body(o), timedOut]) : body(o))
    } finally {
      await Promise.race([o.close(), new Promise((r) => setTimeout(r, 2000).unref())])
    }
  } finally {
    clearTimeout(timer)
  }
}

/** The argument as a value: JSON if it parses (so `5` is an integer `inc` can count on), else text. */
function parseValue(text: string, asString: boolean): unknown {
  if (asString) return text
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
}

async function countKeys(o: Opened, match?: RegExp): Promise<number> {
  let n = 0
  for await (const key of o.cache.keys()) if (match === undefined || match.test(key)) n++
  return n
}

const get: Command = {
  name: 'get',
  usage: 'get <key>',
  summary: 'print the value at a key (exit 1 on a miss)',
  description: 'Print the value stored at <key>: text as it is, anything else as JSON. On a miss, print nothing on stdout and exit 1.',
  options: {},
  optionHelp: [],
  args: [1, 1],
  run: (ctx) =>
    withCache(ctx, async ({ cache }) => {
      const key = ctx.args[0] as string
      const value = await cache.get(key)
      if (value === undefined) {
        if (ctx.values.json === true) print(ctx, '', { key, hit: false })
        else process.stderr.write(`(miss) ${key}\n`)
        return MISS
      }
      print(ctx, showValue(value), { key, hit: true, value })
      return OK
    }),
}

const set: Command = {
  name: 'set',
  usage: 'set <key> <value|-> [--ttl <d>] [--string]',
  summary: 'store a value (JSON if it parses, else text)',
  description: [
    'Store <value> at <key>. The value is parsed as JSON when it can be (5 is an integer that `inc` can count',
    'on, {"a":1} an object, "5" the text 5); anything else is stored as text. Use --string to store the',
    'argument as text whatever it looks like, and - to read the value from stdin.',
  ].join('\n'),
  options: { ttl: { type: 'string' }, string: { type: 'boolean' } },
  optionHelp: ['  --ttl <d>         expire after this long: 30s, 5m, 1h, 2d; 0 never (default: the cache\'s defaultTtl)', '  --string          store the argument as text, never as JSON'],
  args: [2, 2],
  run: (ctx) => {
    const ttl = typeof ctx.values.ttl === 'string' ? cliDuration(ctx.values.ttl, '--ttl') : undefined
    return withCache(ctx, async ({ cache }) => {
      const [key, raw] = ctx.args as [string, string]
      const text = raw === '-' ? await readStdin() : raw
      const value = parseValue(text, ctx.values.string === true)
      await cache.set(key, value, ttl)
      const expiry = ttl === undefined ? 'the default TTL' : ttl === 0 ? 'no expiry' : `a TTL of ${showMs(ttl)}`
      print(ctx, `stored ${key} (${typeof value === 'string' ? 'text' : 'JSON'}) with ${expiry}`, { key, stored: true, ttlMs: ttl ?? null })
      return OK
    })
  },
}

const del: Command = {
  name: 'del',
  usage: 'del <key> [key...]',
  summary: 'delete keys',
  description: 'Delete one or more keys and print how many existed.',
  options: {},
  optionHelp: [],
  args: [1, Infinity],
  run: (ctx) =>
    withCache(ctx, async ({ cache }) => {
      const n = await cache.deleteMany(ctx.args)
      print(ctx, `deleted ${n} of ${ctx.args.length} key${ctx.args.length === 1 ? '' : 's'}`, { deleted: n, keys: ctx.args.length })
      return OK
    }),
}

const inc: Command = {
  name: 'inc',
  usage: 'inc <key> [delta] [--ttl <d>]',
  summary: 'add to an integer atomically and print the result',
  description: [
    'Add <delta> (default 1) to the integer at <key>, atomically on shared backends, and print the result.',
    'A missing key starts at 0 and gets --ttl (default: the cache\'s defaultTtl); an existing one keeps its',
    'expiry. For a negative delta write `cachekit inc <key> -- -5`.',
  ].join('\n'),
  options: { ttl: { type: 'string' } },
  optionHelp: ['  --ttl <d>         the TTL of a key this creates: 30s, 5m, 1h; 0 never'],
  args: [1, 2],
  run: (ctx) => {
    const ttl = typeof ctx.values.ttl === 'string' ? cliDuration(ctx.values.ttl, '--ttl') : undefined
    const text = ctx.args[1] ?? '1'
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new CacheArgumentError(`inc: the delta must be an integer, not ${JSON.stringify(text)}.`)
    }
    return withCache(ctx, async ({ cache }) => {
      const key = ctx.args[0] as string
      const value = await cache.inc(key, Number(text), ttl)
      print(ctx, String(value), { key, value })
      return OK
    })
  },
}

const ttl: Command = {
  name: 'ttl',
  usage: 'ttl <key>',
  summary: 'print how long a key has left (exit 1 on a miss)',
  description: 'Print the time left before <key> expires, or "never". On a miss print nothing on stdout and exit 1.',
  options: {},
  optionHelp: [],
  args: [1, 1],
  run: (ctx) =>
    withCache(ctx, async ({ cache }) => {
      const key = ctx.args[0] as string
      const left = await cache.ttl(key)
      if (left === undefined) {
        if (ctx.values.json === true) print(ctx, '', { key, hit: false })
        else process.stderr.write(`(miss) ${key}\n`)
        return MISS
      }
      if (left === null) {
        print(ctx, 'never', { key, hit: true, ttlMs: null, expiresAt: null })
        return OK
      }
      print(ctx, showMs(left), { key, hit: true, ttlMs: left, expiresAt: new Date(Date.now() + left).toISOString() })
      return OK
    }),
}

const keys: Command = {
  name: 'keys',
  usage: 'keys [pattern] [--limit <n>]',
  summary: 'list live keys, optionally matching a glob',
  description: 'List the live keys under the prefix (without it), in no particular order. [pattern] is a glob: * any run, ? one character.',
  options: { limit: { type: 'string' } },
  optionHelp: ['  --limit <n>       stop after n keys'],
  args: [0, 1],
  run: (ctx) => {
    const limitText = typeof ctx.values.limit === 'string' ? ctx.values.limit : undefined
    if (limitText !== undefined && !/^\d+$/.test(limitText)) throw new CacheArgumentError(`--limit must be a whole number, not ${JSON.stringify(limitText)}.`)
    const limit = limitText === undefined ? Infinity : Number(limitText)
    const match = ctx.args[0] === undefined ? undefined : globToRegExp(ctx.args[0])
    return withCache(ctx, async ({ cache }) => {
      const json = ctx.values.json === true
      let n = 0
      if (json) process.stdout.write('[')
      for await (const key of cache.keys()) {
        if (n >= limit) break
        if (match !== undefined && !match.test(key)) continue
        process.stdout.write(json ? `${n === 0 ? '' : ','}${JSON.stringify(key)}` : `${key}\n`)
        n++
      }
      if (json) process.stdout.write(']\n')
      return OK
    })
  },
}

const clear: Command = {
  name: 'clear',
  usage: 'clear --yes',
  summary: 'delete every key under the prefix',
  description: [
    'Delete every key under the prefix (all keys of the backend when there is no prefix), and nothing else.',
    'Asks for --yes. On a terminal, a large cache is deleted in batches under a progress bar.',
  ].join('\n'),
  options: { yes: { type: 'boolean', short: 'y' } },
  optionHelp: ['  -y, --yes         really delete'],
  args: [0, 0],
  run: (ctx) =>
    withCache(ctx, async (o) => {
      const scope = o.cache.keyPrefix === '' ? 'every key of the backend (no prefix)' : `every key under the prefix ${JSON.stringify(o.cache.keyPrefix)}`
      const total = await countKeys(o)
      if (ctx.values.yes !== true) {
        throw new CacheArgumentError(`clear would delete ${scope}: ${total} live key${total === 1 ? '' : 's'} on ${o.description}. Run it again with --yes.`)
      }
      if (total >= LARGE && process.stdout.isTTY && ctx.values.json !== true) {
        const bar = progress('clearing', total)
        let done = 0
        let batch: string[] = []
        for await (const key of o.cache.keys()) {
          batch.push(key)
          if (batch.length === BATCH) {
            done += await o.cache.deleteMany(batch)
            batch = []
            bar.update(done)
          }
        }
        if (batch.length > 0) done += await o.cache.deleteMany(batch)
        bar.update(done)
        bar.done()
      }
      // One clear() in any case: it also takes keys written while the batches ran.
      await o.cache.clear()
      print(ctx, `cleared ${total} key${total === 1 ? '' : 's'} (${scope})`, { cleared: total, prefix: o.cache.keyPrefix })
      return OK
    }),
}

const purge: Command = {
  name: 'purge',
  usage: 'purge',
  summary: 'remove expired entries now',
  description: 'Remove expired entries now (backends also purge on a schedule) and print how many went. On a terminal a progress line runs meanwhile.',
  options: {},
  optionHelp: [],
  args: [0, 0],
  run: (ctx) =>
    withCache(ctx, async ({ cache }) => {
      const bar = ctx.values.json === true ? progress('', undefined, { isTTY: false } as NodeJS.WriteStream) : progress('purging expired entries', undefined)
      let n: number
      try {
        n = await cache.purgeExpired()
      } finally {
        bar.done()
      }
      print(ctx, `purged ${n} expired entr${n === 1 ? 'y' : 'ies'}`, { purged: n })
      return OK
    }),
}

const stats: Command = {
  name: 'stats',
  usage: 'stats [--watch [--interval <d>] [--count <n>]]',
  summary: 'backend, prefix, live key count, capabilities; --watch: every process live',
  description: [
    'Print what the cache is: its backend and where the config came from, the prefix, how many live keys it',
    'holds, and what it can do. With --watch, refresh every --interval (default 1s) until Ctrl-C: the live key',
    'count, and the ops/s, hit rate and errors of every process that publishes its counters (start the app',
    "with publishStats, e.g. cache.init({ ..., publishStats: '5s' }), or CACHE_PUBLISH_STATS=5s). With --json,",
    'one JSON line per refresh.',
  ].join('\n'),
  options: { watch: { type: 'boolean' }, interval: { type: 'string' }, count: { type: 'string' } },
  optionHelp: [
    '  --watch           refresh until Ctrl-C (a terminal redraws in place)',
    '  --interval <d>    how often to refresh with --watch (default 1s)',
    '  --count <n>       stop after n refreshes',
  ],
  args: [0, 0],
  run: (ctx) => {
    if (ctx.values.watch === true) return watchStats(ctx)
    if (ctx.values.interval !== undefined || ctx.values.count !== undefined) throw new CacheArgumentError('--interval and --count go with --watch.')
    return withCache(ctx, async (o) => {
      const started = performance.now()
      const keyCount = await countKeys(o)
      const tookMs = performance.now() - started
      const { type, capabilities } = o.cache.stats()
      const store = await inspectStore(o)
      const report = {
        backend: type,
        config: o.description,
        prefix: o.cache.keyPrefix,
        keys: keyCount,
        // What the backend tells by itself: rows stored (expired ones and cachekit's bookkeeping included),
        // their bytes, and the expired ones awaiting the purge.
        ...(store.stored === undefined ? {} : { stored: store.stored }),
        ...(store.bytes === undefined ? {} : { bytes: store.bytes }),
        ...(store.expired === undefined ? {} : { expired: store.expired }),
        shared: capabilities?.shared,
        atomic: capabilities?.atomic,
        countedInMs: Math.round(tookMs),
      }
      const width = Math.max(...Object.keys(report).map((k) => k.length))
      print(ctx, Object.entries(report).map(([k, v]) => `${k.padEnd(width)}  ${showValue(v)}`).join('\n'), report)
      return OK
    })
  },
}

/** `stats --watch`: a frame every --interval until Ctrl-C or --count frames. */
function watchStats(ctx: Context): Promise<number> {
  const every = cliDuration(typeof ctx.values.interval === 'string' ? ctx.values.interval : '1s', '--interval')
  if (every < 100) throw new CacheArgumentError(`--interval must be at least 100ms, not ${JSON.stringify(ctx.values.interval)}.`)
  const countText = ctx.values.count
  if (countText !== undefined && (typeof countText !== 'string' || !/^\d+$/.test(countText) || Number(countText) < 1)) {
    throw new CacheArgumentError(`--count must be a whole number >= 1, not ${JSON.stringify(countText)}.`)
  }
  const count = countText === undefined ? Infinity : Number(countText)
  const json = ctx.values.json === true
  const redraw = !json && process.stdout.isTTY === true
  return withCache(
    ctx,
    async (o) => {
      const rates = new Rates()
      let stop: () => void = () => {}
      let stopped = false
      const onSignal = () => {
        stopped = true
        stop()
      }
      process.once('SIGINT', onSignal)
      try {
        for (let n = 0; n < count && !stopped; n++) {
          const started = performance.now()
          // The reports first: on a backend that cannot list its keys, their error says what to use instead.
          const figures = rates.figures(await readReports(o))
          const counting = performance.now()
          const entries = await countKeys(o)
          const countedInMs = performance.now() - counting
          const frame: Frame = { at: Date.now(), entries, countedInMs, store: await inspectStore(o), ...figures }
          if (json) process.stdout.write(`${JSON.stringify(frame)}\n`)
          else {
            const heading = `cachekit stats --watch: ${o.description}, prefix ${JSON.stringify(o.cache.keyPrefix)}, every ${showMs(every)}${redraw ? ' (Ctrl-C stops)' : ''}`
            process.stdout.write(`${redraw ? '\x1b[H\x1b[2J' : n > 0 ? '\n' : ''}${showFrame(frame, heading).join('\n')}\n`)
          }
          if (n + 1 >= count || stopped) break
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.max(0, every - (performance.now() - started)))
            stop = () => {
              clearTimeout(timer)
              resolve()
            }
          })
        }
      } finally {
        process.off('SIGINT', onSignal)
      }
      return OK
    },
    false,
  )
}

const ping: Command = {
  name: 'ping',
  usage: 'ping',
  summary: 'check that the backend answers',
  description: 'Connect, make one read round trip, and print how long it took. Exit 2 if the backend does not answer.',
  options: {},
  optionHelp: [],
  args: [0, 0],
  run: (ctx) =>
    withCache(ctx, async (o) => {
      const started = performance.now()
      await o.cache.has(`cachekit-ping:${randomUUID()}`)
      const ms = performance.now() - started
      print(ctx, `PONG from ${o.description} in ${ms < 1 ? ms.toFixed(2) : ms.toFixed(1)}ms`, { ok: true, backend: o.cache.stats().type, ms })
      return OK
    }),
}

const raceCommand: Command = {
  name: 'race',
  usage: 'race <url> [--clients <n>]',
  summary: 'N concurrent clients call <url>/increment once each (exit 1 unless they see 1..N)',
  description: [
    'Whether a counter is atomic across the workers of a running demo app (`npm start`): reset the',
    'counter with <url>/create, let N clients call <url>/increment once each, all at once, and tell',
    'whether they saw exactly 1..N, each once. Exit 0 if they did, 1 if not (as when each worker counts',
    'on its own copy: a memory cache is per process).',
  ].join('\n'),
  options: { clients: { type: 'string' }, path: { type: 'string' }, reset: { type: 'string' } },
  optionHelp: ['  --clients <n>     how many clients (default 100)', '  --path <p>        the increment path (default /increment)', '  --reset <p>       the reset path, "" for none (default /create)'],
  args: [1, 1],
  async run(ctx) {
    const clientsText = typeof ctx.values.clients === 'string' ? ctx.values.clients : '100'
    if (!/^\d+$/.test(clientsText) || Number(clientsText) < 1) throw new CacheArgumentError(`--clients must be a whole number >= 1, not ${JSON.stringify(clientsText)}.`)
    let base = ctx.args[0] as string
    if (!/^https?:\/\//.test(base)) base = `http://${base}`
    const result = await race(base, {
      clients: Number(clientsText),
      ...(typeof ctx.values.path === 'string' ? { path: ctx.values.path } : {}),
      ...(typeof ctx.values.reset === 'string' ? { reset: ctx.values.reset } : {}),
    })
    print(ctx, describeRace(result), result)
    return result.ok ? OK : MISS
  },
}

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [get, set, del, inc, ttl, keys, clear, purge, stats, ping, raceCommand]

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name)
}
