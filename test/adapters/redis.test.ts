import { randomBytes } from 'node:crypto'
import { redisAdapter } from '../../adapters/redis/index.js'
import { createCache } from '../../src/singleton.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { REDIS_URL, redisOrSkip } from '../support/redis.js'

// Each run under its own prefix, so that runs (and other users of the server) never collide.
const runPrefix = `ck-conf:${randomBytes(6).toString('hex')}:`

if (await redisOrSkip('the redis conformance suite')) {
  runAdapterConformance({
    name: `redis (${REDIS_URL})`,
    create: (context) => redisAdapter({ url: REDIS_URL }, context),
    capabilities: { shared: true, atomic: true, realClock: true },
    processConfig: { type: 'redis', url: REDIS_URL, keyPrefix: runPrefix },
    cleanup: async () => {
      const cache = createCache({ type: 'redis', url: REDIS_URL, keyPrefix: runPrefix })
      await cache.clear()
      await cache.close()
    },
  })
}
