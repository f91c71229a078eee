/**
 * Cache poisoning through the key: a request-target that the router sends to one route must never be stored
 * under the key of another. Real servers, and requests whose request line carries the target as written
 * (`fetch` would resolve `..` before sending).
 */
import { createServer, type Server } from 'node:http'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { cached as expressCached } from '../src/http/express.js'
import { cached as fastifyCached } from '../src/http/fastify.js'
import { cached as honoCached } from '../src/http/hono.js'
import { createCache } from '../src/singleton.js'
import { rawGet, served } from './support/http-suite.js'

const PAGES: Record<string, string> = { '/price': 'price: 42 EUR', '/report': 'the quarterly report' }

/**
 * An attack: `target` routes (on a router that sees the raw path) to a page that reflects it, while
 * `new URL()` would resolve it to `victim`. `dotSegments`: whether it relies on `..` (written or encoded).
 */
interface Attack {
  name: string
  target: string
  victim: string
  dotSegments: boolean
}

const ATTACKS: Attack[] = [
  { name: 'dot segments', target: '/search/<script>x<%2Fscript>/../../price', victim: '/price', dotSegments: true },
  { name: '%2e%2e segments', target: '/search/<script>x<%2Fscript>/%2e%2e/%2e%2e/price', victim: '/price', dotSegments: true },
  { name: 'mixed %2E%2e and .%2E segments', target: '/search/<script>x<%2Fscript>/%2E%2e/.%2E/price', victim: '/price', dotSegments: true },
  { name: '//host', target: '//evil.example/report', victim: '/report', dotSegments: false },
  { name: 'absolute-form', target: 'http://evil.example/search/<script>x<%2Fscript>/../../price', victim: '/price', dotSegments: true },
]

/**
 * What the attack's own response must be, given what the router matched. Express, and an adapter that hands
 * Hono the target as received, route on the raw path; @hono/node-server resolves dot segments (its own
 * `new URL`) before Hono sees the request, so there the router itself goes to the victim's route.
 */
function attackPage(attack: Attack, resolvesDots: boolean): RegExp {
  if (attack.dotSegments && resolvesDots) return new RegExp(`^${PAGES[attack.victim]}$`)
  return attack.dotSegments ? /^<p>results for <script>x<\/script>\/.*price<\/p>$/ : /^<p>no page at \/\/evil\.example\/report<\/p>$/
}

function expressApp(cache: Cache): Server {
  const mw = expressCached({ cache, ttl: '1m', xCache: true })
  const app = express()
  for (const [path, page] of Object.entries(PAGES)) app.get(path, mw, (_req, res) => res.type('text/plain').send(page))
  // A search page that reflects its input (the XSS the cache must not spread), and a catch-all page.
  app.get('/search/*rest', mw, (req, res) => res.type('html').send(`<p>results for ${(req.params as { rest: string[] }).rest.join('/')}</p>`))
  app.get('/*splat', mw, (req, res) => res.type('html').send(`<p>no page at ${req.originalUrl}</p>`))
  return app.listen(0, '127.0.0.1')
}

/** Fastify routes on the raw path too (find-my-way matches the text received; an absolute-form target is read from its path). */
async function fastifyApp(cache: Cache): Promise<{ url: string; close(): Promise<void> }> {
  const hooks = fastifyCached({ cache, ttl: '1m', xCache: true })
  const app = Fastify()
  for (const [path, page] of Object.entries(PAGES)) app.get(path, { ...hooks }, async (_request, reply) => reply.type('text/plain').send(page))
  app.get('/search/*', { ...hooks }, async (request, reply) => reply.type('text/html').send(`<p>results for ${(request.params as { '*': string })['*']}</p>`))
  app.get('/*', { ...hooks }, async (request, reply) => reply.type('text/html').send(`<p>no page at ${request.url}</p>`))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

function honoApp(cache: Cache): Hono {
  const mw = honoCached({ cache, ttl: '1m', xCache: true })
  const app = new Hono()
  for (const [path, page] of Object.entries(PAGES)) app.get(path, mw, (c) => c.text(page))
  app.get('/search/*', mw, (c) => c.html(`<p>results for ${decodeURIComponent(c.req.path.slice('/search/'.length))}</p>`))
  app.get('*', mw, (c) => c.html(`<p>no page at ${c.req.path}</p>`))
  return app
}

/**
 * A Node server that hands Hono the request-target as received, dot segments and all, as @hono/node-server
 * did before honojs/node-server#124 (January 2024), and as any adapter may that builds no WHATWG `Request`.
 */
function passThrough(app: Hono): Server {
  return createServer((req, res) => {
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value)
    const target = req.url ?? '/'
    const url = target.startsWith('/') ? `http://${req.headers.host ?? 'localhost'}${target}` : target
    const request = { method: req.method ?? 'GET', url, headers } as unknown as Request
    void (async () => {
      const response = await app.fetch(request)
      res.writeHead(response.status, Object.fromEntries(response.headers))
      res.end(Buffer.from(await response.arrayBuffer()))
    })()
  }).listen(0, '127.0.0.1')
}

const SERVERS: { name: string; resolvesDots: boolean; start: (cache: Cache) => Promise<{ url: string; close(): Promise<void> }> }[] = [
  { name: 'Express 5', resolvesDots: false, start: (cache) => served(expressApp(cache)) },
  { name: 'Hono on @hono/node-server', resolvesDots: true, start: (cache) => served(serve({ fetch: honoApp(cache).fetch, port: 0, hostname: '127.0.0.1' }) as Server) },
  { name: 'Hono on a pass-through Node adapter', resolvesDots: false, start: (cache) => served(passThrough(honoApp(cache))) },
  { name: 'Fastify 5', resolvesDots: false, start: fastifyApp },
]

for (const server of SERVERS) {
  describe(`cache poisoning through the key: ${server.name}`, () => {
    let cache: Cache
    let app: { url: string; close(): Promise<void> }
    beforeAll(async () => {
      cache = createCache({ type: 'memory' })
      app = await server.start(cache)
    })
    beforeEach(() => cache.clear())
    afterAll(async () => {
      await app.close()
      await cache.close()
    })

    for (const attack of ATTACKS) {
      it(`GET ${attack.target} (${attack.name}) is never served to GET ${attack.victim}`, async () => {
        const poisoned = await rawGet(app.url, attack.target)
        expect(poisoned.status).toBe(200)
        // The request reached the server unresolved, and the route its router chose answered it.
        expect(poisoned.body).toMatch(attackPage(attack, server.resolvesDots))

        const victim = await rawGet(app.url, attack.victim)
        expect(victim.status).toBe(200)
        expect(victim.body).toBe(PAGES[attack.victim])

        // The same target finds its own entry again: one target, one key.
        const again = await rawGet(app.url, attack.target)
        expect(again.headers['x-cache']).toBe('HIT')
        expect(again.body).toBe(poisoned.body)
      })
    }

    it('a victim page cached first is not replaced by an attack', async () => {
      const first = await rawGet(app.url, '/price')
      expect(first.headers['x-cache']).toBe('MISS')
      for (const attack of ATTACKS) await rawGet(app.url, attack.target)
      const later = await rawGet(app.url, '/price')
      expect(later.headers['x-cache']).toBe('HIT')
      expect(later.body).toBe(PAGES['/price'])
      expect((await rawGet(app.url, '/report')).body).toBe(PAGES['/report'])
    })
  })
}
