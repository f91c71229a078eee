import { runRedisConformance } from '../support/redis-conformance.js'

await runRedisConformance('the redis conformance suite', 'redis-conformance')
