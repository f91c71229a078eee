/**
 * The redis adapter through Redis Sentinel (a master and one sentinel started by this file): the whole
 * conformance suite, reaching the master by asking the sentinel.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, expect, it } from 'vitest'
import { redisAdapter } from '../adapters/redis/index.js'
import { createCache } from '../src/singleton.js'
import { runAdapterConformance } from '../src/testing/index.js'
import { haveRedisServer, startSentinel } from './support/redis.js'

const canRun = haveRedisServer()
if (!canRun) {
  if (process.env.CI) throw new Error('redis-server/redis-cli are missing, and CI=true requires them (.ci/run installs them).')
  console.warn('\n!!! SKIPPED the Redis Sentinel tests: redis-server and redis-cli are not installed. Install redis-server, then run: npx vitest run test/redis-sentinel.test.ts\n')
}

const setup = canRun ? await startSentinel() : undefined
const runPrefix = `ck-sentinel:${randomBytes(4).toString('hex')}:`

if (setup !== undefined) {
  const options = { sentinel: { name: 'mymaster', sentinelRootNodes: [{ host: '127.0.0.1', port: setup.sentinelPort }] } }
  afterAll(() => setup.stop())

  runAdapterConformance({
    name: 'redis sentinel',
    create: (context) => redisAdapter(options, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    processConfig: { type: 'redis', ...options, keyPrefix: runPrefix },
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
