/**
 * Proofs for the filesystem adapter beyond the conformance suite: paths, corrupt files, crashes (real child
 * processes killed with SIGKILL), lock recovery, purge and the threshold bound under concurrent writers.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { filesystemAdapter } from '../adapters/filesystem/index.js'
import { keyRef } from '../adapters/filesystem/format.js'
import { tryLock, unlock } from '../adapters/filesystem/lock.js'
import { slackOf } from '../adapters/filesystem/purge.js'
import type { AdapterEvent } from '../src/adapter.js'
import { CacheConfigError } from '../src/errors.js'
import { configFromEnv, resolveConfig } from '../src/config/index.js'
import { createCache } from '../src/singleton.js'
import { runInProcesses } from '../src/testing/index.js'
import { FakeClock } from '../src/testing/harness.js'
import { checkChurnValue } from './fixtures/fs-values.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/fs-child.ts', import.meta.url))
const base = mkdtempSync(join(tmpdir(), 'cachekit-fs-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))
let n = 0
const freshDir = (): string => join(base, `c${n++}`)

/** Every file under `dir`, as paths relative to it. */
function walk(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...walk(path).map((p) => join(entry.name, p)))
    else out.push(entry.name)
  }
  return out
}

/** The entry files under `dir` (shard/hash). */
function entries(dir: string): string[] {
  return walk(dir).filter((p) => /^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(p))
}

const fileOf = (dir: string, key: string): string => {
  const { hash } = keyRef(key)
  return join(dir, hash.slice(0, 2), hash)
}

/** A child running the fixture with `job`; resolves `line` once it prints `line`. */
function child(job: object): { proc: ChildProcess; printed: (line: string) => Promise<void>; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const waiters: { line: string; resolve: () => void }[] = []
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    for (const w of waiters) if (stdout.split('\n').includes(w.line)) w.resolve()
  })
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const printed = (line: string) =>
    new Promise<void>((resolve, reject) => {
      waiters.push({ line, resolve })
      void exited.then((code) => reject(new Error(`child exited (${code}) before printing ${line}\n${stderr}`)))
    })
  return { proc, printed, exited }
}

describe('filesystem: paths', () => {
  it('keys such as ../../etc/passwd, a/b, a NUL byte or 10 KiB stay inside the folder', async () => {
    const parent = freshDir()
    const dir = join(parent, 'cache')
    const cache = createCache({ type: 'filesystem', dir })
    const keys = ['../../etc/passwd', '/etc/passwd', 'a/b', 'a\\b', '..', '.', 'nul\u0000byte', 'k'.repeat(10 * 1024), 'C:\\x', '~/.ssh/id']
    for (const [i, key] of keys.entries()) await cache.set(key, i)
    for (const [i, key] of keys.entries()) expect(await cache.get(key)).toBe(i)
    const listed: string[] = []
    for await (const k of cache.keys()) listed.push(k)
    expect(listed.sort()).toEqual([...keys].sort())
    await cache.close()
    // Nothing beside the cache folder, and inside it only cachekit's own layout.
    expect(readdirSync(parent)).toEqual(['cache'])
    for (const path of walk(dir)) {
      expect(relative(dir, resolve(dir, path)).startsWith('..')).toBe(false)
      expect(path).toMatch(/^(CACHEDIR\.TAG|cachekit-writes|cachekit-state|[0-9a-f]{2}\/[0-9a-f]{64})$/)
    }
    expect(entries(dir)).toHaveLength(keys.length)
  })

  it('creates the folder 0700 and files 0600 (modes are options)', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir })
    await cache.set('k', 'v')
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(fileOf(dir, 'k')).mode & 0o777).toBe(0o600)
    expect(statSync(join(fileOf(dir, 'k'), '..')).mode & 0o777).toBe(0o700)
    await cache.close()
  })

  it('keeps bytes as bytes and text as text, byte-exact, and keys with lone surrogates apart', async () => {
    const dir = freshDir()
    const events: AdapterEvent[] = []
    const adapter = filesystemAdapter({ dir }, { now: Date.now, threshold: 100, emit: (e) => events.push(e) })
    await adapter.ready?.()
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i)
    await adapter.set('bytes', bytes, null)
    await adapter.set('text', '\u0000\uFFFF é 🦄', null)
    await adapter.set('empty-bytes', new Uint8Array(0), null)
    await adapter.set('empty-text', '', null)
    const back = await adapter.get('bytes')
    expect(back).toBeInstanceOf(Uint8Array)
    expect(Buffer.from(back as Uint8Array).equals(Buffer.from(bytes))).toBe(true)
    expect(await adapter.get('text')).toBe('\u0000\uFFFF é 🦄')
    expect(await adapter.get('empty-bytes')).toEqual(new Uint8Array(0))
    expect(await adapter.get('empty-text')).toBe('')
    const odd = ['\uD800', '\uDFFF', '\uFFFD', '\uD800\uDC00']
    for (const [i, key] of odd.entries()) await adapter.set(key, String(i), null)
    for (const [i, key] of odd.entries()) expect(await adapter.get(key)).toBe(String(i))
    const listed: string[] = []
    for await (const k of adapter.keys('')) listed.push(k)
    expect(listed.sort()).toEqual(['bytes', 'text', 'empty-bytes', 'empty-text', ...odd].sort())
    expect(events.filter((e) => e.type === 'corrupt')).toEqual([])
    await adapter.close()
  })
})

