/**
 * A counter shared by every worker, correct across processes: `npm start`.
 *
 * Several `node:cluster` workers share one port. Each keeps a counter with `cache.inc`, which is atomic on
 * every shared backend, so 100 concurrent clients see 1..100 whichever worker answers them. With
 * `CACHE_URL=memory:` each worker counts on its own copy, and `npm run demo:race` shows the damage.
 * `/visits` is Flask-Session's per-visitor counter: express-session with cachekit's CacheStore, and one
 * atomic counter per session, so each browser sees its own count whichever worker answers.
 *
 * Environment: PORT (default 3000; 0 picks a free port), HOST (default 127.0.0.1), WORKERS (default: the
 * number of cores, at least 2), SESSION_SECRET (default: a random one per start, shared by the workers),
 * and the cache's CACHE_* variables (default: the embedded SQLite file). More in README.md beside this file.
 */
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import express, { type NextFunction, type Request, type Response } from 'express'
import session from 'express-session'
import { cache, configFromEnv, EMBEDDED_DEFAULT, type CacheConfig } from '../src/index.js'
import { cached } from '../src/http/express.js'
import { CacheStore } from '../src/session/store.js'

declare module 'express-session' {
  interface SessionData {
    visitor?: boolean
  }
}

const COUNTER = 'demo:counter'
const SESSION_MAX_AGE = 86_400_000 // a day

/** The config every worker uses: CACHE_* variables, else the embedded default. */
function demoConfig(): { config: CacheConfig; source: string } {
  const fromEnv = configFromEnv()
  return fromEnv === undefined ? { config: EMBEDDED_DEFAULT, source: 'the embedded default' } : { config: fromEnv, source: 'CACHE_* variables' }
}

/** The backend in one line, with any password hidden. */
function describe(config: CacheConfig, source: string): string {
  const c = typeof config === 'string' ? { url: config } : (config as Record<string, unknown>)
  const hide = (url: string) => url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@')
  const type = typeof c.type === 'string' ? c.type : 'custom'
  const where = typeof c.url === 'string' ? hide(c.url) : [c.path, c.dir].find((v) => typeof v === 'string')
  return `${typeof c.url === 'string' ? where : where === undefined ? type : `${type} ${String(where)}`} (${source})`
}

function workerCount(): number {
  const text = process.env.WORKERS
  if (text === undefined || text.trim() === '') return Math.max(2, availableParallelism())
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`WORKERS=${JSON.stringify(text)} is not a whole number >= 1.`)
    process.exit(2)
  }
  return n
}

function portFromEnv(): number {
  const text = process.env.PORT ?? '3000'
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0 || n > 65_535) {
    console.error(`PORT=${JSON.stringify(text)} is not a port number (0 picks a free one).`)
    process.exit(2)
  }
  return n
}

// ---- the primary: forks the workers, prints where the app is ------------------------------------------

