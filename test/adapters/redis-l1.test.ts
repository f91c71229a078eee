import { redisAdapter } from '../../adapters/redis/index.js'
import { createCache } from '../../src/singleton.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { uniquePrefix } from '../support/prefix.js'
import { guardSharedRedis, REDIS_URL, redisOrSkip } from '../support/redis.js'
import { skippedHere } from '../support/servers.js'
import { ROOM } from '../support/processes.js'

// The whole suite, its 8-process inc/add/stampede proofs included, through the memory tier.
const runPrefix = uniquePrefix('redis-l1-conformance')

if (await redisOrSkip('the redis conformance suite with l1')) {
  guardSharedRedis('redis-l1-conformance')
  runAdapterConformance({
    name: `redis with l1 (${REDIS_URL})`,
    create: (context) => redisAdapter({ url: REDIS_URL, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    cacheOptions: { l1: true },
    processConfig: { type: 'redis', url: REDIS_URL, keyPrefix: runPrefix, l1: true, ...ROOM },
    cleanup: async () => {
      const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: runPrefix })
      await cache.clear()
      await cache.close()
    },
  })
} else {
  skippedHere('the redis conformance suite with l1')
}
