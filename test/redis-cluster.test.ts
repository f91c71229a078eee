/**
 * The redis adapter on a three-master Redis Cluster started by this file: the whole conformance suite
 * (getMany and deleteMany across slots, clear() and keys() on every master), then checks on each master.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { CacheBackendError } from '../src/errors.js'
import { redisAdapter } from '../adapters/redis/index.js'
import { createCache } from '../src/singleton.js'
import { runAdapterConformance } from '../src/testing/index.js'
import { redisServerOrSkip, startCluster, type RedisServer } from './support/redis.js'
import { skippedHere } from './support/servers.js'
import { ROOM } from './support/processes.js'

const canRun = await redisServerOrSkip('the Redis Cluster tests', 'test/redis-cluster.test.ts')

if (!canRun) skippedHere('the Redis Cluster tests')
const cluster = canRun ? await startCluster() : undefined
const runPrefix = `ck-cluster:${randomBytes(4).toString('hex')}:`

if (cluster !== undefined) {
  const options = { cluster: { rootNodes: cluster.rootNodes }, commandTimeout: 2000 }
  afterAll(() => cluster.stop())

  runAdapterConformance({
    name: 'redis cluster (3 masters)',
    create: (context) => redisAdapter({ ...options, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    processConfig: { type: 'redis', ...options, keyPrefix: runPrefix, ...ROOM },
  })

  describe('redis cluster: every master', () => {
    const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`)
    const count = (port: number, pattern: string) =>
      cluster.servers.find((s) => s.port === port)!.cli('--scan', '--pattern', pattern).split('\n').filter(Boolean).length

    it('getMany, setMany and deleteMany span every master; clear() empties the prefix on every master and nothing else', async () => {
      const cache = createCache({ type: 'redis', ...options, keyPrefix: 'spread:' })
      await cache.setMany(keys.map((k, i) => [k, i] as const))
      // Another application's keys on every master: three each (each is a redis-cli process; 30 each took
      // most of the test's 30 s on a loaded machine).
      for (const s of cluster.servers) for (let i = 0; i < 3; i++) s.cli('-c', 'SET', `other:${s.port}:${i}`, 'keep')
      for (const s of cluster.servers) expect(count(s.port, 'spread:*')).toBeGreaterThan(0)
      expect(await cache.getMany([...keys, 'missing'])).toEqual([...keys.map((_, i) => i), undefined])
      const listed: string[] = []
      for await (const k of cache.keys()) listed.push(k)
      expect(listed.sort()).toEqual([...keys].sort())
      expect(await cache.deleteMany(keys.slice(0, 10))).toBe(10)
      expect(await cache.clear()).toBe(true)
      for (const s of cluster.servers) {
        expect(count(s.port, 'spread:*')).toBe(0)
        expect(count(s.port, 'other:*')).toBeGreaterThan(0)
      }
      expect(await cache.getMany(keys)).toEqual(keys.map(() => undefined))
      await cache.close()
    }, 90_000)

    it('inc and add are atomic on a cluster too: 200 concurrent inc give 1..200', async () => {
      const cache = createCache({ type: 'redis', ...options, keyPrefix: 'atomic:' })
      const results = await Promise.all(Array.from({ length: 200 }, () => cache.inc('n')))
      expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      expect(await cache.add('once', 1)).toBe(true)
      expect(await cache.add('once', 2)).toBe(false)
      await cache.clear()
      await cache.close()
    })

    it('a master killed: its keys fail within commandTimeout, the other masters keep serving; restarted, it serves again', async () => {
      const cache = createCache({ type: 'redis', cluster: { rootNodes: cluster.rootNodes }, commandTimeout: 500, keyPrefix: 'fault:' })
      const errors: Error[] = []
      cache.on('error', (e) => errors.push(e))
      await cache.setMany(keys.map((k, i) => [k, i] as const))
      const [victim, survivor] = cluster.servers as [RedisServer, RedisServer]
      const on = (s: RedisServer) => s.cli('--scan', '--pattern', 'fault:*').split('\n').filter(Boolean).map((k) => k.slice('fault:'.length))
      const lost = on(victim)[0]!
      const kept = on(survivor)[0]!
      await victim.kill()
      const t0 = performance.now()
      expect(await cache.get(lost)).toBeUndefined()
      expect(performance.now() - t0).toBeLessThan(500 + 1500)
      expect(errors.length).toBeGreaterThan(0)
      await expect(cache.inc(lost)).rejects.toBeInstanceOf(CacheBackendError)
      expect(await cache.get(kept)).toBe(keys.indexOf(kept))
      await victim.start()
      const end = Date.now() + 15_000
      while (Date.now() < end && !(await cache.set(lost, 'back'))) await new Promise((r) => setTimeout(r, 50))
      expect(await cache.get(lost)).toBe('back')
      await cache.clear()
      await cache.close()
    }, 30_000)
  })
}
