/**
 * What the tests of a server backend that prove exactness, not latency, give their caches: the conformance
 * suite's own adapter and its child processes (8 processes x 250 concurrent `inc` give 1..2000, each once).
 * With 8 children, two test files and a second suite on 2 cores, a cache can be starved of CPU for longer
 * than a backend's default `commandTimeout` (1 s for Redis and memcached), and its command then fails,
 * correctly, on time (200 concurrent `inc` through Sentinel once did); so can a first connection (a
 * PostgreSQL child once gave up connecting at a load of 30). The timeouts themselves are proven by the tests
 * that stop or freeze a server.
 */
export const ROOM = { commandTimeout: '30s', connectTimeout: '30s' } as const
