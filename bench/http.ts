/**
 * The HTTP row of `npm run bench` (also alone: `node --import tsx bench/http.ts [--quick]`): requests per
 * second of a cached route (cachekit's `cached()`, memory backend, every request a hit) against the same
 * route uncached and against a hand-written `Map` cache, on Express, Hono and Fastify. Each framework's
 * server runs in a process of its own (bench/http-server.ts); this process is the client: node:http with
 * keep-alive connections, CONNECTIONS requests in flight, over loopback. The three routes are measured in
 * interleaved rounds, in a rotated order; the table shows the median of the rounds.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Agent, request } from 'node:http'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export const FRAMEWORKS = ['express', 'hono', 'fastify'] as const
export const ROUTES = ['uncached', 'cached', 'map'] as const
/** Requests in flight at once, each on its own keep-alive connection. */
export const CONNECTIONS = 16

export interface HttpFigure {
  framework: (typeof FRAMEWORKS)[number]
  route: (typeof ROUTES)[number]
  /** The median over rounds. */
  requestsPerSec: number
  rounds: number[]
}

const SERVER = fileURLToPath(new URL('./http-server.ts', import.meta.url))

function startServer(framework: string): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(SERVER, [framework], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }))
    child.once('exit', (code) => reject(new Error(`the ${framework} bench server exited with ${code} before listening`)))
  })
}

/** As many GETs of `path` as complete in `ms`, CONNECTIONS at a time; requests per second. */
async function measure(agent: Agent, port: number, path: string, ms: number): Promise<number> {
  const end = performance.now() + ms
  let done = 0
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: status ${res.statusCode}`))
        res.on('data', () => {})
        res.on('end', () => resolve())
      })
      req.on('error', reject)
      req.end()
    })
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        await one()
        done++
      }
    }),
  )
  return done / ((performance.now() - started) / 1000)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export async function runHttpBench(options: { rounds: number; sliceMs: number; onProgress?(text: string): void }): Promise<HttpFigure[]> {
  const figures: HttpFigure[] = []
  for (const framework of FRAMEWORKS) {
    const { child, port } = await startServer(framework)
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS })
    try {
      // Warm-up: fills the caches (the first /cached and /map requests are misses) and the JIT.
      for (const route of ROUTES) await measure(agent, port, `/${route}`, Math.min(500, options.sliceMs))
      const perRound: Record<string, number[]> = {}
      for (let round = 0; round < options.rounds; round++) {
        for (let i = 0; i < ROUTES.length; i++) {
          const route = ROUTES[(i + round) % ROUTES.length] as (typeof ROUTES)[number]
          options.onProgress?.(`http ${framework}, round ${round + 1}/${options.rounds}, ${route}`)
          ;(perRound[route] ??= []).push(await measure(agent, port, `/${route}`, options.sliceMs))
        }
      }
      for (const route of ROUTES) figures.push({ framework, route, requestsPerSec: median(perRound[route] ?? []), rounds: perRound[route] ?? [] })
    } finally {
      agent.destroy()
      child.kill()
    }
  }
  return figures
}

function fmt(n: number): string {
  return n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0)
}

/** The table: requests/s per framework and route, and the cached route's ratio to the others. */
export function httpTable(figures: HttpFigure[]): string {
  const of = (framework: string, route: string) => figures.find((f) => f.framework === framework && f.route === route)?.requestsPerSec ?? NaN
  const rows = [['', 'uncached', 'cached()', 'Map cache', 'cached/uncached', 'cached/Map']]
  for (const framework of FRAMEWORKS) {
    const [u, c, m] = [of(framework, 'uncached'), of(framework, 'cached'), of(framework, 'map')]
    rows.push([framework, fmt(u), fmt(c), fmt(m), `${(c / u).toFixed(2)}x`, `${(c / m).toFixed(2)}x`])
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? []
  const lines = [`HTTP, requests/s over loopback (${CONNECTIONS} keep-alive connections, node:http client):`]
  for (const row of rows) lines.push(`  ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')}`)
  return lines.join('\n')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, rounds: { type: 'string' }, slice: { type: 'string' } } })
  const rounds = Number(values.rounds ?? (values.quick === true ? 2 : 5))
  const sliceMs = Number(values.slice ?? (values.quick === true ? 1000 : 3000))
  const figures = await runHttpBench({ rounds, sliceMs, onProgress: (text) => process.stderr.write(`${text}\n`) })
  console.log(`${rounds} interleaved rounds of ${sliceMs} ms per route; median of the rounds.`)
  console.log(httpTable(figures))
}
