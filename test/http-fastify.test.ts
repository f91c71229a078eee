import { Readable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { CacheConfigError } from '../src/errors.js'
import { cached, cachedRoutes } from '../src/http/fastify.js'
import { cache as singleton, createCache } from '../src/singleton.js'
import { BINARY, httpSuite, RULE_METHODS, RULE_ROUTES, runRule, type Runs } from './support/http-suite.js'

async function listen(app: FastifyInstance): Promise<{ url: string; close(): Promise<void> }> {
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

describe('cachekit/fastify on a real Fastify 5 server', () => {
  httpSuite(async (cache) => {
    const runs: Runs = {}
    const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
    const hooks = cached({ cache, ttl: '1m', xCache: true })
    const app = Fastify()
    app.get('/text', { ...hooks }, async (_request, reply) => {
      ran('text')
      return reply.header('x-custom', 'yes').type('text/plain').send('hello')
    })
    app.post('/text', { ...hooks }, async (_request, reply) => {
      ran('text')
      return reply.type('text/plain').send('posted')
    })
    app.get('/json', { ...hooks }, async (request) => ({ run: ran('json'), query: request.query }))
    app.get('/bin', { ...hooks }, async (_request, reply) => {
      ran('bin')
      return reply.type('application/octet-stream').send(BINARY)
    })
    app.get('/stream', { ...hooks }, async (_request, reply) => {
      ran('stream')
      return reply.type('text/plain').send(Readable.from(['part1-', 'part2']))
    })
    app.get('/cookie', { ...hooks }, async (_request, reply) => {
      ran('cookie')
      return reply.header('set-cookie', 'session=abc; Path=/').send('with cookie')
    })
    app.get('/private', { ...hooks }, async (_request, reply) => {
      ran('private')
      return reply.header('cache-control', 'private').send('mine')
    })
    app.get('/missing', { ...hooks }, async (_request, reply) => {
      ran('missing')
      return reply.code(404).send('nope')
    })
    app.get('/etag', { ...hooks }, async (_request, reply) => {
      ran('etag')
      return reply.header('etag', '"v1"').type('text/plain').send('tagged')
    })
    app.get('/forced', { ...cached({ cache, forcedUpdate: (request) => request.headers['x-refresh'] === '1' }) }, async () => String(ran('forced')))
    app.get('/unless', { ...cached({ cache, unless: (request) => request.headers['x-bypass'] === '1' }) }, async () => String(ran('unless')))
    app.get<{ Params: { id: string } }>('/orgs/:id', { ...cached({ cache, tags: (request) => [`org:${(request.params as { id: string }).id}`] }) }, async (request) => `${request.params.id}:${ran(`org:${request.params.id}`)}`)
    app.get('/singleton', { ...cached({ ttl: '1m' }) }, async () => String(ran('singleton')))
    for (const route of RULE_ROUTES) {
      app.route({
        method: [...RULE_METHODS],
        url: route.path,
        ...cached({ cache, ttl: '1m', xCache: true, ...route.options }),
        handler: async (request, reply) => {
          const target = request.raw.url ?? request.url
          const out = await runRule(route, runs, { header: (name) => request.headers[name] as string | undefined, query: new URLSearchParams(target.split('?')[1] ?? '') })
          return reply
            .code(out.status ?? 200)
            .headers(out.headers ?? {})
            .send(out.body)
        },
      })
    }
    return { ...(await listen(app)), runs }
  }, singleton)
})

describe('cachekit/fastify: the plugin form and the hooks of a route', () => {
  let cache: Cache
  let app: FastifyInstance
  let url: string
  const runs: Runs = {}
  const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)

  beforeAll(async () => {
    cache = createCache({ type: 'memory' })
    app = Fastify()
    await app.register(cachedRoutes, { cache, ttl: '1m', xCache: true })
    app.get('/plugin', { config: { cached: true } }, async () => `plugin #${ran('plugin')}`)
    app.get('/plugin-own', { config: { cached: { keyPrefix: 'own/' } } }, async () => `own #${ran('own')}`)
    app.get('/plain', async () => `plain #${ran('plain')}`)
    // The route's own preHandler runs before the cached one: a hit never skips authentication.
    app.get(
      '/guarded',
      {
        config: { cached: true },
        preHandler: async (request, reply) => {
          if (request.headers['x-key'] !== 'open') return reply.code(401).send('no')
        },
      },
      async () => `guarded #${ran('guarded')}`,
    )
    const spread = cached({ cache, ttl: '1m', xCache: true })
    app.get(
      '/listed',
      {
        ...spread,
        preHandler: [
          async (request, reply) => {
            if (request.headers['x-key'] !== 'open') return reply.code(401).send('no')
          },
          spread.preHandler,
        ],
      },
      async () => `listed #${ran('listed')}`,
    )
    url = await app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await app.close()
    await cache.close()
  })

  it("routes with config.cached get the plugin's defaults, or some of them replaced; others are not cached", async () => {
    expect(await (await fetch(`${url}/plugin`)).text()).toBe('plugin #1')
    const hit = await fetch(`${url}/plugin`)
    expect(hit.headers.get('x-cache')).toBe('HIT')
    expect(await hit.text()).toBe('plugin #1')
    await fetch(`${url}/plugin-own`)
    expect(await (await fetch(`${url}/plugin-own`)).text()).toBe('own #1')
    expect(await cache.has('own//plugin-own')).toBe(true)
    await fetch(`${url}/plain`)
    expect(await (await fetch(`${url}/plain`)).text()).toBe('plain #2')
  })

  it("Fastify's HEAD route is served from the GET entry, with its Content-Length", async () => {
    const head = await fetch(`${url}/plugin`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('x-cache')).toBe('HIT')
    expect(head.headers.get('content-length')).toBe(String('plugin #1'.length))
    expect((await head.arrayBuffer()).byteLength).toBe(0)
    expect(runs.plugin).toBe(1)
  })

  it("the route's own preHandler runs first, on hits too", async () => {
    for (const path of ['/guarded', '/listed']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(401)
      expect(await (await fetch(`${url}${path}`, { headers: { 'x-key': 'open' } })).text(), path).toMatch(/ #1$/)
      const hit = await fetch(`${url}${path}`, { headers: { 'x-key': 'open' } })
      expect(hit.headers.get('x-cache'), path).toBe('HIT')
      expect((await fetch(`${url}${path}`)).status, path).toBe(401)
    }
  })

  it('a bad default is refused when the plugin is registered', async () => {
    const other = Fastify()
    await expect(other.register(cachedRoutes, { cache, ttll: '1m' } as never).ready()).rejects.toThrow(CacheConfigError)
    await other.close()
    expect(() => cached({ cache, ttl: 'soon' })).toThrow(/`ttl`/)
  })
})