describe('filesystem: corrupt files', () => {
  const damages: [string, (file: string) => void][] = [
    ['truncated', (file) => truncateSync(file, statSync(file).size - 3)],
    ['truncated inside the header', (file) => truncateSync(file, 10)],
    ['random bytes', (file) => writeFileSync(file, randomBytes(500))],
    ['zero-length', (file) => writeFileSync(file, '')],
    ['longer than its header says', (file) => writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from('junk')]))],
    ['of another key', (file) => writeFileSync(file, readFileSync(fileOf(join(file, '../..'), 'other')))],
  ]
  for (const [label, damage] of damages) {
    it(`a ${label} file is a miss, is removed and is reported`, async () => {
      const dir = freshDir()
      const cache = createCache({ type: 'filesystem', dir })
      const corrupt: [string | undefined, string][] = []
      cache.on('corrupt', (key: string | undefined, detail: string) => corrupt.push([key, detail]))
      await cache.set('victim', { some: 'value' })
      await cache.set('other', 'x'.repeat(100))
      const file = fileOf(dir, 'victim')
      damage(file)
      expect(await cache.get('victim')).toBeUndefined()
      expect(() => statSync(file)).toThrow(/ENOENT/)
      expect(corrupt).toHaveLength(1)
      expect(corrupt[0]?.[0]).toBe('victim')
      expect(corrupt[0]?.[1]).toContain(file)
      // The key works again, and its neighbour was never touched.
      await cache.set('victim', 2)
      expect(await cache.get('victim')).toBe(2)
      expect(await cache.get('other')).toBe('x'.repeat(100))
      await cache.close()
    })
  }

  it('inc, add and has treat a corrupt file as absent and never throw', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir })
    for (const key of ['n', 'a', 'h']) {
      await cache.set(key, 5)
      writeFileSync(fileOf(dir, key), randomBytes(40))
    }
    expect(await cache.inc('n')).toBe(1)
    expect(await cache.add('a', 'new')).toBe(true)
    expect(await cache.get('a')).toBe('new')
    expect(await cache.has('h')).toBe(false)
    await cache.close()
  })

  it('a purge removes corrupt files nobody reads', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir })
    await cache.setMany([['a', 1], ['b', 2], ['c', 3]])
    writeFileSync(fileOf(dir, 'a'), '')
    truncateSync(fileOf(dir, 'b'), 20)
    expect(await cache.purgeExpired()).toBe(2)
    expect(entries(dir)).toHaveLength(1)
    expect(await cache.get('c')).toBe(3)
    await cache.close()
  })
})

