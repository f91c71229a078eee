/**
 * The conformance suite on the shared Redis, under a prefix of the run's own (so that runs, and other users of
 * the server, never collide), with or without the memory tier: test/adapters/redis.test.ts and redis-l1.test.ts.
 */
import { redisAdapter } from '../../adapters/redis/index.js'
import type { L1Option } from '../../src/tier/options.js'
import { createCache } from '../../src/singleton.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { uniquePrefix } from './prefix.js'
import { ROOM } from './processes.js'
import { guardSharedRedis, REDIS_URL, redisOrSkip } from './redis.js'
import { skippedHere } from './servers.js'

export async function runRedisConformance(what: string, name: string, l1?: L1Option): Promise<void> {
  if (!(await redisOrSkip(what))) {
    skippedHere(what)
    return
  }
  const runPrefix = uniquePrefix(name)
  guardSharedRedis(name)
  const tier = l1 === undefined ? {} : { l1 }
  runAdapterConformance({
    name: `redis${l1 === undefined ? '' : ' with l1'} (${REDIS_URL})`,
    create: (context) => redisAdapter({ url: REDIS_URL, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    ...(l1 === undefined ? {} : { cacheOptions: tier }),
    processConfig: { type: 'redis', url: REDIS_URL, keyPrefix: runPrefix, ...tier, ...ROOM },
    cleanup: async () => {
      const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: runPrefix })
      await cache.clear()
      await cache.close()
    },
  })
}
