/**
 * The demo's per-visitor counter (Flask-Session's example), on 4 real cluster workers over real HTTP: two
 * browsers (cookie jars) each see their own count, exact under concurrent requests dealt to every worker.
 */
import { describe, expect, it } from 'vitest'
import { startDemo } from '../examples/launch.js'
import { sharedBackends } from './support/shared-backends.js'
import { CookieJar, send } from './support/sessions.js'

const WORKERS = 4

describe('the demo /visits', () => {
  for (const backend of sharedBackends().filter((b) => b.name !== 'filesystem')) {
    it(`counts per browser on ${backend.name} with ${WORKERS} workers`, async (t) => {
      if (!(await backend.available())) return t.skip()
      const { url, prefix, env } = backend.fresh()
      const cleared = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('CACHE_')).map((k) => [k, undefined]))
      const demo = await startDemo({ workers: WORKERS, env: { ...cleared, CACHE_URL: url, CACHE_KEY_PREFIX: prefix, ...env, SESSION_SECRET: undefined } })
      try {
        expect((await send<string>(demo.url, undefined)).body).toContain('href="/visits"')
        const browsers = [new CookieJar(), new CookieJar()]
        for (const jar of browsers) {
          const first = await send<{ visits: number }>(`${demo.url}visits`, jar)
          expect(first.body.visits).toBe(1)
          expect(first.setCookies).toHaveLength(1)
        }
        // Both browsers at once, 15 requests each, each request on its own connection (so to any worker).
        const answers = await Promise.all(browsers.map((jar) => Promise.all(Array.from({ length: 15 }, () => send<{ visits: number; worker: number }>(`${demo.url}visits`, jar)))))
        for (const mine of answers) {
          expect(mine.map((a) => a.status)).toEqual(Array(15).fill(200))
          expect(mine.map((a) => a.body.visits).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i + 2))
        }
        const workers = new Set(answers.flat().map((a) => a.body.worker))
        expect(workers.size).toBeGreaterThan(1)
        // A new browser starts at 1; the others go on from where they were.
        expect((await send<{ visits: number }>(`${demo.url}visits`, new CookieJar())).body.visits).toBe(1)
        expect((await send<{ visits: number }>(`${demo.url}visits`, browsers[0])).body.visits).toBe(17)
      } finally {
        await demo.stop()
        await backend.cleanup()
      }
    }, 180_000)
  }
})
