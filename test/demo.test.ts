/**
 * The demo app (examples/app.ts) on 4 real cluster workers over real HTTP: 100 concurrent clients call
 * /increment once each. On every shared backend they see exactly 1..100; on `memory:` each worker counts
 * on its own copy, and they do not.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { race, type RaceResult } from '../bin/race-clients.js'
import { startDemo } from '../examples/launch.js'
import { EMBEDDED_DEFAULT } from '../src/index.js'
import { sharedBackends } from './support/shared-backends.js'

const WORKERS = 4
/**
 * Each test starts the demo (a primary and 4 workers, each loading TypeScript): on a loaded 2-core machine,
 * as CI can be, that alone takes tens of seconds. The tests claim what the clients see, not a start-up time.
 */
const PROCESSES = { timeout: 120_000 }
const START_TIMEOUT_MS = 90_000
/** How long one of the 100 clients waits for its answer: they queue for one counter across 4 processes. */
const ANSWER_TIMEOUT_MS = 60_000
const ONE_TO_100 = Array.from({ length: 100 }, (_, i) => i + 1)

/** Start the demo with `env` (every other CACHE_* variable removed), race it, run `more`, stop it. */
async function raceDemo(env: Record<string, string>, cwd?: string, more?: (url: string) => Promise<void>): Promise<RaceResult> {
  const cleared = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('CACHE_')).map((k) => [k, undefined]))
  const demo = await startDemo({ workers: WORKERS, timeout: START_TIMEOUT_MS, env: { ...cleared, ...env }, ...(cwd === undefined ? {} : { cwd }) })
  try {
    expect(demo.output()).toContain(`workers: ${WORKERS}`)
    const result = await race(demo.url, { timeout: ANSWER_TIMEOUT_MS })
    await more?.(demo.url)
    return result
  } finally {
    await demo.stop()
  }
}

/** GET on a fresh connection each time, so that the cluster hands the requests to different workers. */
async function fetchFresh(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers: { connection: 'close' } })
  return { status: res.status, text: await res.text() }
}

describe('the demo race', PROCESSES, () => {
  for (const backend of sharedBackends()) {
    it(`gives exactly 1..100 on ${backend.name} with ${WORKERS} workers`, async (t) => {
      if (!(await backend.available())) return t.skip()
      const { url, prefix, env } = backend.fresh()
      try {
        const result = await raceDemo({ CACHE_URL: url, CACHE_KEY_PREFIX: prefix, ...env })
        expect(result.errors).toEqual([])
        expect([...result.values].sort((a, b) => a - b)).toEqual(ONE_TO_100)
        expect(result.ok).toBe(true)
        expect(result.workers).toBeGreaterThan(1)
      } finally {
        await backend.cleanup()
      }
    })
  }

  it(`fails on memory: with ${WORKERS} workers (each worker counts on its own copy)`, async () => {
    const result = await raceDemo({ CACHE_URL: 'memory:' })
    expect(result.errors).toEqual([])
    expect(result.values).toHaveLength(100)
    // The cluster deals connections round-robin, so several workers answer; each one's first
    // increment of its own copy returns 1, hence a duplicate whenever more than one worker answered.
    expect(result.workers).toBeGreaterThan(1)
    expect(result.ok).toBe(false)
    expect(result.duplicates.find((d) => d.value === 1)?.times).toBe(result.workers)
  })

  describe('with no CACHE_* variables (what `npm start` uses)', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cachekit-demo-'))
    afterAll(() => rmSync(cwd, { recursive: true, force: true }))
    it('uses the embedded default (SQLite) and passes the race; /report and /time are shared by the workers', async () => {
      expect(EMBEDDED_DEFAULT.type).toBe('sqlite')
      const result = await raceDemo({}, cwd, async (url) => {
        const index = await fetchFresh(url)
        expect(index.status).toBe(200)
        for (const route of ['/create', '/increment', '/read', '/report', '/time']) expect(index.text).toContain(`href="${route}"`)
        const strip = (text: string) => text.replace(/"servedBy":\d+/, '')
        // Concurrent first calls, on different workers: memoize's lease across processes lets one compute.
        const reports = await Promise.all(Array.from({ length: 6 }, () => fetchFresh(`${url}report`)))
        const served = new Set(reports.map((r) => (JSON.parse(r.text) as { servedBy: number }).servedBy))
        expect(served.size).toBeGreaterThan(1)
        for (const r of reports) expect(strip(r.text)).toBe(strip(reports[0]?.text ?? ''))
        // The page is rendered once and then served from the cache, whichever worker answers.
        const first = await fetchFresh(`${url}time`)
        expect(first.status).toBe(200)
        const pages = await Promise.all(Array.from({ length: 6 }, () => fetchFresh(`${url}time`)))
        for (const r of pages) expect(r.text).toBe(first.text)
        const read = JSON.parse((await fetchFresh(`${url}read`)).text) as { value: number }
        expect(read.value).toBe(100)
      })
      expect(result.ok).toBe(true)
      expect(existsSync(join(cwd, '.cache', 'cachekit.sqlite'))).toBe(true)
    })
  })
})
