/**
 * A quick comparison on one disk: cachekit's sqlite backend (through the public Cache, and the bare adapter)
 * against a hand-written better-sqlite3 prepared statement and against keyv + @keyv/sqlite.
 * Run: node --import tsx bench/sqlite-compare.ts [folder]   (default: a temporary folder)
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import KeyvSqlite from '@keyv/sqlite'
import Database from 'better-sqlite3'
import Keyv from 'keyv'
import { Bench } from 'tinybench'
import { sqliteAdapter } from '../adapters/sqlite/index.js'
import { createCache } from '../src/index.js'

const dir = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'cachekit-bench-'))
const KEYS = 1_000
const value = { id: 42, name: 'Ann Example', roles: ['admin', 'editor'], active: true, score: 97.5 }
const text = JSON.stringify(value)
let i = 0
const nextKey = () => `user:${i++ % KEYS}`

const cache = createCache({ type: 'sqlite', path: join(dir, 'cachekit.sqlite') })
await cache.ready()
const adapter = sqliteAdapter({ path: join(dir, 'adapter.sqlite') }, { now: Date.now, threshold: 10_000, emit: () => {} })
await adapter.ready?.()

const raw = new Database(join(dir, 'raw.sqlite'))
raw.pragma('journal_mode = WAL')
raw.pragma('synchronous = NORMAL')
raw.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)')
const rawGet = raw.prepare('SELECT value FROM kv WHERE key = ?').pluck()
const rawSet = raw.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)')

const keyv = new Keyv({ store: new KeyvSqlite(`sqlite://${join(dir, 'keyv.sqlite')}`) })

for (let k = 0; k < KEYS; k++) {
  await cache.set(`user:${k}`, value, '1h')
  adapter.set(`user:${k}`, text, Date.now() + 3_600_000)
  rawSet.run(`user:${k}`, text)
  await keyv.set(`user:${k}`, value, 3_600_000)
}

const bench = new Bench({ time: Number(process.env.BENCH_MS ?? 1_000), warmup: true })
bench
  .add('cachekit get', async () => void (await cache.get(nextKey())))
  .add('adapter get', () => void adapter.get(nextKey()))
  .add('raw get', () => void JSON.parse(rawGet.get(nextKey()) as string))
  .add('keyv get', async () => void (await keyv.get(nextKey())))
  .add('cachekit set', async () => void (await cache.set(nextKey(), value, '1h')))
  .add('adapter set', () => void adapter.set(nextKey(), text, Date.now() + 3_600_000))
  .add('raw set', () => void rawSet.run(nextKey(), JSON.stringify(value)))
  .add('keyv set', async () => void (await keyv.set(nextKey(), value, 3_600_000)))
await bench.run()

const ns = (name: string) => {
  const task = bench.tasks.find((t) => t.name === name)
  // The median: on a shared machine the mean is dominated by whoever else is running.
  const r = task?.result as { latency?: { p50?: number } } | undefined
  return (r?.latency?.p50 ?? NaN) * 1e6
}
for (const op of ['get', 'set']) {
  const [c, a, r, k] = ['cachekit', 'adapter', 'raw', 'keyv'].map((who) => ns(`${who} ${op}`)) as [number, number, number, number]
  console.log(
    `${op} (median): cachekit ${(c / 1000).toFixed(2)} µs, adapter ${(a / 1000).toFixed(2)} µs, raw ${(r / 1000).toFixed(2)} µs, keyv ${(k / 1000).toFixed(1)} µs` +
      ` | cachekit/raw ${(c / r).toFixed(2)}x, keyv/cachekit ${(k / c).toFixed(1)}x`,
  )
}
await cache.close()
await adapter.close()
raw.close()
await keyv.disconnect()
rmSync(dir, { recursive: true, force: true })
