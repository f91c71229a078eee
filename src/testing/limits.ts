import { expect, it } from 'vitest'
import type { AdapterCapabilities } from '../adapter.js'
import type { Harness } from './harness.js'

const AWKWARD_KEYS = [
  'k',
  'a/b',
  '../../etc/passwd',
  'with:colons:and spaces',
  'ünïcödé-键-🔑',
  'nul\u0000byte',
  '%2F..%00',
  'x'.repeat(4096),
]

export function limitTests(h: () => Harness, caps: AdapterCapabilities): void {
  const listKeys = caps.listKeys !== false
  it(`keys of 1 character, 4 KiB, and with / .. : spaces and unicode are distinct and round-trip${listKeys ? '' : ' (listing not checked: the adapter declares listKeys: false)'}`, async () => {
    const c = await h().cache()
    await c.setMany(AWKWARD_KEYS.map((k, i) => [k, i] as const))
    expect(await c.getMany(AWKWARD_KEYS)).toEqual(AWKWARD_KEYS.map((_, i) => i))
    for (const [i, k] of AWKWARD_KEYS.entries()) expect(await c.get(k)).toBe(i)
    if (!listKeys) return
    const listed: string[] = []
    for await (const k of c.keys()) listed.push(k)
    expect(listed.sort()).toEqual([...AWKWARD_KEYS].sort())
  })

  it('values of 1 MiB round-trip byte-exact', async () => {
    const c = await h().cache()
    const text = 'abcdefghijklmnopqrstuvwxyz012345'.repeat(32 * 1024)
    const bytes = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff
    await c.set('text', text)
    await c.set('bytes', bytes)
    expect(await c.get('text')).toBe(text)
    expect(Buffer.compare((await c.get<Buffer>('bytes')) ?? Buffer.alloc(0), bytes)).toBe(0)
  })
}
