/**
 * The shared backends the demo and CLI tests run on: every one the registry has. SQLite and the filesystem
 * get a fresh temporary location per call; Redis uses REDIS_URL (default redis://127.0.0.1:6379) under a
 * random prefix, and is skipped outside CI when no server answers (in CI a missing server fails the test).
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findAdapter } from '../../src/registry.js'

export interface SharedBackend {
  name: string
  /** A URL for a fresh, empty cache, and the prefix to use with it. */
  fresh(): { url: string; prefix: string }
  /** Resolves true if the backend can be used here; false means skip (outside CI only). */
  available(): Promise<boolean>
  cleanup(): void
}

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** True if a Redis server answers PING at `url`. */
export function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (d) => done(d.toString().startsWith('+PONG') || d.toString().startsWith('-NOAUTH')))
  })
}

function tempBackend(name: string, url: (dir: string) => string): SharedBackend {
  const dirs: string[] = []
  return {
    name,
    fresh() {
      const dir = mkdtempSync(join(tmpdir(), `cachekit-${name}-`))
      dirs.push(dir)
      return { url: url(dir), prefix: '' }
    },
    available: async () => true,
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

const redis: SharedBackend = {
  name: 'redis',
  fresh: () => ({ url: REDIS_URL, prefix: `cachekit-test:${randomUUID()}:` }),
  async available() {
    if (await redisAnswers(REDIS_URL)) return true
    if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
      throw new Error(`No Redis server answers at ${REDIS_URL}, and CI is set: the Redis tests must run here.`)
    }
    console.warn(`\n*** SKIPPING the Redis cases: no server at ${REDIS_URL}. Run \`redis-server\` (or set REDIS_URL) to run them. ***\n`)
    return false
  },
  cleanup: () => {},
}

/** Every shared backend the registry knows, in a stable order. */
export function sharedBackends(): SharedBackend[] {
  const all: SharedBackend[] = [
    tempBackend('sqlite', (dir) => `sqlite:${join(dir, 'cache.sqlite')}`),
    tempBackend('filesystem', (dir) => `file:${join(dir, 'cache')}`),
    redis,
  ]
  return all.filter((b) => findAdapter(b.name) !== undefined)
}
