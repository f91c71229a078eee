import express from 'express'
import { describe } from 'vitest'
import { cached } from '../src/http/express.js'
import { cache as singleton } from '../src/singleton.js'
import { BINARY, httpSuite, RULE_METHODS, RULE_ROUTES, runRule, served, type Runs } from './support/http-suite.js'

describe('cachekit/express on a real Express 5 server', () => {
  httpSuite(async (cache) => {
    const runs: Runs = {}
    const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1)
    const mw = cached({ cache, ttl: '1m', xCache: true })
    const app = express()
    // The thrown errors of /r/slow-throw are expected: not printed.
    app.set('env', 'test')
    app.get('/text', mw, (_req, res) => {
      ran('text')
      res.set('x-custom', 'yes').type('text/plain').send('hello')
    })
    app.post('/text', mw, (_req, res) => {
      ran('text')
      res.type('text/plain').send('posted')
    })
    app.get('/json', mw, (req, res) => {
      res.json({ run: ran('json'), query: req.query })
    })
    app.get('/bin', mw, (_req, res) => {
      ran('bin')
      res.type('application/octet-stream').send(BINARY)
    })
    app.get('/stream', mw, (_req, res) => {
      ran('stream')
      res.type('text/plain')
      res.write('part1-')
      res.end('part2')
    })
    app.get('/cookie', mw, (_req, res) => {
      ran('cookie')
      res.cookie('session', 'abc').send('with cookie')
    })
    app.get('/private', mw, (_req, res) => {
      ran('private')
      res.set('Cache-Control', 'private').send('mine')
    })
    app.get('/missing', mw, (_req, res) => {
      ran('missing')
      res.status(404).send('nope')
    })
    app.get('/etag', mw, (_req, res) => {
      ran('etag')
      res.set('ETag', '"v1"').type('text/plain').send('tagged')
    })
    app.get('/forced', cached({ cache, forcedUpdate: (req) => req.get('x-refresh') === '1' }), (_req, res) => {
      res.send(String(ran('forced')))
    })
    app.get('/unless', cached({ cache, unless: (req) => req.get('x-bypass') === '1' }), (_req, res) => {
      res.send(String(ran('unless')))
    })
    app.get('/orgs/:id', cached({ cache, tags: (req) => [`org:${String(req.params.id)}`] }), (req, res) => {
      res.send(`${String(req.params.id)}:${ran(`org:${String(req.params.id)}`)}`)
    })
    app.get('/singleton', cached({ ttl: '1m' }), (_req, res) => {
      res.send(String(ran('singleton')))
    })
    for (const route of RULE_ROUTES) {
      const rule = cached({ cache, ttl: '1m', xCache: true, ...route.options })
      for (const method of RULE_METHODS) {
        app[method.toLowerCase() as 'get'](route.path, rule, async (req, res) => {
          const reply = await runRule(route, runs, { header: (name) => req.get(name), query: new URLSearchParams(req.originalUrl.split('?')[1] ?? '') })
          res.status(reply.status ?? 200)
          for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value)
          res.send(reply.body)
        })
      }
    }
    return { ...(await served(app.listen(0, '127.0.0.1'))), runs }
  }, singleton)
})
