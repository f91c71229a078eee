/**
 * One framework's server for the HTTP benchmark (bench/http.ts), in its own process so that the client's
 * work is not the server's: the same handler three ways, `/uncached`, `/cached` (cachekit's `cached()` on a
 * memory cache) and `/map` (a hand-written `Map` of the serialized body, the least a cache can do). Sends
 * `{ port }` over IPC once it listens.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { createCache } from '../src/singleton.js'
import { cached as expressCached } from '../src/http/express.js'
import { cached as fastifyCached } from '../src/http/fastify.js'
import { cached as honoCached } from '../src/http/hono.js'

/** What the handler does: a small report of 50 rows, built on each run. */
function report(): { rows: { id: number; name: string; price: number }[] } {
  const rows = []
  for (let i = 0; i < 50; i++) rows.push({ id: i, name: `item ${i}`, price: Math.round(i * 1.37 * 100) / 100 })
  return { rows }
}

const cache = createCache({ type: 'memory' })
const options = { cache, ttl: '1h' } as const
/** The hand-written cache: the serialized body by request URL. */
const map = new Map<string, string>()
const framework = process.argv[2]
let server: Server

if (framework === 'express') {
  const app = express()
  app.get('/uncached', (_req, res) => res.json(report()))
  app.get('/cached', expressCached(options), (_req, res) => res.json(report()))
  app.get('/map', (req, res) => {
    let body = map.get(req.originalUrl)
    if (body === undefined) map.set(req.originalUrl, (body = JSON.stringify(report())))
    res.type('application/json').send(body)
  })
  server = app.listen(0, '127.0.0.1')
} else if (framework === 'hono') {
  const app = new Hono()
  app.get('/uncached', (c) => c.json(report()))
  app.get('/cached', honoCached(options), (c) => c.json(report()))
  app.get('/map', (c) => {
    let body = map.get(c.req.url)
    if (body === undefined) map.set(c.req.url, (body = JSON.stringify(report())))
    return c.body(body, 200, { 'content-type': 'application/json' })
  })
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server
} else if (framework === 'fastify') {
  const app = Fastify()
  app.get('/uncached', async () => report())
  app.get('/cached', { ...fastifyCached(options) }, async () => report())
  app.get('/map', async (request, reply) => {
    let body = map.get(request.url)
    if (body === undefined) map.set(request.url, (body = JSON.stringify(report())))
    return reply.type('application/json').send(body)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  server = app.server
} else {
  throw new Error(`bench/http-server.ts: no framework ${framework}`)
}

if (!server.listening) await new Promise((resolve) => server.once('listening', resolve))
process.send?.({ port: (server.address() as AddressInfo).port })
process.on('disconnect', () => process.exit(0))
