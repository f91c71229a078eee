/**
 * The one policy for tests that need something this machine may lack: a server answering at a URL (Redis,
 * PostgreSQL, MySQL/MariaDB), a program the tests start (redis-server, memcached) or a package installed
 * apart (the benchmark's). When it is there, the tests run. When it is not, outside CI they are skipped
 * after one loud line on stderr that names what is skipped, why, and how to run it; under CI=true that
 * is a failure, never a skip (.ci/run starts Redis, PostgreSQL and MariaDB and installs the rest).
 *
 * redisOrSkip (redis.ts), postgresOrSkip and mysqlOrSkip (sql.ts), memcachedOrSkip (memcached.ts),
 * redisServerOrSkip (redis.ts) and benchPeer (bench-peers.ts) are this policy with their probe. A file
 * whose tests all need the missing thing calls skippedHere, so that it is reported as skipped, not empty.
 */
import { it } from 'vitest'

/** True under CI: `CI` is set to anything but `''` or `'false'`. */
export const inCI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

/** The `what` of every skip printed so far: a file that asks again (once per test) prints one line. */
const warned = new Set<string>()

/**
 * Whether the tests `what` can run here: resolves true when `probe` finds `name`. When it does not: under
 * CI, throws; outside CI, prints one loud line on stderr (once per `what`) and resolves false, and the
 * caller skips those tests.
 *
 * @param what the tests that need it, as the line names them: `'the redis conformance suite'`.
 * @param name what they need, as a noun: `'Redis at redis://127.0.0.1:6379'`.
 * @param probe true when `name` is there; false (read as "no <name>") or a sentence saying what is missing.
 * @param fix how to get it and run the tests again: `'start one (redis-server), then run: npx vitest run test/redis.test.ts'`.
 * @throws {Error} under CI=true, when `name` is not there.
 *
 * @example if (await serverOrSkip('the postgres tests', `PostgreSQL at ${url}`, () => answers(url), 'start one')) { ... }
 */
export async function serverOrSkip(what: string, name: string, probe: () => boolean | string | Promise<boolean | string>, fix: string): Promise<boolean> {
  const found = await probe()
  if (found === true) return true
  const why = typeof found === 'string' ? found : `no ${name}`
  if (inCI) throw new Error(`${what} cannot run: ${why}, and CI=true requires ${name} (.ci/run provides it). To run them, ${fix}.`)
  if (!warned.has(what)) {
    warned.add(what)
    console.warn(`\n!!! SKIPPED ${what}: ${why}. To run them, ${fix}. Under CI=true this is a failure.\n`)
  }
  return false
}

/**
 * After a skip, at a test file's top level: one visible skipped test for `what`, so that the report lists
 * what did not run, and a file whose tests all need the missing server is not an empty suite (an error).
 */
export function skippedHere(what: string): void {
  it.skip(`${what} (skipped: what it needs is not here; see the SKIPPED line)`, () => {})
}
