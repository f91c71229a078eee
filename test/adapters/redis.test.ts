import { redisAdapter } from '../../adapters/redis/index.js'
import { createCache } from '../../src/singleton.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { uniquePrefix } from '../support/prefix.js'
import { guardSharedRedis, REDIS_URL, redisOrSkip } from '../support/redis.js'
import { skippedHere } from '../support/servers.js'
import { ROOM } from '../support/processes.js'

// Each run under its own prefix, so that runs (and other users of the server) never collide.
const runPrefix = uniquePrefix('redis-conformance')

if (await redisOrSkip('the redis conformance suite')) {
  guardSharedRedis('redis-conformance')
  runAdapterConformance({
    name: `redis (${REDIS_URL})`,
    create: (context) => redisAdapter({ url: REDIS_URL, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    processConfig: { type: 'redis', url: REDIS_URL, keyPrefix: runPrefix, ...ROOM },
    cleanup: async () => {
      const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: runPrefix })
      await cache.clear()
      await cache.close()
    },
  })
} else {
  skippedHere('the redis conformance suite')
}
