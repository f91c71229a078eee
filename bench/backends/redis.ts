import KeyvRedis from '@keyv/redis'
import { createClient } from '@redis/client'
import { randomUUID } from 'node:crypto'
import type { BenchBackend, Contestant } from '../harness.js'
import { bentoL1, cachekit, keyvPeers, TTL_MS } from '../peers.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** @redis/client: GET/SET PX with JSON values, INCR. Its own prefix, removed at the end. */
async function raw(prefix: string): Promise<Contestant> {
  const client = createClient({ url: REDIS_URL })
  client.on('error', () => {})
  await client.connect()
  const get = async (k: string) => {
    const text = await client.get(prefix + k)
    return text === null ? undefined : (JSON.parse(text) as unknown)
  }
  const set = (k: string, v: unknown) => client.set(prefix + k, JSON.stringify(v), { expiration: { type: 'PX', value: TTL_MS } })
  return {
    name: 'raw @redis/client',
    role: 'raw',
    get,
    set,
    async getOrSet(k, f) {
      const hit = await get(k)
      if (hit !== undefined) return hit
      const v = await f()
      await set(k, v)
      return v
    },
    inc: (k) => client.incr(prefix + k),
    close: () => client.close(),
  }
}

/** Remove every key the run wrote (all under one random prefix), with SCAN, never KEYS or FLUSHDB. */
async function cleanup(prefix: string): Promise<void> {
  const client = createClient({ url: REDIS_URL })
  client.on('error', () => {})
  await client.connect()
  const doomed: string[] = []
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) doomed.push(...keys)
  for (let i = 0; i < doomed.length; i += 500) await client.unlink(doomed.slice(i, i + 500))
  await client.close()
}

const run = `cachekit-bench:${randomUUID().slice(0, 8)}:`

export const redis: BenchBackend = {
  name: 'redis',
  inflight: [1, 64],
  batch: 1,
  async open() {
    return [
      ...(await cachekit('redis', { type: 'redis', url: REDIS_URL, keyPrefix: `${run}cachekit:` })),
      ...(await cachekit('redis', { type: 'redis', url: REDIS_URL, keyPrefix: `${run}cachekit-l1:`, l1: true }, 'cachekit + l1')),
      bentoL1(),
      await raw(`${run}raw:`),
      ...keyvPeers('@keyv/redis', (name) => new KeyvRedis(REDIS_URL, { namespace: `${run}${name}` }) as never),
    ]
  },
  cleanup: () => cleanup(run),
  notes: [`redis: the machine's server at ${REDIS_URL} over loopback; each contestant under its own prefix. bentocache's Redis driver needs ioredis (not installed).`],
}
