/**
 * cachekit's redis adapter against raw @redis/client and keyv + @keyv/redis: get, set and inc, one at a
 * time (latency) and 64 in flight (throughput), in the same run against the same server.
 *
 *   node --import tsx bench/redis-compare.ts [redis://127.0.0.1:6379]
 *
 * Each contender serializes as its users would: raw with JSON.stringify/JSON.parse, keyv with its own
 * serializer, cachekit with its codec. Rounds alternate between contenders; medians are reported.
 */
import KeyvRedis from '@keyv/redis'
import { createClient } from '@redis/client'
import Keyv from 'keyv'
import { INCREMENT } from '../adapters/redis/scripts.js'
import { createCache } from '../src/singleton.js'

const url = process.argv[2] ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const SEQUENTIAL = 4_000
const CONCURRENT = 20_000
const IN_FLIGHT = 64
const ROUNDS = 7
const TTL = 300_000
const value = { id: 42, name: 'Ada Lovelace', email: 'ada@example.com', roles: ['admin', 'editor'], active: true, score: 1234.5 }

type Op = (i: number) => Promise<unknown>
interface Contender {
  name: string
  get: Op
  set: Op
  inc?: Op
  close(): Promise<void>
}

const tag = Math.random().toString(36).slice(2, 8)
const key = (i: number) => `bench:${tag}:${i % 1000}`

async function raw(): Promise<Contender> {
  const client = createClient({ url })
  await client.connect()
  return {
    name: 'raw @redis/client',
    get: async (i) => {
      const s = await client.get(`raw:${key(i)}`)
      return s === null ? undefined : JSON.parse(s)
    },
    set: (i) => client.set(`raw:${key(i)}`, JSON.stringify(value), { expiration: { type: 'PX', value: TTL } }),
    inc: () => client.incrBy(`raw:bench:${tag}:n`, 1),
    close: async () => client.destroy(),
  }
}

/** Raw @redis/client running the script cachekit's inc runs (INCRBY that keeps or gives the TTL atomically). */
async function rawScript(): Promise<Contender> {
  const client = createClient({ url })
  await client.connect()
  await client.scriptLoad(INCREMENT.lua)
  const k = `raw:bench:${tag}:m`
  return {
    name: 'raw, same inc script',
    get: async (i) => {
      const s = await client.get(`raw:${key(i)}`)
      return s === null ? undefined : JSON.parse(s)
    },
    set: (i) => client.set(`raw:${key(i)}`, JSON.stringify(value), { expiration: { type: 'PX', value: TTL } }),
    inc: () => client.evalSha(INCREMENT.sha, { keys: [k], arguments: ['1', String(TTL)] }),
    close: async () => client.destroy(),
  }
}

async function cachekit(): Promise<Contender> {
  const cache = createCache({ type: 'redis', url, keyPrefix: 'ck:' })
  await cache.ready()
  return {
    name: 'cachekit redis',
    get: (i) => cache.get(key(i)),
    set: (i) => cache.set(key(i), value, TTL),
    inc: () => cache.inc(`bench:${tag}:n`),
    close: () => cache.close(),
  }
}

async function keyv(): Promise<Contender> {
  const store = new KeyvRedis(url)
  const kv = new Keyv({ store, namespace: 'kv' })
  kv.on('error', () => {})
  await store.getClient()
  return {
    name: 'keyv + @keyv/redis',
    get: (i) => kv.get(key(i)),
    set: (i) => kv.set(key(i), value, TTL),
    close: () => store.disconnect(),
  }
}

async function sequential(op: Op): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < SEQUENTIAL; i++) await op(i)
  return ((performance.now() - t0) * 1000) / SEQUENTIAL
}

/** Ops per second at IN_FLIGHT, and this process's CPU µs per op (steadier than wall time on a busy machine). */
async function concurrent(op: Op): Promise<[number, number]> {
  let next = 0
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < CONCURRENT) await op(next++)
  }))
  const cpu = process.cpuUsage(c0)
  return [CONCURRENT / ((performance.now() - t0) / 1000), (cpu.user + cpu.system) / CONCURRENT]
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

const contenders = [await raw(), await rawScript(), await cachekit(), await keyv()]
const results = new Map<string, { latency: number[]; throughput: number[]; cpu: number[] }>()
for (const c of contenders) {
  for (let i = 0; i < 1000; i++) await c.set(i)
  for (let i = 0; i < 2000; i++) await c.get(i)
}
for (let round = 0; round < ROUNDS; round++) {
  for (const opName of ['get', 'set', 'inc'] as const) {
    for (const c of round % 2 === 0 ? contenders : [...contenders].reverse()) {
      if (c.name === 'raw, same inc script' && opName !== 'inc') continue
      const op = c[opName]
      if (op === undefined) continue
      const id = `${opName}\t${c.name}`
      const r = results.get(id) ?? { latency: [], throughput: [], cpu: [] }
      r.latency.push(await sequential(op))
      const [throughput, cpu] = await concurrent(op)
      r.throughput.push(throughput)
      r.cpu.push(cpu)
      results.set(id, r)
    }
  }
}
for (const c of contenders) await c.close()

console.log(`redis ${url}, node ${process.version}, median of ${ROUNDS} rounds`)
console.log('op\tcontender\t\tµs/op (1 at a time)\tops/s (64 in flight)\tclient CPU µs/op\tlatency vs raw\tthroughput vs raw\tthroughput vs keyv')
for (const [id, r] of results) {
  const [op] = id.split('\t')
  const rawR = results.get(`${op}\traw @redis/client`)
  const kvR = results.get(`${op}\tkeyv + @keyv/redis`)
  const lat = median(r.latency)
  const tp = median(r.throughput)
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`)
  console.log(
    `${id.padEnd(30)}\t${lat.toFixed(1)}\t\t\t${Math.round(tp)}\t\t\t${median(r.cpu).toFixed(2)}\t\t\t${ratio(lat, rawR && median(rawR.latency))}\t\t${ratio(tp, rawR && median(rawR.throughput))}\t\t\t${ratio(tp, kvR && median(kvR.throughput))}`,
  )
}
