import { runRedisConformance } from '../support/redis-conformance.js'

// The whole suite, its 8-process inc/add/stampede proofs included, through the memory tier.
await runRedisConformance('the redis conformance suite with l1', 'redis-l1-conformance', true)
