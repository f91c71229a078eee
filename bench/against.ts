/**
 * This checkout's cachekit against another checkout's, in one process, interleaved: the way to show that a
 * change kept the hot paths as fast as they were. Check out the earlier commit beside this one
 * (`git worktree add ../before <commit>`, then `npm ci` there), and run
 *
 *   node --import tsx bench/against.ts ../before [memory|sqlite|redis ...]
 *
 * Each round measures get (hit), set, getOrSet (hit) and inc on both builds, in a rotated order; the table
 * shows the median ops/s of 5 rounds and this checkout's ratio to the other. Redis runs 64 operations in
 * flight on the machine's server (REDIS_URL, default redis://127.0.0.1:6379), each build under its own prefix.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Bench } from 'tinybench'

interface Build {
  createCache(config: Record<string, unknown>): BenchCache
}
interface BenchCache {
  ready(): Promise<void>
  get(key: string): Promise<unknown>
  set(key: string, value: unknown, ttl?: string): Promise<boolean>
  getOrSet(key: string, factory: () => unknown, options?: { ttl: string }): Promise<unknown>
  inc(key: string): Promise<number>
  clear(): Promise<boolean>
  close(): Promise<void>
}

const [other, ...asked] = process.argv.slice(2)
if (other === undefined) {
  console.error('usage: node --import tsx bench/against.ts <other checkout> [memory|sqlite|redis ...]')
  process.exit(2)
}
const backends = asked.length > 0 ? asked : ['memory', 'sqlite', 'redis']
const builds: Record<'this' | 'other', Build> = {
  this: (await import(pathToFileURL(resolve('src/index.ts')).href)) as Build,
  other: (await import(pathToFileURL(resolve(other, 'src/index.ts')).href)) as Build,
}
const OPS = ['get', 'set', 'getOrSet', 'inc'] as const
const value = { id: 1, name: 'a user', roles: ['reader', 'writer'], visits: 42 }
const folder = mkdtempSync(join(tmpdir(), 'cachekit-against-'))

function configFor(backend: string, who: string): Record<string, unknown> {
  if (backend === 'memory') return { type: 'memory' }
  if (backend === 'sqlite') return { type: 'sqlite', path: join(folder, `${who}.sqlite`) }
  if (backend === 'redis') return { type: 'redis', url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix: `bench-against:${process.pid}:${who}:` }
  throw new Error(`unknown backend ${backend}: memory, sqlite or redis`)
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
const shown = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${Math.round(n / 1e3)}k`)

for (const backend of backends) {
  const inflight = backend === 'redis' ? 64 : 1
  const caches = { this: builds.this.createCache(configFor(backend, 'this')), other: builds.other.createCache(configFor(backend, 'other')) }
  for (const c of Object.values(caches)) {
    await c.ready()
    await c.set('k', value, '1h')
  }
  const figures = new Map<string, number[]>()
  for (let round = 0; round < 5; round++) {
    const bench = new Bench({ time: 300 })
    const order = round % 2 === 0 ? (['this', 'other'] as const) : (['other', 'this'] as const)
    for (const op of OPS) {
      for (const who of order) {
        const c = caches[who]
        const one = op === 'get' ? () => c.get('k') : op === 'set' ? () => c.set('k', value, '1h') : op === 'getOrSet' ? () => c.getOrSet('k', () => value, { ttl: '1h' }) : () => c.inc('n')
        bench.add(`${op} ${who}`, inflight === 1 ? one : () => Promise.all(Array.from({ length: inflight }, one)))
      }
    }
    await bench.run()
    for (const task of bench.tasks) {
      const hz = task.result?.throughput?.mean ?? 0
      figures.set(task.name, [...(figures.get(task.name) ?? []), hz * inflight])
    }
  }
  console.log(`\n${backend}${inflight > 1 ? `, ${inflight} in flight` : ''}: ops/s (median of 5 rounds)`)
  console.log(`  ${'op'.padEnd(10)}${'this'.padStart(10)}${'other'.padStart(10)}   this / other`)
  for (const op of OPS) {
    const mine = median(figures.get(`${op} this`) ?? [])
    const theirs = median(figures.get(`${op} other`) ?? [])
    console.log(`  ${op.padEnd(10)}${shown(mine).padStart(10)}${shown(theirs).padStart(10)}   ${(mine / theirs).toFixed(2)}x`)
  }
  for (const c of Object.values(caches)) {
    await c.clear()
    await c.close()
  }
}
rmSync(folder, { recursive: true, force: true })
