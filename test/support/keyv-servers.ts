import { connect } from 'node:net'
import { it } from 'vitest'

/** The machine's servers the Keyv tests use (trust auth on PostgreSQL, database `test`). */
export const POSTGRES_URI = process.env.POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: port === '' ? defaultPort : Number(port) })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2_000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * Whether a server the tests need is up. Outside CI a missing server skips its tests with one loud line;
 * under CI=true it registers a failing test instead, so a missing server can never pass unnoticed.
 */
export async function serverAvailable(name: 'PostgreSQL' | 'Redis'): Promise<boolean> {
  const url = name === 'PostgreSQL' ? POSTGRES_URI : REDIS_URL
  if (await reachable(url, name === 'PostgreSQL' ? 5432 : 6379)) return true
  const how = name === 'PostgreSQL' ? 'start PostgreSQL on 127.0.0.1:5432 with a database `test` (trust auth)' : 'start redis-server on 127.0.0.1:6379'
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
    it(`${name} is reachable at ${url}`, () => {
      throw new Error(`${name} is not reachable at ${url}, and CI is set: ${how} (.ci/run does).`)
    })
  } else {
    console.warn(`\n!!! SKIPPING the ${name} Keyv tests: nothing answers at ${url}. To run them, ${how}. Under CI=true this is a failure.\n`)
  }
  return false
}
