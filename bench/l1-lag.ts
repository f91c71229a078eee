/**
 * How late another process sees a write through the memory tier (`l1`): a writer (this process) sets a key
 * to 1, 2, ... every few ms; a reader (a child process) reads it in a loop through its own tier and notes
 * when it first reads each version. The lag of a version is from its write resolving to its first read,
 * on one machine's clock (`performance.timeOrigin + performance.now()` in both processes).
 * Run: node --import tsx bench/l1-lag.ts [--backend sqlite,redis] [--writes 300]
 */
import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createCache, type CacheConfig } from '../src/index.js'

const clock = () => performance.timeOrigin + performance.now()

if (process.env.CACHEKIT_LAG_READER !== undefined) {
  // The reader: report each new version it reads, until told to stop.
  const { config, key } = JSON.parse(process.env.CACHEKIT_LAG_READER) as { config: CacheConfig; key: string }
  const cache = createCache(config)
  await cache.ready()
  await cache.get(key)
  let stop = false
  process.on('message', (m) => {
    if (m === 'stop') stop = true
  })
  process.send?.({ ready: true })
  let last = 0
  let reads = 0
  while (!stop) {
    const v = (await cache.get<number>(key)) ?? 0
    if (v !== last) {
      last = v
      process.send?.({ v, at: clock() })
    }
    // A server's event loop does other work between reads: give timers and sockets their turn.
    if (++reads % 32 === 0) await new Promise((r) => setImmediate(r))
  }
  await cache.close()
  process.exit(0)
}

const { values } = parseArgs({ options: { backend: { type: 'string' }, writes: { type: 'string' } } })
const backends = (values.backend ?? 'sqlite,redis').split(',')
const WRITES = Number(values.writes ?? 300)
const dir = mkdtempSync(join(tmpdir(), 'cachekit-bench-lag-'))

function configFor(name: string): CacheConfig {
  const keyPrefix = `ck-bench-lag:${process.pid}:`
  if (name === 'sqlite') return { type: 'sqlite', path: join(dir, 'lag.sqlite'), keyPrefix, l1: true }
  if (name === 'redis') return { type: 'redis', url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix, l1: true }
  throw new Error(`bench/l1-lag.ts: no backend ${name} (sqlite, redis)`)
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN

console.log(`Cross-process invalidation lag through l1 (bench/l1-lag.ts): ${WRITES} writes, one reader process`)
for (const name of backends) {
  const config = configFor(name)
  const key = 'lag'
  const writer = createCache(config)
  await writer.ready()
  await writer.set(key, 0, 0)
  const reader = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], env: { ...process.env, CACHEKIT_LAG_READER: JSON.stringify({ config, key }) } })
  const seen = new Map<number, number>()
  await new Promise<void>((resolve) => {
    reader.on('message', (m: { ready?: boolean; v?: number; at?: number }) => {
      if (m.ready === true) resolve()
      else if (m.v !== undefined && m.at !== undefined && !seen.has(m.v)) seen.set(m.v, m.at)
    })
  })
  const written = new Map<number, number>()
  for (let v = 1; v <= WRITES; v++) {
    await writer.set(key, v, 0)
    written.set(v, clock())
    // Far enough apart that each version can be seen on its own (the SQLite bound is 25 ms).
    await new Promise((r) => setTimeout(r, 40 + Math.random() * 10))
  }
  await new Promise((r) => setTimeout(r, 200))
  reader.send('stop')
  await new Promise((r) => reader.once('exit', r))
  const lags = [...written].filter(([v]) => seen.has(v)).map(([v, at]) => Math.max(0, (seen.get(v) as number) - at)).sort((a, b) => a - b)
  const missed = WRITES - lags.length
  console.log(
    `  ${name.padEnd(7)} p50 ${pct(lags, 50).toFixed(2)} ms  p99 ${pct(lags, 99).toFixed(2)} ms  max ${(lags[lags.length - 1] ?? NaN).toFixed(2)} ms` +
      `  (${lags.length} versions seen${missed > 0 ? `, ${missed} never read` : ''}; default staleness ${name === 'sqlite' ? '25 ms, read on a timer' : 'none: pushed by the server'})`,
  )
  await writer.clear()
  await writer.close()
}
rmSync(dir, { recursive: true, force: true })
