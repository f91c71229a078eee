/**
 * The redis adapter through Redis Sentinel (a master and one sentinel started by this file): the whole
 * conformance suite, reaching the master by asking the sentinel.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { CacheBackendError } from '../src/errors.js'
import { redisAdapter } from '../adapters/redis/index.js'
import { createCache } from '../src/singleton.js'
import { runAdapterConformance } from '../src/testing/index.js'
import { redisServerOrSkip, startSentinel } from './support/redis.js'
import { ROOM } from './support/processes.js'

const canRun = await redisServerOrSkip('the Redis Sentinel tests', 'test/redis-sentinel.test.ts')

const setup = canRun ? await startSentinel() : undefined
const runPrefix = `ck-sentinel:${randomBytes(4).toString('hex')}:`

if (setup !== undefined) {
  const options = { sentinel: { name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: setup.sentinelPort }] } }
  afterAll(() => setup.stop())

  runAdapterConformance({
    name: 'redis sentinel',
    create: (context) => redisAdapter({ ...options, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    processConfig: { type: 'redis', ...options, keyPrefix: runPrefix, ...ROOM },
  })

  it('writes through the sentinel land on the master it names', async () => {
    const cache = createCache({ type: 'redis', ...options, keyPrefix: 'via-sentinel:' })
    await cache.set('k', 41)
    expect(setup.master.cli('GET', 'via-sentinel:k')).toBe('41')
    expect(await cache.inc('k')).toBe(42)
    await cache.clear()
    await cache.close()
  })
}

describe.runIf(canRun)('redis sentinel: fail-over', () => {
  it('when the master dies, the sentinel promotes the replica and the cache follows it without a restart', async () => {
    const s = await startSentinel(true)
    try {
      const cache = createCache({
        type: 'redis',
        keyPrefix: 'failover:',
        commandTimeout: 500,
        sentinel: { name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: s.sentinelPort }] },
      })
      cache.on('error', () => {})
      await cache.set('k', 'before', 0)
      await s.master.kill()
      expect(await cache.get('k')).toBeUndefined()
      await expect(cache.inc('n')).rejects.toBeInstanceOf(CacheBackendError)
      const end = Date.now() + 30_000
      while (Date.now() < end && !(await cache.set('k2', 'after', 0))) await new Promise((r) => setTimeout(r, 100))
      expect(await cache.get('k2')).toBe('after')
      expect(s.replica!.cli('GET', 'failover:k2')).toBe('"after"')
      await cache.clear()
      await cache.close()
    } finally {
      await s.stop()
    }
  }, 45_000)
})
