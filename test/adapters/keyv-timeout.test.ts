/**
 * The keyv bridge never waits longer than `commandTimeout` for a store, proven on a real store that stops
 * answering: @keyv/redis on a redis-server of the test's own, frozen with SIGSTOP (its socket stays open, so
 * nothing fails fast: only the timeout can end a call).
 */
import KeyvRedis from '@keyv/redis'
import { afterEach, describe, expect, it } from 'vitest'
import { CacheBackendError, CacheConfigError, createCache, type Cache, type CacheError } from '../../src/index.js'
import { freePort, RedisServer, redisServerOrSkip } from '../support/redis.js'

const TIMEOUT = 300
/** Generous: the machine is shared; what matters is that a call ends near its timeout, not never. */
const MARGIN = 2_000

const opened: Cache[] = []
afterEach(async () => {
  for (const c of opened.splice(0)) if (c.initialized) await c.close()
})

/** How long `promise` took to settle, and its value or error. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now()
  try {
    const value = await promise
    return { ms: performance.now() - start, value }
  } catch (error) {
    return { ms: performance.now() - start, error }
  }
}

describe('keyv bridge: timeout options', () => {
  it('refuses a zero or malformed commandTimeout / connectTimeout, naming the option', async () => {
    for (const [name, value] of [['commandTimeout', 0], ['connectTimeout', 0], ['commandTimeout', 'soon']] as const) {
      let error: unknown
      try {
        // A malformed duration fails at createCache; zero when the backend is built (ready()).
        const c = createCache({ type: 'keyv', store: new Map(), [name]: value })
        opened.push(c)
        await c.ready()
      } catch (e) {
        error = e
      }
      expect(error, `${name}: ${value}`).toBeInstanceOf(CacheConfigError)
      expect((error as CacheConfigError).option).toBe(name)
    }
  })
})

const canRun = await redisServerOrSkip('the keyv timeout tests', 'test/adapters/keyv-timeout.test.ts')

describe.runIf(canRun)('keyv bridge: commandTimeout on a store that stops answering (@keyv/redis, redis-server frozen with SIGSTOP)', () => {
  it('get misses with an error, set is false, inc throws, each within the timeout; all works again once the store answers', async () => {
    const server = await new RedisServer(await freePort()).start()
    const pid = server.process?.pid as number
    try {
      const c = createCache({ type: 'keyv', store: new KeyvRedis(server.url), keyPrefix: 't:', commandTimeout: TIMEOUT })
      opened.push(c)
      const errors: { error: CacheError; op: string; key?: string }[] = []
      c.on('error', (error, info) => errors.push({ error, ...info }))
      await c.ready()
      expect(await c.set('k', 'before')).toBe(true)
      expect(await c.inc('n')).toBe(1)

      process.kill(pid, 'SIGSTOP')
      try {
        const get = await timed(c.get('k'))
        expect(get.value).toBeUndefined()
        expect(get.ms).toBeGreaterThanOrEqual(TIMEOUT - 5)
        expect(get.ms).toBeLessThan(TIMEOUT + MARGIN)
        expect(errors).toHaveLength(1)
        expect(errors[0]?.op).toBe('get')
        expect(errors[0]?.error).toBeInstanceOf(CacheBackendError)
        expect(errors[0]?.error.key).toBe('t:k')
        expect(errors[0]?.error.message).toMatch(/did not answer get of key "t:k" within 300 ms \(commandTimeout\)/)

        // The first set reaches the frozen server and times out; the second is held back (its key has a
        // write the store has not answered) and times out without being sent.
        const set = await timed(c.set('k', 'late'))
        expect(set.value).toBe(false)
        expect(set.ms).toBeLessThan(TIMEOUT + MARGIN)
        const heldBack = await timed(c.set('k', 'never sent'))
        expect(heldBack.value).toBe(false)
        expect(heldBack.ms).toBeLessThan(TIMEOUT + MARGIN)
        expect(errors.map((e) => e.error.message)).toEqual([
          expect.stringMatching(/get of key "t:k"/),
          expect.stringMatching(/set of key "t:k" within 300 ms/),
          expect.stringMatching(/set of key "t:k" within 300 ms/),
        ])

        const inc = await timed(c.inc('n'))
        expect(inc.error).toBeInstanceOf(CacheBackendError)
        expect((inc.error as Error).message).toMatch(/did not answer increment of key "t:n" within 300 ms \(commandTimeout\)/)
        expect(inc.ms).toBeLessThan(TIMEOUT + MARGIN)

        // Operations queued on one key do not wait for each other's timeouts in turn: all end within one.
        const queued = await timed(Promise.allSettled(Array.from({ length: 20 }, () => c.inc('n'))))
        expect((queued.value ?? []).map((r) => r.status)).toEqual(Array(20).fill('rejected'))
        expect(queued.ms).toBeLessThan(TIMEOUT + MARGIN)
      } finally {
        process.kill(pid, 'SIGCONT')
      }

      // The store answers again: the late write landed, the held-back one was never sent, and the timed-out
      // increments, whose reads answered late, wrote nothing.
      expect(await c.get('k')).toBe('late')
      expect(await c.inc('n')).toBe(2)
      expect(await c.set('k', 'after')).toBe(true)
      expect(await c.get('k')).toBe('after')
      expect(await c.add('lock', 1)).toBe(true)
      expect(await c.delete('k')).toBe(true)
      const listed: string[] = []
      for await (const key of c.keys()) listed.push(key)
      expect(listed.sort()).toEqual(['lock', 'n'])
    } finally {
      process.kill(pid, 'SIGCONT')
      await server.stop()
    }
  })

  it('clear() and keys() time out on a frozen store, and close() does not hang on it', async () => {
    const server = await new RedisServer(await freePort()).start()
    const pid = server.process?.pid as number
    try {
      const store = new KeyvRedis(server.url)
      const c = createCache({ type: 'keyv', store, keyPrefix: 'c:', commandTimeout: TIMEOUT, failOpen: false })
      await c.ready()
      await c.setMany([['a', 1], ['b', 2]])
      process.kill(pid, 'SIGSTOP')
      const clear = await timed(c.clear())
      expect(clear.error).toBeInstanceOf(CacheBackendError)
      expect((clear.error as Error).message).toMatch(/did not answer clear within 300 ms/)
      expect(clear.ms).toBeLessThan(TIMEOUT + MARGIN)
      const many = await timed(c.getMany(['a', 'b']))
      expect((many.error as Error).message).toMatch(/did not answer getMany of 2 keys \(the first "c:a"\) within 300 ms/)
      const close = await timed(c.close())
      expect(close.error).toBeUndefined()
      expect(close.ms).toBeLessThan(TIMEOUT + MARGIN)
      expect(store.client.isOpen).toBe(false)
    } finally {
      process.kill(pid, 'SIGCONT')
      await server.stop()
    }
  })

  it('connectTimeout bounds ready() on a frozen store', async () => {
    const server = await new RedisServer(await freePort()).start()
    const pid = server.process?.pid as number
    try {
      process.kill(pid, 'SIGSTOP')
      const c = createCache({ type: 'keyv', store: new KeyvRedis(server.url), connectTimeout: TIMEOUT, commandTimeout: TIMEOUT })
      opened.push(c)
      c.on('error', () => {})
      const ready = await timed(c.ready())
      expect(ready.error).toBeInstanceOf(CacheBackendError)
      expect((ready.error as Error).message).toMatch(/no answer within 300 ms \(connectTimeout\)/)
      expect(ready.ms).toBeLessThan(2 * TIMEOUT + MARGIN)
      process.kill(pid, 'SIGCONT')
      // The store stayed open and works once the server answers.
      expect(await c.set('k', 1)).toBe(true)
      expect(await c.get('k')).toBe(1)
    } finally {
      process.kill(pid, 'SIGCONT')
      await server.stop()
    }
  })
})
