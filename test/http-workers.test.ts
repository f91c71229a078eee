/**
 * One handler run per stampede across processes: 4 worker processes (test/fixtures/http-server.ts) share a
 * SQLite file, and 20 concurrent identical misses spread over them run the handler once in total, on
 * Express, Hono and Fastify alike, every client getting the same body. The control, `singleFlight: false`,
 * runs it more than once. The runs are counted in the backend itself, by `inc`.
 */
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Cache } from '../src/cache.js'
import { createCache } from '../src/singleton.js'
import { startPortsChild, stopChildren } from './support/port-children.js'

const WORKERS = 4
const CLIENTS = 20
const FRAMEWORKS = ['express', 'hono', 'fastify'] as const
type Framework = (typeof FRAMEWORKS)[number]
type Worker = Record<Framework, string>

const FIXTURE = fileURLToPath(new URL('./fixtures/http-server.ts', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'cachekit-http-workers-'))
const path = join(root, 'cache.sqlite')

function start(env: Record<string, string>): { children: ChildProcess[]; ready: Promise<Worker[]> } {
  const started = Array.from({ length: WORKERS }, () => startPortsChild(FIXTURE, env, 'an HTTP worker'))
  const ready = Promise.all(
    started.map(async ({ ports }) => {
      const parsed = await ports
      return Object.fromEntries(FRAMEWORKS.map((f) => [f, `http://127.0.0.1:${parsed[f]}`])) as Worker
    }),
  )
  return { children: started.map(({ child }) => child), ready }
}

describe(`cached responses on SQLite, ${WORKERS} worker processes`, () => {
  let workers: Worker[] = []
  let children: ChildProcess[] = []
  let counts: Cache

  beforeAll(async () => {
    const started = start({ CACHE_URL: `sqlite:${path}`, CACHE_KEY_PREFIX: 'app:', HANDLER_MS: '400' })
    children = started.children
    workers = await started.ready
    counts = createCache({ type: 'sqlite', path, keyPrefix: 'app:' })
  }, 60_000)
  afterAll(async () => {
    await stopChildren(children)
    await counts?.close()
    rmSync(root, { recursive: true, force: true })
  })

  /** CLIENTS concurrent GETs of `route` for a fresh round, spread over the workers; their bodies and the runs. */
  async function stampede(framework: Framework, route: string): Promise<{ bodies: string[]; runs: number | undefined }> {
    const round = randomUUID()
    const bodies = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const res = await fetch(`${(workers[i % WORKERS] as Worker)[framework]}${route}?round=${round}`, { signal: AbortSignal.timeout(30_000) })
        expect(res.status).toBe(200)
        return res.text()
      }),
    )
    return { bodies, runs: await counts.get<number>(`runs:${framework}:${round}`) }
  }

  for (const framework of FRAMEWORKS) {
    it(`${framework}: ${CLIENTS} concurrent identical misses over ${WORKERS} processes run the handler once in total`, async () => {
      const { bodies, runs } = await stampede(framework, '/slow')
      expect(runs).toBe(1)
      expect(new Set(bodies).size).toBe(1)
      expect(JSON.parse(bodies[0] as string)).toMatchObject({ run: 1 })
    }, 30_000)

    it(`${framework}: the control, singleFlight: false, runs it more than once`, async () => {
      const { bodies, runs } = await stampede(framework, '/slow-off')
      expect(runs).toBeGreaterThan(1)
      expect(new Set(bodies).size).toBeGreaterThan(1)
    }, 30_000)
  }
})