describe('filesystem: purge', () => {
  it('10,000 entries with a short TTL, never read, are gone after the purge interval', async () => {
    const dir = freshDir()
    const clock = new FakeClock()
    const cache = createCache({ type: 'filesystem', dir, now: clock.now, threshold: 0, purgeInterval: '50ms' })
    await cache.setMany(Array.from({ length: 10_000 }, (_, i) => [`short:${i}`, i] as const), '10s')
    await cache.set('forever', 'stays', 0)
    expect(entries(dir)).toHaveLength(10_001)
    clock.advance(10_000)
    // The unref'd timer does it: nothing here reads or purges.
    await vi.waitFor(() => expect(entries(dir)).toHaveLength(1), { timeout: 30_000, interval: 100 })
    expect(await cache.get('forever')).toBe('stays')
    await cache.close()
  }, 60_000)

  it('purgeExpired() removes exactly the expired entries, and stale locks and temporary files of crashed writers', async () => {
    const dir = freshDir()
    const clock = new FakeClock()
    const cache = createCache({ type: 'filesystem', dir, now: clock.now, purgeInterval: 0 })
    await cache.setMany(Array.from({ length: 500 }, (_, i) => [`s${i}`, i] as const), '1s')
    await cache.setMany(Array.from({ length: 50 }, (_, i) => [`l${i}`, i] as const), '1h')
    const shard = join(fileOf(dir, 'l0'), '..')
    const temp = join(shard, `${'0'.repeat(64)}.99999-1.tmp`)
    writeFileSync(temp, 'half a write')
    const old = new Date(Date.now() - 2 * 3_600_000)
    utimesSync(temp, old, old)
    const freshTemp = join(shard, `${'1'.repeat(64)}.99999-2.tmp`)
    writeFileSync(freshTemp, 'a write in progress')
    const deadLock = join(shard, `${'2'.repeat(64)}.lock`)
    writeFileSync(deadLock, '')
    utimesSync(deadLock, old, old)
    clock.advance(1000)
    expect(await cache.purgeExpired()).toBe(500)
    expect(entries(dir)).toHaveLength(50)
    expect(await cache.get('l49')).toBe(49)
    const left = readdirSync(shard)
    expect(left).not.toContain(temp.split('/').pop())
    expect(left).not.toContain(deadLock.split('/').pop())
    expect(left).toContain(freshTemp.split('/').pop())
    await cache.close()
  })
})

