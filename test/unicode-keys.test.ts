/** Keys, namespaces and key prefixes must be well-formed Unicode: what the refusal says, and what it lets through. */
import { describe, expect, it } from 'vitest'
import { CacheArgumentError, CacheConfigError, createCache } from '../src/index.js'

describe('lone surrogates', () => {
  it('a key with one is refused with a message that names it, says where, and says what to do', async () => {
    const c = createCache({ type: 'memory' })
    const error = await c.set('user:\uD800x', 1).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CacheArgumentError)
    expect((error as CacheArgumentError).key).toBe('user:\uD800x')
    const message = (error as Error).message
    expect(message).toContain('The key "user:\\ud800x" contains a lone surrogate (U+D800 at index 5)')
    expect(message).toMatch(/Redis and SQLite would store it as U\+FFFD/)
    expect(message).toMatch(/toWellFormed\(\).*base64url/)
    // The message itself is well-formed, so it can be logged as UTF-8.
    expect((message as string & { isWellFormed(): boolean }).isWellFormed()).toBe(true)
    await c.close()
  })

  it('finds a lone surrogate beyond what the message quotes of a long key, and a low half before a pair', async () => {
    const c = createCache({ type: 'memory' })
    await expect(c.get(`${'k'.repeat(100)}\uDC00`)).rejects.toThrow(/U\+DC00 at index 100/)
    await expect(c.get('😀\uDE00')).rejects.toThrow(/U\+DE00 at index 2/)
    await expect(c.get('\uD83D😀')).rejects.toThrow(/U\+D83D at index 0/)
    await c.close()
  })

  it('surrogate pairs are not lone: emoji keys and namespaces work', async () => {
    const c = createCache({ type: 'memory' })
    await c.namespace('🦄:').set('😀', 1)
    expect(await c.get('🦄:😀')).toBe(1)
    await c.close()
  })

  it('a namespace prefix with one is a CacheArgumentError', () => {
    const c = createCache({ type: 'memory' })
    expect(() => c.namespace('tenant\uDBFF:')).toThrow(CacheArgumentError)
    expect(() => c.namespace('tenant\uDBFF:')).toThrow(/The namespace prefix "tenant\\udbff:" contains a lone surrogate \(U\+DBFF at index 6\)/)
  })

  it('a keyPrefix with one is a CacheConfigError naming the option', () => {
    let error: unknown
    try {
      createCache({ type: 'memory', keyPrefix: 'app\uD800:' })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as CacheConfigError).option).toBe('keyPrefix')
    expect((error as Error).message).toMatch(/Option `keyPrefix` \("app\\ud800:"\) contains a lone surrogate \(U\+D800 at index 3\).*toWellFormed/)
    expect(() => createCache({ type: 'memory', keyPrefix: 'app😀:' })).not.toThrow()
  })
})