function primary(): void {
  let described: string
  try {
    const { config, source } = demoConfig()
    described = describe(config, source)
  } catch (error) {
    console.error(`cachekit demo: ${(error as Error).message}`)
    process.exit(2)
  }
  const workers = workerCount()
  const host = process.env.HOST ?? '127.0.0.1'
  let listening = 0
  let stopping = false

  // Every worker must sign and check session cookies with the same secret.
  const secret = process.env.SESSION_SECRET ?? randomBytes(32).toString('base64url')
  const fork = () => cluster.fork({ SESSION_SECRET: secret })
  for (let i = 0; i < workers; i++) fork()

  cluster.on('listening', (_worker, address) => {
    listening++
    if (listening !== workers) return
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/`
    console.log(`cachekit demo listening on ${url}`)
    console.log(`backend: ${described}`)
    console.log(`workers: ${workers}`)
    console.log(`race it: npm run demo:race -- ${url}`)
  })

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    if (listening < workers) {
      // A worker that dies before it listens would die again: stop and let its error speak.
      console.error(`cachekit demo: worker ${worker.process.pid} exited (${signal ?? code}) before listening; stopping.`)
      stop(2)
      return
    }
    console.error(`cachekit demo: worker ${worker.process.pid} exited (${signal ?? code}); starting another.`)
    fork()
  })

  function stop(code: number): void {
    if (stopping) return
    stopping = true
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && !w.isDead())
    if (alive.length === 0) process.exit(code)
    let left = alive.length
    for (const w of alive) {
      w?.once('exit', () => {
        if (--left === 0) process.exit(code)
      })
      w?.process.kill('SIGTERM')
    }
    setTimeout(() => process.exit(code), 5000).unref()
  }
  process.on('SIGINT', () => stop(0))
  process.on('SIGTERM', () => stop(0))
}

// ---- a worker: the app ------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A slow report: the work a real app would not want to do on every request. */
async function buildReport() {
  const started = Date.now()
  await sleep(1000)
  let primes = 0
  for (let n = 2; n < 200_000; n++) {
    let prime = true
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false
        break
      }
    }
    if (prime) primes++
  }
  return {
    counter: (await cache.get<number>(COUNTER)) ?? 0,
    primesBelow200k: primes,
    computedAt: new Date().toISOString(),
    computedBy: process.pid,
    tookMs: Date.now() - started,
  }
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .3em}li{margin:.3em 0}</style>
</head><body>${body}</body></html>`
}

async function worker(): Promise<void> {
  const { config, source } = demoConfig()
  const backend = describe(config, source)
  cache.init(config)
  await cache.ready()

  // One worker computes it at a time (a lease across processes); the others wait and read its result.
  const report = cache.memoize(buildReport, { ttl: '1m' })
  const app = express()
  // Sessions in the cache, so that every worker sees them; only /visits uses them.
  const sessions = session({
    store: new CacheStore({ cache, prefix: 'demo:sess:' }),
    secret: process.env.SESSION_SECRET ?? '',
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: SESSION_MAX_AGE },
  })

  app.get('/', (req, res) => {
    const host = escapeHtml(req.get('host') ?? 'localhost:3000')
    res.type('html').send(
      page(
        'cachekit demo',
        `<h1>cachekit demo</h1>
<p>Backend: <code>${escapeHtml(backend)}</code>. This page came from worker <code>${process.pid}</code>.</p>
<ul>
<li><a href="/create">/create</a>: set the counter to 0</li>
<li><a href="/increment">/increment</a>: add 1 to the counter, atomically, and show the new value</li>
<li><a href="/read">/read</a>: read the counter</li>
<li><a href="/report">/report</a>: a slow report (about a second), memoized for a minute across workers</li>
<li><a href="/time">/time</a>: a page cached for 10 seconds with <code>cached()</code></li>
<li><a href="/visits">/visits</a>: how many times this browser came (a session per browser, an atomic counter per session)</li>
</ul>
<p>From a shell: <code>npm run demo:race -- http://${host}/</code> sends 100 concurrent requests to /increment and checks
that they saw exactly 1..100.</p>`,
      ),
    )
  })

  app.get('/create', async (_req, res) => {
    await cache.set(COUNTER, 0, 0)
    res.json({ value: 0, worker: process.pid })
  })

  app.get('/increment', async (_req, res) => {
    const value = await cache.inc(COUNTER)
    res.json({ value, worker: process.pid })
  })

  app.get('/read', async (_req, res) => {
    res.json({ value: (await cache.get<number>(COUNTER)) ?? 0, worker: process.pid })
  })

  app.get('/report', async (_req, res) => {
    res.json({ ...(await report()), servedBy: process.pid })
  })

  app.get('/time', cached({ ttl: '10s' }), (_req, res) => {
    const now = new Date()
    res.type('html').send(page('cached time', `<h1>${now.toISOString()}</h1><p>Rendered by worker ${process.pid}; cached for 10 seconds, whichever worker you reach.</p>`))
  })

  app.get('/visits', sessions, async (req, res) => {
    // A mark in the session, so that express-session stores it (saveUninitialized: false) and sends the cookie.
    req.session.visitor = true
    // The count is not in the session: two requests of one browser at once would both write visits + 1.
    // One counter per session, incremented atomically by the backend, never loses a visit.
    const visits = await cache.inc(`demo:visits:${req.sessionID}`, 1, SESSION_MAX_AGE)
    res.json({ visits, worker: process.pid })
  })

  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ error: error.message, worker: process.pid })
  })

  const server = app.listen(portFromEnv(), process.env.HOST ?? '127.0.0.1', (error?: Error) => {
    if (error !== undefined) {
      console.error(`cachekit demo: cannot listen: ${error.message}`)
      process.exit(2)
    }
  })

  let closing = false
  const shutdown = () => {
    if (closing) return
    closing = true
    server.close()
    server.closeAllConnections()
    void cache.close().finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', () => {}) // the primary decides; Ctrl-C reaches every process of the group
  process.on('disconnect', shutdown) // the primary is gone
}

if (cluster.isPrimary) primary()
else {
  worker().catch((error: unknown) => {
    console.error(`cachekit demo worker ${process.pid}: ${(error as Error).message}`)
    process.exit(2)
  })
}
