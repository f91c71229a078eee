/**
 * Stand-ins for `cache.memoize` and `cachekit/express`'s `cached()` until they land on main, so that the demo
 * runs today. Delete this file when they do, and import the real ones in app.ts.
 */
import type { NextFunction, Request, Response } from 'express'
import type { Cache, Duration } from '../src/index.js'

/** `cache.memoize(fn, { ttl })` for a function of no arguments. */
export function memoize<T>(cache: Cache, fn: () => Promise<T>, options: { ttl: Duration; name?: string }): () => Promise<T> {
  const key = `memoize/${options.name ?? fn.name}`
  return () => cache.getOrSet(key, fn, options.ttl)
}

interface Page {
  status: number
  type: string
  body: string
}

/** `cached({ ttl })`: caches 200 text responses to GET by path. */
export function cached(cache: Cache, options: { ttl: Duration }) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const key = `view/${req.path}`
    const hit = await cache.get<Page>(key)
    if (hit !== undefined) {
      res.status(hit.status).type(hit.type).set('X-Cache', 'HIT').send(hit.body)
      return
    }
    const send = res.send.bind(res)
    res.send = (body: unknown) => {
      if (res.statusCode === 200 && typeof body === 'string') {
        void cache.set(key, { status: 200, type: String(res.get('Content-Type') ?? 'text/html'), body }, options.ttl)
      }
      res.set('X-Cache', 'MISS')
      return send(body)
    }
    next()
  }
}
