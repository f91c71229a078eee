/**
 * What tags cost, through the public Cache: invalidating a tag of 1 entry against a tag of many (100,000 by
 * default), and a hit on an untagged entry against one on an entry with 1 and with 3 tags.
 * Run: node --import tsx bench/tags.ts [--backend memory,sqlite,redis] [--entries 100000]
 * (`BENCH_MS` sets the time per measured task, 1,000 ms by default; redis uses REDIS_URL or 127.0.0.1:6379.)
 * Timed by hand, in batches, with no dependency of the benchmark's own package: the median batch, per call.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createCache, type Cache, type CacheConfig } from '../src/index.js'

const { values } = parseArgs({ options: { backend: { type: 'string' }, entries: { type: 'string' } } })
const backends = (values.backend ?? 'memory,sqlite').split(',')
const ENTRIES = Number(values.entries ?? 100_000)
const KEYS = 1_000
const BATCH = 1_000
const value = { id: 42, name: 'Ann Example', roles: ['admin', 'editor'], active: true, score: 97.5 }
const time = Number(process.env.BENCH_MS ?? 1_000)
const dir = mkdtempSync(join(tmpdir(), 'cachekit-bench-tags-'))

function configFor(name: string): CacheConfig {
  const keyPrefix = `ck-bench-tags:${randomBytes(4).toString('hex')}:`
  // Room for every entry the run writes, so that none is evicted.
  const threshold = ENTRIES + 4 * KEYS + 10
  if (name === 'memory') return { type: 'memory', threshold, keyPrefix }
  if (name === 'sqlite') return { type: 'sqlite', path: join(dir, 'tags.sqlite'), threshold, keyPrefix }
  if (name === 'redis') return { type: 'redis', url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix }
  throw new Error(`bench/tags.ts: no backend ${name} (memory, sqlite, redis)`)
}

/**
 * The median time of one call of `task`, in µs: batches of calls run for `time` ms (after a warm-up of a
 * tenth of it), each batch timed as a whole so that the clock's own cost does not count.
 */
async function measure(task: () => Promise<void>): Promise<number> {
  const batch = 20
  const run = async (ms: number): Promise<number[]> => {
    const perCall: number[] = []
    const end = performance.now() + ms
    while (performance.now() < end) {
      const start = performance.now()
      for (let n = 0; n < batch; n++) await task()
      perCall.push(((performance.now() - start) / batch) * 1000)
    }
    return perCall
  }
  await run(time / 10)
  const sorted = (await run(time)).sort((a, b) => a - b)
  return sorted[sorted.length >> 1] ?? NaN
}

async function fill(cache: Cache, prefix: string, count: number, tags: string[]): Promise<void> {
  for (let start = 0; start < count; start += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => [`${prefix}${start + i}`, value] as const)
    await cache.setMany(batch, { ttl: '1h', tags })
  }
}

const rows: string[] = []
for (const name of backends) {
  const cache = createCache(configFor(name))
  await cache.ready()
  const filled = performance.now()
  await fill(cache, 'small:', 1, ['small'])
  await fill(cache, 'big:', ENTRIES, ['big'])
  const fillMs = performance.now() - filled
  await fill(cache, 'plain:', KEYS, [])
  await fill(cache, 'one:', KEYS, ['t1'])
  await fill(cache, 'three:', KEYS, ['t1', 't2', 't3'])

  let i = 0
  const next = () => i++ % KEYS
  const figures = new Map<string, number>()
  // Interleaved twice, so that a noisy neighbour hits both sides of each comparison alike.
  const tasks: [string, () => Promise<void>][] = [
    ['invalidate a tag of 1 entry', async () => void (await cache.invalidateTags(['small']))],
    [`invalidate a tag of ${ENTRIES} entries`, async () => void (await cache.invalidateTags(['big']))],
    ['hit, untagged', async () => void (await cache.get(`plain:${next()}`))],
    ['hit, 1 tag', async () => void (await cache.get(`one:${next()}`))],
    ['hit, 3 tags', async () => void (await cache.get(`three:${next()}`))],
  ]
  const rounds: Record<string, number[]> = {}
  for (let round = 0; round < 2; round++) for (const [task, fn] of tasks) (rounds[task] ??= []).push(await measure(fn))
  for (const [task, xs] of Object.entries(rounds)) figures.set(task, Math.min(...xs))
  const median = (task: string) => figures.get(task) ?? NaN
  // The entries are misses after the invalidations, without having been touched.
  if ((await cache.get(`big:${ENTRIES - 1}`)) !== undefined) throw new Error('an entry of the invalidated tag was still read')
  if ((await cache.get('plain:0')) === undefined || (await cache.get('three:0')) === undefined) throw new Error('an entry of another tag was lost')

  const us = (task: string) => median(task).toFixed(1)
  const untagged = median('hit, untagged')
  rows.push(
    `| ${name} | ${us('invalidate a tag of 1 entry')} µs | ${us(`invalidate a tag of ${ENTRIES} entries`)} µs | ${us('hit, untagged')} µs | ` +
      `${us('hit, 1 tag')} µs (${(median('hit, 1 tag') / untagged).toFixed(2)}x) | ${us('hit, 3 tags')} µs (${(median('hit, 3 tags') / untagged).toFixed(2)}x) |`,
  )
  console.error(`${name}: wrote ${ENTRIES} tagged entries in ${(fillMs / 1000).toFixed(1)} s`)
  await cache.clear()
  await cache.close()
}
rmSync(dir, { recursive: true, force: true })

console.log(`| backend | invalidate, tag of 1 | invalidate, tag of ${ENTRIES} | hit, untagged | hit, 1 tag | hit, 3 tags |`)
console.log('|---|---|---|---|---|---|')
for (const row of rows) console.log(row)
