import { expect, it } from 'vitest'
import type { AdapterCapabilities } from '../adapter.js'
import type { Cache } from '../cache.js'
import { CacheArgumentError, CacheTypeError } from '../errors.js'
import type { Harness } from './harness.js'

/** Keys with a lone surrogate: Redis and SQLite would store each of them as U+FFFD, merging them. */
const LONE = ['user:\uD800', 'user:\uD801', 'user:\uDC00', '\uDBFF', 'a\uDC00\uD800b', 'tail\uD83D']
/** Well-formed keys that every backend must keep apart, astral ones and the neighbours of U+FFFD among them. */
const ASTRAL = ['user:😀', 'user:😁', 'user:🦄', 'user:\uFFFD', 'user:\uFFFF', 'user:\uE000', 'user:\u{10000}', 'user:\u{10FFFF}', 'user:']

async function listed(c: Cache): Promise<string[]> {
  const keys: string[] = []
  for await (const k of c.keys()) keys.push(k)
  return keys.sort()
}

/**
 * Keys as the caller wrote them: lone surrogates refused (every backend would store them differently),
 * astral keys and prefixes kept apart, and errors that name the caller's key, never the cache's prefix.
 *
 * On a backend that cannot list its keys (`capabilities.listKeys` false: memcached) every case runs all the
 * same, reading keys back one by one; only the assertions on what `keys()` lists are left out.
 */
export function keyTests(h: () => Harness, caps: AdapterCapabilities): void {
  const lists = caps.listKeys !== false
  it('refuses a key with a lone surrogate on every method, with a CacheArgumentError naming it, and writes nothing', async () => {
    const c = await h().cache()
    for (const key of LONE) {
      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => c.get(key)],
        ['set', () => c.set(key, 1)],
        ['add', () => c.add(key, 1)],
        ['inc', () => c.inc(key)],
        ['dec', () => c.dec(key)],
        ['has', () => c.has(key)],
        ['delete', () => c.delete(key)],
        ['touch', () => c.touch(key)],
        ['ttl', () => c.ttl(key)],
        ['getOrSet', () => c.getOrSet(key, () => 1)],
        ['getMany', () => c.getMany(['ok', key])],
        ['setMany', () => c.setMany([['ok', 1], [key, 2]])],
        ['deleteMany', () => c.deleteMany(['ok', key])],
      ]
      for (const [name, call] of calls) {
        const error = await call().then(() => undefined, (e: unknown) => e)
        expect(error, `${name}(${JSON.stringify(key)})`).toBeInstanceOf(CacheArgumentError)
        expect((error as CacheArgumentError).key).toBe(key)
        expect((error as Error).message).toContain(JSON.stringify(key))
        expect((error as Error).message).toMatch(/lone surrogate.*toWellFormed\(\)/)
      }
    }
    // The well-formed key beside a refused one in setMany was not written either.
    expect(await c.get('ok')).toBeUndefined()
    if (lists) expect(await listed(c)).toEqual([])
  })

  it('refuses a namespace prefix with a lone surrogate', async () => {
    const c = await h().cache()
    for (const prefix of ['p\uD800:', '\uDC00']) {
      expect(() => c.namespace(prefix)).toThrow(CacheArgumentError)
      expect(() => c.namespace('ok:').namespace(prefix)).toThrow(/lone surrogate/)
    }
  })

  it(`keeps well-formed astral keys (emoji) and the neighbours of U+FFFD distinct${lists ? ', and lists them as they are' : ''}`, async () => {
    const c = await h().cache()
    await c.setMany(ASTRAL.map((k, i) => [k, i] as const))
    expect(await c.getMany(ASTRAL)).toEqual(ASTRAL.map((_, i) => i))
    if (lists) expect(await listed(c)).toEqual([...ASTRAL].sort())
    expect(await c.inc('user:😀')).toBe(1)
    expect(await c.get('user:😁')).toBe(1)
    expect(await c.delete('user:\uFFFD')).toBe(true)
    expect(await c.get('user:\uFFFF')).toBe(4)
  })

  it(`a namespace with an astral prefix ${lists ? 'lists and clears' : 'clears'} only its own keys`, async () => {
    const c = await h().cache()
    const prefixes = ['😀:', '😀', '😁:', '😀:x', '\uFFFF:', '\u{10FFFF}', '\u{10FFFF}\u{10FFFF}', '\uFFFD:', 'p:']
    const names = ['k', '🦄', '\u{10FFFF}']
    // The model: every full key (under the cache's own prefix) and the namespace that wrote it last.
    const model = new Map<string, string>()
    for (const p of prefixes) {
      await c.namespace(p).setMany(names.map((k) => [k, p] as const))
      for (const k of names) model.set(p + k, p)
    }
    const under = (p: string) => [...model.keys()].filter((full) => full.startsWith(p)).map((full) => full.slice(p.length)).sort()
    if (lists) for (const p of prefixes) expect(await listed(c.namespace(p)), `keys() of namespace ${JSON.stringify(p)}`).toEqual(under(p))
    const gone: string[] = []
    for (const cleared of ['😀', '\u{10FFFF}']) {
      await c.namespace(cleared).clear()
      for (const full of [...model.keys()]) {
        if (!full.startsWith(cleared)) continue
        model.delete(full)
        gone.push(full)
      }
    }
    if (lists) expect(await listed(c)).toEqual([...model.keys()].sort())
    for (const [full, p] of model) expect(await c.get(full), full).toBe(p)
    for (const full of gone) expect(await c.get(full), `${full} (cleared)`).toBeUndefined()
    expect(model.size).toBe(4 * names.length)
  })

  it("a CacheTypeError from inc/dec names the caller's key, not the cache's prefix", async () => {
    const c = await h().cache()
    const ns = c.namespace('ns:')
    for (const view of [c, ns]) {
      await view.set('word', 'text')
      await view.set('most', Number.MAX_SAFE_INTEGER)
      await view.set('least', Number.MIN_SAFE_INTEGER)
      const calls: [() => Promise<number>, string, RegExp][] = [
        [() => view.inc('word'), 'word', /Cannot increment "word": its value is not an integer/],
        [() => view.dec('word', 2), 'word', /Cannot increment "word": its value is not an integer/],
        [() => view.inc('most'), 'most', /Cannot increment "most": 9007199254740991 \+ 1 is beyond the safe integer range/],
        [() => view.dec('least'), 'least', /Cannot increment "least": -9007199254740991 \+ -1 is beyond the safe integer range/],
      ]
      for (const [call, key, message] of calls) {
        const error = await call().then(() => undefined, (e: unknown) => e)
        expect(error).toBeInstanceOf(CacheTypeError)
        expect((error as CacheTypeError).key).toBe(key)
        expect((error as Error).message).toMatch(message)
        expect((error as Error).message).not.toContain(view.keyPrefix)
        expect((error as Error).message).not.toContain('ck-test:')
      }
      expect(await view.get('word')).toBe('text')
      expect(await view.get('most')).toBe(Number.MAX_SAFE_INTEGER)
    }
  })
}
