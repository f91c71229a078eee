import { expect, it } from 'vitest'
import type { Harness } from './harness.js'

export function isolationTests(h: () => Harness): void {
  it('two caches with different prefixes on one backend do not see each other', async () => {
    const hh = h()
    const a = await hh.cache()
    const b = await hh.cache()
    await a.set('shared-name', 'A')
    await b.set('shared-name', 'B')
    expect(await a.get('shared-name')).toBe('A')
    expect(await b.get('shared-name')).toBe('B')
    expect(await a.inc('n')).toBe(1)
    expect(await b.inc('n')).toBe(1)
  })

  it('clear() on one cache leaves the keys of another prefix', async () => {
    const hh = h()
    const a = await hh.cache()
    const b = await hh.cache()
    await a.setMany([['x', 1], ['y', 2]])
    await b.setMany([['x', 10], ['y', 20]])
    await a.clear()
    expect(await a.getMany(['x', 'y'])).toEqual([undefined, undefined])
    expect(await b.getMany(['x', 'y'])).toEqual([10, 20])
  })

  it('a namespace clears only its own keys', async () => {
    const c = await h().cache()
    const users = c.namespace('users:')
    await c.set('top', 1)
    await users.set('1', 'ann')
    expect(await c.get('users:1')).toBe('ann')
    await users.clear()
    expect(await users.get('1')).toBeUndefined()
    expect(await c.get('top')).toBe(1)
  })

  it('a prefix that is a prefix of another is not confused with it on clear', async () => {
    const c = await h().cache()
    await c.namespace('a:').set('k', 1)
    await c.namespace('ab:').set('k', 2)
    await c.namespace('a:').clear()
    expect(await c.namespace('ab:').get('k')).toBe(2)
  })
}