describe('filesystem: locks', () => {
  const options = { staleMs: 1000, fileMode: 0o600, dirMode: 0o700 }

  it('a lock held by a process killed with SIGKILL is recovered at once', async () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const holder = child({ kind: 'hold', dir, key: 'held' })
    await holder.printed('held')
    const lockFile = `${fileOf(dir, 'held')}.lock`
    expect(statSync(lockFile).isFile()).toBe(true)
    holder.proc.kill('SIGKILL')
    await holder.exited
    const cache = createCache({ type: 'filesystem', dir, lockStaleTimeout: '1h' })
    // The stale timeout is an hour: only the dead holder's pid can let these through.
    expect(await cache.inc('held')).toBe(1)
    expect(await cache.add('held', 'x')).toBe(false)
    expect(() => statSync(lockFile)).toThrow(/ENOENT/)
    await cache.close()
  }, 30_000)

  it('a lock of a holder that cannot be checked (another host) is respected until the stale timeout, then broken', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const foreign = (createdAt: number) => `cachekit-lock 1\n12345\nanother-host pid:[1]\n${createdAt}\n1\n`
    writeFileSync(path, foreign(Date.now()))
    expect(tryLock(path, options)).toBe(false)
    writeFileSync(path, foreign(Date.now() - options.staleMs - 1))
    expect(tryLock(path, options)).toBe(true)
    unlock(path, options)
    // A lock file left empty (its holder died between create and write) is judged by its age.
    writeFileSync(path, '')
    expect(tryLock(path, options)).toBe(false)
    const old = new Date(Date.now() - options.staleMs - 1000)
    utimesSync(path, old, old)
    expect(tryLock(path, options)).toBe(true)
    unlock(path, options)
    expect(() => statSync(path)).toThrow(/ENOENT/)
  })

  it('8 processes racing to break one stale lock: exactly one add wins', async () => {
    const dir = freshDir()
    const key = 'contested'
    const lockFile = `${fileOf(dir, key)}.lock`
    mkdirSync(join(lockFile, '..'), { recursive: true })
    writeFileSync(lockFile, `cachekit-lock 1\n12345\nanother-host pid:[1]\n${Date.now() - 60_000}\n1\n`)
    const results = (await runInProcesses<boolean>({ type: 'filesystem', dir, lockStaleTimeout: '10s' }, { kind: 'add', key }, 8)).flat()
    expect(results.filter((r) => r === true)).toHaveLength(1)
  }, 60_000)

  it('a writer killed with SIGKILL mid-write, again and again, leaves only whole values and no stuck lock', async () => {
    const dir = freshDir()
    const keys = 12
    for (let round = 0; round < 6; round++) {
      const writer = child({ kind: 'churn', dir, keys })
      await writer.printed('running')
      // Let it run a varying while, so that the kill lands at different points of a write.
      await new Promise((r) => setTimeout(r, 20 + ((round * 37) % 90)))
      writer.proc.kill('SIGKILL')
      await writer.exited
    }
    const cache = createCache({ type: 'filesystem', dir, lockStaleTimeout: '1h' })
    const corrupt: string[] = []
    cache.on('corrupt', (_key: string | undefined, detail: string) => corrupt.push(detail))
    for (let i = 0; i < keys; i++) {
      const value = await cache.get(`k${i}`)
      expect(checkChurnValue(i, value)).toBeTypeOf('number')
    }
    const counter = await cache.get<number>('counter')
    expect(Number.isSafeInteger(counter)).toBe(true)
    // If a writer died holding the counter's lock, this still goes through (the stale timeout is an hour).
    expect(await cache.inc('counter')).toBe((counter as number) + 1)
    expect(corrupt).toEqual([])
    const listed: string[] = []
    for await (const k of cache.keys()) listed.push(k)
    expect(listed.sort()).toEqual(['counter', ...Array.from({ length: keys }, (_, i) => `k${i}`)].sort())
    await cache.close()
  }, 120_000)
})

describe('filesystem: threshold', () => {
  it('4 processes writing 300 new keys each into a threshold of 50 leave at most threshold + slack + one per process', async () => {
    const dir = freshDir()
    const threshold = 50
    const writers = Array.from({ length: 4 }, (_, w) => child({ kind: 'fill', dir, threshold, prefix: `w${w}:`, count: 300 }))
    expect(await Promise.all(writers.map((w) => w.exited))).toEqual([0, 0, 0, 0])
    const count = entries(dir).length
    expect(count).toBeLessThanOrEqual(threshold + slackOf(threshold) + 4)
    expect(count).toBeGreaterThanOrEqual(threshold - slackOf(threshold))
    // Eviction removes whole entries: every one left reads back as what its writer wrote.
    const cache = createCache({ type: 'filesystem', dir, threshold })
    const left: string[] = []
    for await (const k of cache.keys()) left.push(k)
    expect(left).toHaveLength(count)
    for (const k of left) expect(await cache.get(k)).toBe(Number(k.split(':')[1]))
    await cache.close()
  }, 120_000)

  it('the oldest entries go first', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir, threshold: 20, purgeInterval: 0 })
    for (let i = 0; i < 30; i++) await cache.set(`k${i}`, i, 0)
    await vi.waitFor(() => expect(entries(dir).length).toBeLessThanOrEqual(20), { timeout: 10_000 })
    const present = await cache.getMany(Array.from({ length: 30 }, (_, i) => `k${i}`))
    const first = present.findIndex((v) => v !== undefined)
    expect(first).toBeGreaterThan(0)
    // What is left is the newest run of keys, without a gap.
    expect(present.slice(first)).toEqual(Array.from({ length: 30 - first }, (_, i) => first + i))
    await cache.close()
  })

  it('in one process, expired entries go before the oldest live ones', async () => {
    const dir = freshDir()
    const clock = new FakeClock()
    const cache = createCache({ type: 'filesystem', dir, now: clock.now, threshold: 20, purgeInterval: 0 })
    await cache.setMany(Array.from({ length: 10 }, (_, i) => [`live${i}`, i] as const), 0)
    await cache.setMany(Array.from({ length: 8 }, (_, i) => [`dying${i}`, i] as const), '1s')
    clock.advance(1000)
    await cache.setMany(Array.from({ length: 5 }, (_, i) => [`new${i}`, i] as const), 0)
    await vi.waitFor(() => expect(entries(dir).length).toBeLessThanOrEqual(20), { timeout: 10_000 })
    // 8 expired made room: every live entry, old or new, is still there.
    expect(await cache.getMany([...Array.from({ length: 10 }, (_, i) => `live${i}`), ...Array.from({ length: 5 }, (_, i) => `new${i}`)])).toEqual([
      ...Array.from({ length: 10 }, (_, i) => i),
      ...Array.from({ length: 5 }, (_, i) => i),
    ])
    await cache.close()
  })
})

