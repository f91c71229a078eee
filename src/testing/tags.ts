/**
 * Tags: `invalidateTags` makes every entry that carries one of its tags a miss, on every backend, and
 * nothing else. Tag versions are bookkeeping keys of the backend like any other, so these cases check what
 * a backend could get wrong: a tagged payload (text or bytes) round-trips, the versions never expire, and a
 * stale entry still expires by its own TTL.
 */
import fc from 'fast-check'
import { expect, it } from 'vitest'
import type { Cache } from '../cache.js'
import { ENGINE } from '../engine.js'
import { CacheArgumentError } from '../errors.js'
import { MAX_TAGS, TAG_KEY_PREFIX } from '../tags.js'
import type { Harness } from './harness.js'

/** A promise and the function that settles it, to hold a factory while the test acts. */
function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void
  const promise = new Promise<T>((resolve) => (open = resolve))
  return { promise, open }
}

async function listed(c: Cache): Promise<string[]> {
  const keys: string[] = []
  for await (const k of c.keys()) keys.push(k)
  return keys.sort()
}

export function tagTests(h: () => Harness): void {
  it('an invalidated tag makes its entries misses, and only them', async () => {
    const hh = h()
    const c = await hh.cache()
    const ttl = hh.shortTtl * 10
    await c.set('user:1', { id: 1 }, { ttl, tags: ['users', 'org:7'] })
    await c.set('user:2', { id: 2 }, { ttl, tags: ['users', 'org:8'] })
    await c.set('plain', 'p', ttl)
    expect(await c.get('user:1')).toEqual({ id: 1 })
    expect(await c.getMany(['user:1', 'user:2', 'plain'])).toEqual([{ id: 1 }, { id: 2 }, 'p'])
    expect(await c.invalidateTags(['org:7'])).toBe(true)
    expect(await c.get('user:1')).toBeUndefined()
    expect(await c.has('user:1')).toBe(false)
    expect(await c.getMany(['user:1', 'user:2', 'plain'])).toEqual([undefined, { id: 2 }, 'p'])
    // One tag of an entry is enough; an untagged entry never goes.
    await c.invalidateTags(['users'])
    expect(await c.getMany(['user:1', 'user:2', 'plain'])).toEqual([undefined, undefined, 'p'])
  })

  it('an entry written after the invalidation lives; invalidating again makes it a miss', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 1, { tags: ['t'] })
    await c.invalidateTags(['t'])
    await c.set('k', 2, { tags: ['t'] })
    expect(await c.get('k')).toBe(2)
    await c.invalidateTags(['t', 'unused'])
    expect(await c.get('k')).toBeUndefined()
  })

  it('setMany tags every entry; a tagged payload of bytes (the v8 serializer) round-trips', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.setMany([['a', 1], ['b', 'two']], { ttl: hh.shortTtl * 10, tags: ['batch'] })
    expect(await c.getMany(['a', 'b'])).toEqual([1, 'two'])
    await c.invalidateTags(['batch'])
    expect(await c.getMany(['a', 'b'])).toEqual([undefined, undefined])
    const v8 = await hh.cache({ serializer: 'v8' })
    const value = new Map([['x', new Set([1, 2])]])
    await v8.set('m', value, { tags: ['bytes'] })
    await v8.set('n', 42, { tags: ['bytes'] })
    expect(await v8.get('m')).toEqual(value)
    expect(await v8.get('n')).toBe(42)
    await v8.invalidateTags(['bytes'])
    expect(await v8.get('m')).toBeUndefined()
  })

  it('tags are shared by a cache and its namespaces, and not by caches of other prefixes', async () => {
    const hh = h()
    const c = await hh.cache()
    const other = await hh.cache()
    await c.namespace('users:').set('1', 'u', { tags: ['org:7'] })
    await c.namespace('reports:').set('1', 'r', { tags: ['org:7'] })
    await other.set('k', 'o', { tags: ['org:7'] })
    await c.namespace('reports:').invalidateTags(['org:7'])
    expect(await c.namespace('users:').get('1')).toBeUndefined()
    expect(await c.namespace('reports:').get('1')).toBeUndefined()
    expect(await other.get('k')).toBe('o')
  })

  it('add replaces an entry made stale by a tag, and not a live one', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 'old', { tags: ['t'] })
    expect(await c.add('k', 'new', { tags: ['t'] })).toBe(false)
    await c.invalidateTags(['t'])
    expect(await c.add('k', 'new', { tags: ['t'] })).toBe(true)
    expect(await c.get('k')).toBe('new')
    await c.invalidateTags(['t'])
    // An untagged add replaces a stale entry too: every reader takes it for absent.
    expect(await c.add('k', 'plain')).toBe(true)
    expect(await c.get('k')).toBe('plain')
  })

  it('getOrSet and memoize take tags; the next call after an invalidation computes again', async () => {
    const hh = h()
    const c = await hh.cache()
    let runs = 0
    const build = () => ++runs
    expect(await c.getOrSet('report:7', build, { ttl: hh.shortTtl * 10, tags: ['org:7'] })).toBe(1)
    expect(await c.getOrSet('report:7', build, { ttl: hh.shortTtl * 10, tags: ['org:7'] })).toBe(1)
    await c.invalidateTags(['org:7'])
    expect(await c.getOrSet('report:7', build, { ttl: hh.shortTtl * 10, tags: ['org:7'] })).toBe(2)
    let loads = 0
    const getOrg = c.memoize(async (id: number) => ({ id, load: ++loads }), { name: 'conformance.getOrg', tags: (id) => [`org:${id}`] })
    expect(await getOrg(7)).toEqual({ id: 7, load: 1 })
    expect(await getOrg(8)).toEqual({ id: 8, load: 2 })
    expect(await getOrg(7)).toEqual({ id: 7, load: 1 })
    await c.invalidateTags(['org:7'])
    expect(await getOrg(7)).toEqual({ id: 7, load: 3 })
    expect(await getOrg(8)).toEqual({ id: 8, load: 2 })
  })

  it('a getOrSet whose factory runs across an invalidation stores its value as stale (control: set after computing serves it)', async () => {
    const hh = h()
    const c = await hh.cache()
    const factoryStarted = gate()
    const release = gate<string>()
    const first = c.getOrSet('k', async () => {
      factoryStarted.open()
      return release.promise
    }, { tags: ['t'] })
    await factoryStarted.promise
    await c.invalidateTags(['t'])
    // A call after the invalidation does not join the computation that started before it.
    const second = c.getOrSet('k', () => 'after', { tags: ['t'] })
    release.open('before')
    expect(await first).toBe('before')
    expect(await second).toBe('after')
    expect(await c.get('k')).toBe('after')
    // Without reading the versions first: the value computed before the invalidation is served after it.
    const computing = Promise.resolve('before')
    await c.invalidateTags(['u'])
    await c.set('naive', await computing, { tags: ['u'] })
    expect(await c.get('naive')).toBe('before')
  })

  it('a stale entry still expires by its own TTL; the versions of tags never expire', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('short', 1, { ttl: hh.shortTtl, tags: ['t'] })
    await c.invalidateTags(['t'])
    await c.set('forever', 2, { ttl: 0, tags: ['t'] })
    const engine = await c[ENGINE]()
    expect(await engine.adapter?.expiresAt(`${c.keyPrefix}${TAG_KEY_PREFIX}t`)).toBeNull()
    await hh.elapse(hh.shortTtl)
    expect(await engine.adapter?.has(engine.fullKey('short'))).toBe(false)
    expect(await c.get('forever')).toBe(2)
    if (hh.caps.listKeys !== false) expect(await listed(c)).toEqual(['forever'])
  })

  it('a version that vanished (cleared, evicted) never brings stale entries back', async () => {
    const hh = h()
    const c = await hh.cache()
    await c.set('k', 1, { tags: ['t'] })
    await c.invalidateTags(['t'])
    const engine = await c[ENGINE]()
    await engine.adapter?.delete(`${c.keyPrefix}${TAG_KEY_PREFIX}t`)
    expect(await c.get('k')).toBeUndefined()
    await c.set('j', 2, { tags: ['t'] })
    expect(await c.get('k')).toBeUndefined()
    expect(await c.get('j')).toBe(2)
  })

  it('bad tags and tags on calls that take none are refused naming the tag and the key, and nothing is written', async () => {
    const hh = h()
    const c = await hh.cache()
    const refusals: [unknown, RegExp][] = [
      [[''], /the tag "" is empty/],
      [[7], /the tag number 7 is not a string/],
      ['org:7', /`tags` must be an array/],
      [['x'.repeat(1025)], /1025 characters long; tags are limited to 1024/],
      [['a|ck:b'], /"a\|ck:b" contains "\|ck:"/],
      [['\ud800'], /lone surrogate/],
      [Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`), /65 tags .*at most 64/],
    ]
    for (const [tags, message] of refusals) {
      for (const write of [
        () => c.set('k', 1, { tags } as never),
        () => c.add('k', 1, { tags } as never),
        () => c.setMany([['k', 1]], { tags } as never),
        () => c.getOrSet('k', () => 1, { tags } as never),
      ]) {
        const error = await write().catch((e: unknown) => e)
        expect(error).toBeInstanceOf(CacheArgumentError)
        expect((error as Error).message).toMatch(message)
        expect((error as Error).message).toContain('"k"')
        expect((error as CacheArgumentError).key).toBe('k')
      }
    }
    for (const call of [() => c.touch('k', { tags: ['t'] } as never), () => c.inc('k', 1, { tags: ['t'] } as never), () => c.dec('k', 1, { tags: ['t'] } as never)]) {
      await expect(call()).rejects.toThrow(/\("k"\) takes no tags \(given "t"\)/)
    }
    await expect(c.set('k', 1, { ttl: '1m', tagz: ['t'] } as never)).rejects.toThrow(/unknown option `tagz`\. Did you mean `tags`\?/)
    await expect(c.invalidateTags([''])).rejects.toThrow(CacheArgumentError)
    expect(await c.has('k')).toBe(false)
    if (hh.caps.listKeys !== false) expect(await listed(c)).toEqual([])
  })

  it('behaves like a reference model of set, add, delete, get, has and invalidateTags', async () => {
    const hh = h()
    const root = await hh.cache()
    const keyArb = fc.constantFrom('a', 'b', 'c')
    const tagsArb = fc.subarray(['t1', 't2', 't3'])
    type Op =
      | { op: 'set' | 'add'; key: string; value: number; tags: string[] }
      | { op: 'get' | 'has' | 'delete'; key: string }
      | { op: 'getMany' }
      | { op: 'invalidate'; tags: string[] }
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constantFrom('set' as const, 'add' as const), key: keyArb, value: fc.integer({ min: 0, max: 99 }), tags: tagsArb }),
      fc.record({ op: fc.constantFrom('get' as const, 'has' as const, 'delete' as const), key: keyArb }),
      fc.record({ op: fc.constant('getMany' as const) }),
      fc.record({ op: fc.constant('invalidate' as const), tags: tagsArb }),
    )
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        const id = run++
        const c = root.namespace(`tags${id}:`)
        const tag = (t: string) => `r${id}:${t}`
        // The model: each tag's version, and each entry's value and the versions it was written under.
        const versions = new Map<string, number>()
        const entries = new Map<string, { value: number; stamp: Map<string, number> }>()
        const live = (key: string): number | undefined => {
          const e = entries.get(key)
          if (e === undefined) return undefined
          for (const [t, v] of e.stamp) if ((versions.get(t) ?? 0) !== v) return undefined
          return e.value
        }
        const write = (key: string, value: number, tags: string[]) =>
          entries.set(key, { value, stamp: new Map(tags.map((t) => [t, versions.get(t) ?? 0])) })
        for (const o of ops) {
          switch (o.op) {
            case 'set':
              expect(await c.set(o.key, o.value, { tags: o.tags.map(tag) })).toBe(true)
              write(o.key, o.value, o.tags)
              break
            case 'add': {
              const absent = live(o.key) === undefined
              expect(await c.add(o.key, o.value, { tags: o.tags.map(tag) })).toBe(absent)
              if (absent) write(o.key, o.value, o.tags)
              break
            }
            case 'get':
              expect(await c.get(o.key)).toBe(live(o.key))
              break
            case 'has':
              expect(await c.has(o.key)).toBe(live(o.key) !== undefined)
              break
            case 'getMany':
              expect(await c.getMany(['a', 'b', 'c'])).toEqual(['a', 'b', 'c'].map(live))
              break
            case 'delete':
              // `delete` says whether an entry was there, stale by a tag or not (it does not read its tags).
              expect(await c.delete(o.key)).toBe(entries.has(o.key))
              entries.delete(o.key)
              break
            case 'invalidate':
              expect(await c.invalidateTags(o.tags.map(tag))).toBe(true)
              for (const t of o.tags) versions.set(t, (versions.get(t) ?? 0) + 1)
              break
          }
        }
      }),
      { numRuns: hh.caps.realClock ? 10 : 30 },
    )
  })
}
