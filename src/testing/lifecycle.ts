import { expect, it } from 'vitest'
import { CacheClosedError, CacheError } from '../errors.js'
import type { Harness } from './harness.js'

export function lifecycleTests(h: () => Harness): void {
  it('close() twice is fine, and a call after close() says the cache is closed', async () => {
    const c = await h().cache()
    await c.set('k', 1)
    await c.close()
    await c.close()
    const error = await c.get('k').then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CacheError)
    expect(error).toBeInstanceOf(CacheClosedError)
    expect(String((error as Error).message)).toMatch(/closed/)
    await expect(c.set('k', 2)).rejects.toBeInstanceOf(CacheClosedError)
  })
}