describe('filesystem: config', () => {
  it('is reached by type, Flask name, alias, file: URL (relative or absolute) and CACHE_DIR', () => {
    expect(resolveConfig({ type: 'filesystem', dir: '/tmp/x' }).type).toBe('filesystem')
    expect(resolveConfig({ type: 'FileSystemCache', dir: '/tmp/x' }).type).toBe('filesystem')
    expect(resolveConfig({ type: 'file' }).type).toBe('filesystem')
    expect(resolveConfig({ type: 'fs' }).type).toBe('filesystem')
    // The URL becomes the option it names, and is not kept beside it: 'file:./x' and { dir: './x' } are one config.
    expect(resolveConfig('file:./cache-here').adapterOptions).toEqual({ dir: './cache-here' })
    expect(resolveConfig('file:///var/cache/app').adapterOptions.dir).toBe('/var/cache/app')
    expect(resolveConfig('file:/var/cache/app').adapterOptions.dir).toBe('/var/cache/app')
    expect(configFromEnv({ CACHE_DIR: '/tmp/cache-env' })).toMatchObject({ type: 'filesystem', dir: '/tmp/cache-env' })
    expect(() => resolveConfig('file:')).toThrow(CacheConfigError)
  })

  it('refuses bad options with an error naming them', async () => {
    const ctx = { now: Date.now, threshold: 10, emit: () => {} }
    expect(() => filesystemAdapter({ dir: '' }, ctx)).toThrow(/`dir`/)
    expect(() => filesystemAdapter({ dir: freshDir(), fileMode: 0o400 }, ctx)).toThrow(/`fileMode`.*0o600/)
    expect(() => filesystemAdapter({ dir: freshDir(), dirMode: 0o1777 }, ctx)).toThrow(/`dirMode`/)
    expect(() => filesystemAdapter({ dir: freshDir(), lockStaleTimeout: 'soon' }, ctx)).toThrow(/`lockStaleTimeout`/)
    expect(() => filesystemAdapter({ dir: freshDir(), lockStaleTimeout: 0 }, ctx)).toThrow(/`lockStaleTimeout`/)
    expect(() => resolveConfig({ type: 'filesystem', cacheDir: '/tmp/x' } as never)).toThrow(/Did you mean `dir`/)
    const file = join(base, 'a-file')
    writeFileSync(file, '')
    expect(() => filesystemAdapter({ dir: file }, ctx)).toThrow(/Cannot use the cache folder|not a folder/)
  })

  it('clear() removes only cachekit entries, never a file of the user', async () => {
    const dir = freshDir()
    mkdirSync(join(dir, 'ab'), { recursive: true })
    writeFileSync(join(dir, 'notes.txt'), 'mine')
    writeFileSync(join(dir, 'ab', 'mine.txt'), 'mine too')
    const cache = createCache({ type: 'filesystem', dir })
    await cache.setMany([['a', 1], ['b', 2]])
    await cache.clear()
    expect(entries(dir)).toEqual([])
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine')
    expect(readFileSync(join(dir, 'ab', 'mine.txt'), 'utf8')).toBe('mine too')
    await cache.close()
  })
})
