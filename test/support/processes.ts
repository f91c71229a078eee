/**
 * What the multi-process tests of a server backend give their children: room on a loaded machine. Those
 * tests prove exactness (8 processes x 250 concurrent `inc` give 1..2000, each once), not latency; with 8
 * children, two test files and a second suite on 2 cores, a child can be starved of CPU for longer than a
 * backend's default `commandTimeout` (1 s for Redis and memcached), and its command then fails, correctly,
 * on time; so can its first connection (a PostgreSQL child once gave up connecting at a load of 30). The
 * timeouts themselves are proven by the tests that stop or freeze a server.
 */
export const CHILD_ROOM = { commandTimeout: '30s', connectTimeout: '30s' } as const
