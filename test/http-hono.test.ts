import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { setCookie } from 'hono/cookie'
import { describe, expect, it } from 'vitest'
import { cached } from '../src/http/hono.js'
import { cache as singleton, createCache } from '../src/singleton.js'
import { BINARY, httpSuite, RULE_METHODS, RULE_ROUTES, runRule, served, type Runs } from './support/http-suite.js'

describe('cachekit/hono on a real @hono/node-server', () => {
  httpSuite(async (cache) => {
    const runs: Runs = {}
    const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
    const mw = cached({ cache, ttl: '1m', xCache: true })
    const app = new Hono()
    // The thrown errors of /r/slow-throw are expected: answered 500, not printed.
    app.onError((_error, c) => c.text('failed', 500))
    app.get('/text', mw, (c) => {
      ran('text')
      c.header('x-custom', 'yes')
      return c.text('hello')
    })
    app.post('/text', mw, (c) => {
      ran('text')
      return c.text('posted')
    })
    app.get('/json', mw, (c) => c.json({ run: ran('json'), query: c.req.query() }))
    app.get('/bin', mw, (c) => {
      ran('bin')
      return c.body(new Uint8Array(BINARY), 200, { 'content-type': 'application/octet-stream' })
    })
    app.get('/stream', mw, (c) => {
      ran('stream')
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('part1-'))
          controller.enqueue(new TextEncoder().encode('part2'))
          controller.close()
        },
      })
      return c.body(stream, 200, { 'content-type': 'text/plain' })
    })
    app.get('/cookie', mw, (c) => {
      ran('cookie')
      setCookie(c, 'session', 'abc')
      return c.text('with cookie')
    })
    app.get('/private', mw, (c) => {
      ran('private')
      c.header('Cache-Control', 'private')
      return c.text('mine')
    })
    app.get('/missing', mw, (c) => {
      ran('missing')
      return c.text('nope', 404)
    })
    app.get('/etag', mw, (c) => {
      ran('etag')
      c.header('ETag', '"v1"')
      return c.text('tagged')
    })
    app.get('/orgs/:id', cached({ cache, tags: (c) => [`org:${c.req.param('id') ?? ''}`] }), (c) => c.text(`${c.req.param('id') ?? ''}:${ran(`org:${c.req.param('id') ?? ''}`)}`))
    app.get('/forced', cached({ cache, forcedUpdate: (c) => c.req.header('x-refresh') === '1' }), (c) => c.text(String(ran('forced'))))
    app.get('/unless', cached({ cache, unless: (c) => c.req.header('x-bypass') === '1' }), (c) => c.text(String(ran('unless'))))
    app.get('/singleton', cached({ ttl: '1m' }), (c) => c.text(String(ran('singleton'))))
    for (const route of RULE_ROUTES) {
      app.on([...RULE_METHODS], route.path, cached({ cache, ttl: '1m', xCache: true, ...route.options }), async (c) => {
        const reply = await runRule(route, runs, { header: (name) => c.req.header(name), query: new URLSearchParams(new URL(c.req.url).search) })
        const body = typeof reply.body === 'string' ? reply.body : new Uint8Array(reply.body)
        return c.body(body, (reply.status ?? 200) as ContentfulStatusCode, reply.headers ?? {})
      })
    }
    return { ...(await served(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server)), runs }
  }, singleton)
})

describe('cachekit/hono and a response that never ends', () => {
  it('an event stream is passed through unbuffered and never stored', async () => {
    const cache = createCache('memory:')
    let runs = 0
    const timers: NodeJS.Timeout[] = []
    const app = new Hono()
    app.get('/events', cached({ cache, ttl: '1m' }), (c) => {
      runs++
      let timer: NodeJS.Timeout | undefined
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: first\n\n'))
          // It never closes: a reader must get the first event without waiting for an end.
          timer = setInterval(() => {
            try {
              controller.enqueue(new TextEncoder().encode('data: tick\n\n'))
            } catch {
              clearInterval(timer) // closed under us: the client has gone
            }
          }, 50)
          timers.push(timer)
        },
        // The client went away: stop producing.
        cancel() {
          clearInterval(timer)
        },
      })
      return c.body(stream, 200, { 'content-type': 'text/event-stream' })
    })
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server
    const { url, close } = await served(server)
    try {
      for (let i = 0; i < 2; i++) {
        const abort = new AbortController()
        const res = await fetch(`${url}/events`, { signal: abort.signal })
        const reader = res.body!.getReader()
        const { value } = await reader.read()
        expect(new TextDecoder().decode(value)).toContain('data: first')
        abort.abort()
      }
      expect(runs).toBe(2)
      const keys: string[] = []
      for await (const k of cache.keys()) keys.push(k)
      expect(keys).toEqual([])
    } finally {
      for (const t of timers) clearInterval(t)
      server.closeAllConnections()
      await close()
      await cache.close()
    }
  })
})
