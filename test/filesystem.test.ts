/**
 * Proofs for the filesystem adapter beyond the conformance suite: paths, corrupt files, crashes (real child
 * processes killed with SIGKILL), lock recovery, purge and the threshold bound under concurrent writers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { filesystemAdapter } from '../adapters/filesystem/index.js'
import { keyRef } from '../adapters/filesystem/format.js'
import { tryLock, UNSIGNED_GRACE_MS, unlock, useLinkedLocks } from '../adapters/filesystem/lock.js'
import { slackOf } from '../adapters/filesystem/purge.js'
import { EntryFiles } from '../adapters/filesystem/store.js'
import type { AdapterEvent, CacheAdapter } from '../src/adapter.js'
import { CacheConfigError } from '../src/errors.js'
import { configFromEnv, resolveConfig } from '../src/config/index.js'
import { createCache } from '../src/singleton.js'
import { runInProcesses } from '../src/testing/index.js'
import { FakeClock } from '../src/testing/harness.js'
import { staleAfterTouchRace } from '../src/testing/touch.js'
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

interface Child {
  proc: ChildProcess
  /** Resolves once the child prints `line`. */
  printed: (line: string) => Promise<void>
  exited: Promise<number | null>
  /** The JSON the child printed last, once it exits with 0. */
  result: <T>() => Promise<T>
}

/** A child running the fixture with `job`. */
function child(job: object): Child {
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
  const result = async <T>(): Promise<T> => {
    const code = await exited
    if (code !== 0) throw new Error(`child exited with ${code}\n${stderr}`)
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as T
  }
  return { proc, printed, exited, result }
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
      expect(path).toMatch(/^(CACHEDIR\.TAG|cachekit-writes|cachekit-state|cachekit-holder-\d+-[0-9a-f]{8}|[0-9a-f]{2}\/[0-9a-f]{64})$/)
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
    await vi.waitFor(() => expect(entries(dir)).toHaveLength(1), { timeout: 120_000, interval: 100 })
    expect(await cache.get('forever')).toBe('stays')
    await cache.close()
  }, 180_000)

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
  it('a purge removes the holder files of processes that are gone, once no lock links to them', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir, purgeInterval: 0 })
    expect(await cache.inc('n')).toBe(1)
    const holdersNow = () => readdirSync(dir).filter((name) => name.startsWith('cachekit-holder-')).sort()
    const [own] = holdersNow()
    const id = createHash('sha256').update(`${hostname()} ${readlinkSync('/proc/self/ns/pid')}`).digest('hex').slice(0, 12)
    // A process of this machine that died holding a lock, and one of another host that may be alive.
    const dead = join(dir, 'cachekit-holder-999999999-deadbeef')
    writeFileSync(dead, `ckh 999999999 1 deadbeef ${id}`)
    const leftover = `${fileOf(dir, 'n')}.lock`
    linkSync(dead, leftover)
    const foreign = join(dir, 'cachekit-holder-12345-0badc0de')
    writeFileSync(foreign, 'ckh 12345 1 0badc0de another-host')
    await cache.purgeExpired()
    expect(() => lstatSync(leftover)).toThrow(/ENOENT/)
    expect(holdersNow()).toEqual([own, 'cachekit-holder-12345-0badc0de'].sort())
    expect(await cache.inc('n')).toBe(2)
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
    // The lock is a hard link to the holder's file, which names it: the holder is there from the start.
    expect(readFileSync(lockFile, 'utf8')).toMatch(new RegExp(`^ckh ${holder.proc.pid} `))
    expect(lstatSync(lockFile).nlink).toBe(2)
    holder.proc.kill('SIGKILL')
    await holder.exited
    const cache = createCache({ type: 'filesystem', dir, lockStaleTimeout: '1h' })
    // The stale timeout is an hour: only the dead holder's pid can let these through.
    expect(await cache.inc('held')).toBe(1)
    expect(await cache.add('held', 'x')).toBe(false)
    expect(() => lstatSync(lockFile)).toThrow(/ENOENT/)
    await cache.close()
  }, 30_000)

  it('a lock file of a holder that cannot be checked (another host) is respected until the stale timeout, then broken', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const foreign = (createdAt: number) => `ck2 12345 ${createdAt} 1 another-host`
    writeFileSync(path, foreign(Date.now()))
    expect(tryLock(path, options)).toBe(false)
    writeFileSync(path, foreign(Date.now() - options.staleMs - 1))
    expect(tryLock(path, options)).toBe(true)
    unlock(path, options)
    expect(() => lstatSync(path)).toThrow(/ENOENT/)
  })

  it("a linked lock of a holder that cannot be checked is respected while the holder shows life, then broken", async () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const holderFile = join(dir, 'cachekit-holder-12345-0badc0de')
    writeFileSync(holderFile, 'ckh 12345 1 0badc0de another-host')
    linkSync(holderFile, path)
    // Its last sign of life is the holder file's ctime (each link stamps it): just now.
    expect(tryLock(path, { ...options, staleMs: 3_600_000 })).toBe(false)
    await new Promise((r) => setTimeout(r, 600))
    expect(tryLock(path, { ...options, staleMs: 300 })).toBe(true)
    unlock(path, options)
    expect(lstatSync(holderFile).nlink).toBe(1)
  })

  it('a lock is a hard link to the holder file of its process: no temporary file, one holder file per process', () => {
    const dir = freshDir()
    mkdirSync(join(dir, 'ab'), { recursive: true })
    const mine = { ...options, root: dir }
    const a = join(dir, 'ab', 'a.lock')
    const b = join(dir, 'ab', 'b.lock')
    expect(tryLock(a, mine)).toBe(true)
    expect(tryLock(b, mine)).toBe(true)
    const holderFiles = readdirSync(dir).filter((name) => name.startsWith('cachekit-holder-'))
    expect(holderFiles).toHaveLength(1)
    const holderFile = join(dir, holderFiles[0] as string)
    expect(readFileSync(holderFile, 'utf8')).toMatch(new RegExp(`^ckh ${process.pid} \\d+ [0-9a-f]{8} [0-9a-f]{12}$`))
    expect(lstatSync(a).ino).toBe(lstatSync(holderFile).ino)
    expect(lstatSync(holderFile).nlink).toBe(3)
    // Held by this process: not free, not stale.
    expect(tryLock(a, mine)).toBe(false)
    unlock(a, mine)
    unlock(b, mine)
    expect(readdirSync(join(dir, 'ab'))).toEqual([])
    expect(lstatSync(holderFile).nlink).toBe(1)
  })

  it('locks made as files of their own (where hard links cannot be made) hold their holder and leave nothing beside', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const before = useLinkedLocks(false)
    try {
      expect(tryLock(path, options)).toBe(true)
      expect(lstatSync(path).isFile()).toBe(true)
      expect(readFileSync(path, 'utf8')).toMatch(new RegExp(`^ck2 ${process.pid} \\d+ \\d+ [0-9a-f]{12}$`))
      // Held by this process: not free, not stale.
      expect(tryLock(path, options)).toBe(false)
      unlock(path, options)
      expect(readdirSync(dir)).toEqual([])
      // A linked-file lock of a dead holder is recovered like a link.
      expect(tryLock(path, options)).toBe(true)
      const text = readFileSync(path, 'utf8')
      unlock(path, options)
      writeFileSync(path, text.replace(`ck2 ${process.pid} `, 'ck2 999999999 '))
      expect(tryLock(path, options)).toBe(true)
      unlock(path, options)
    } finally {
      useLinkedLocks(before)
    }
  })

  it('a lock file of an older version (rolling upgrade) is understood: a live holder is respected, a dead one broken at once', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const long = { ...options, staleMs: 3_600_000 }
    const id = `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`
    const old = new Date(Date.now() - UNSIGNED_GRACE_MS - 1000)
    // Dated past the grace for a lock that says nothing: only reading its holder keeps it.
    writeFileSync(path, `cachekit-lock 1\n${process.ppid}\n${id}\n${Date.now()}\n7\n`)
    utimesSync(path, old, old)
    expect(tryLock(path, long)).toBe(false)
    writeFileSync(path, `cachekit-lock 1\n999999999\n${id}\n${Date.now()}\n7\n`)
    expect(tryLock(path, long)).toBe(true)
    unlock(path, long)
  })

  it('a lock that says nothing (an empty file) is respected briefly, then broken whatever the stale timeout', () => {
    const dir = freshDir()
    mkdirSync(dir, { recursive: true })
    const path = join(dir, 'x.lock')
    const long = { ...options, staleMs: 3_600_000 }
    writeFileSync(path, '')
    // Dated in the future: a writer may be between its create and its write.
    const future = new Date(Date.now() + 60_000)
    utimesSync(path, future, future)
    expect(tryLock(path, long)).toBe(false)
    const old = new Date(Date.now() - UNSIGNED_GRACE_MS - 1000)
    utimesSync(path, old, old)
    expect(tryLock(path, long)).toBe(true)
    unlock(path, long)
    expect(() => lstatSync(path)).toThrow(/ENOENT/)
  })

  it('a lock left empty by a holder killed between its create and its write does not stall the key (stale timeout: 1 h)', async () => {
    const dir = freshDir()
    const key = 'half'
    const holder = child({ kind: 'half-lock', dir, key })
    await holder.printed('created')
    holder.proc.kill('SIGKILL')
    await holder.exited
    const lockFile = `${fileOf(dir, key)}.lock`
    expect(statSync(lockFile).size).toBe(0)
    const cache = createCache({ type: 'filesystem', dir, lockStaleTimeout: '1h' })
    // Far below the hour the old rule waited, and far above the grace: the only question is "stuck or not".
    const stalled = (ms: number) => new Promise<'stalled'>((r) => setTimeout(() => r('stalled'), ms).unref())
    expect(await Promise.race([cache.inc(key), stalled(20_000)])).toBe(1)
    expect(await Promise.race([cache.touch(key, '1m'), stalled(20_000)])).toBe(true)
    expect(await Promise.race([cache.add(key, 'x'), stalled(20_000)])).toBe(false)
    expect(await cache.get(key)).toBe(1)
    await cache.close()
  }, 60_000)

  it('8 processes racing to break one stale lock: exactly one add wins', async () => {
    const dir = freshDir()
    const key = 'contested'
    const lockFile = `${fileOf(dir, key)}.lock`
    mkdirSync(join(lockFile, '..'), { recursive: true })
    writeFileSync(lockFile, `ck2 12345 ${Date.now() - 60_000} 1 another-host`)
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

  it('only writes that may create an entry count towards the threshold: overwrites and increments of a counter do not', async () => {
    const dir = freshDir()
    const cache = createCache({ type: 'filesystem', dir, threshold: 20, purgeInterval: 0 })
    const journal = () => statSync(join(dir, 'cachekit-writes')).size
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    expect(await cache.inc('n')).toBe(1)
    expect(journal()).toBe(11)
    // 200 overwrites and 50 increments: no new entry, so nothing counted and no pass needed.
    for (let round = 0; round < 20; round++) for (let i = 0; i < 10; i++) await cache.set(`k${i}`, round)
    for (let i = 0; i < 50; i++) await cache.inc('n')
    expect(journal()).toBe(11)
    // A deleted key set again may be new: it counts.
    await cache.delete('k0')
    await cache.set('k0', 'again')
    expect(journal()).toBe(12)
    expect(await cache.get('n')).toBe(51)
    expect(entries(dir)).toHaveLength(11)
    await cache.close()
  })

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

describe('filesystem: no lost updates across processes', () => {
  /** Setters on their own keys, reading each version back, while touchers touch those keys. */
  async function touchRace(naive: boolean): Promise<{ sets: number; stale: number; touches: number }> {
    const dir = freshDir()
    const stop = join(base, `stop-${n++}`)
    const keys = ['a', 'b']
    const touchers = [0, 1].map(() => child({ kind: 'toucher', dir, keys, stop, naive }))
    await Promise.all(touchers.map((t) => t.printed('running')))
    const setters = keys.map((key) => child({ kind: 'setter', dir, key, count: 1000 }))
    const results = await Promise.all(setters.map((s) => s.result<{ sets: number; stale: number }>()))
    writeFileSync(stop, '')
    const touched = await Promise.all(touchers.map((t) => t.result<{ ops: number }>()))
    return {
      sets: results.reduce((a, r) => a + r.sets, 0),
      stale: results.reduce((a, r) => a + r.stale, 0),
      touches: touched.reduce((a, r) => a + r.ops, 0),
    }
  }

  it('a touch never writes back a value that a set replaced: every read-back is the version just set', async () => {
    const { sets, stale, touches } = await touchRace(false)
    expect(sets).toBe(2000)
    expect(touches).toBeGreaterThan(100)
    expect(stale).toBe(0)
  }, 120_000)

  it('control: with a read-modify-write "touch" (get, then set) the same check sees older values come back', async () => {
    const { stale, touches } = await touchRace(true)
    expect(touches).toBeGreaterThan(100)
    expect(stale).toBeGreaterThan(0)
  }, 120_000)

  /** A deleter that checks its deletes stay done, while incrementers count on the key. */
  async function deleteRace(naive: boolean): Promise<{ epochs: number; undone: number; incs: number }> {
    const dir = freshDir()
    const stop = join(base, `stop-${n++}`)
    const incers = [0, 1].map(() => child({ kind: 'incer', dir, key: 'n', stop, naive }))
    await Promise.all(incers.map((c) => c.printed('running')))
    const deleter = child({ kind: 'deleter', dir, key: 'n', epochs: 100 })
    const { epochs, undone } = await deleter.result<{ epochs: number; undone: number }>()
    writeFileSync(stop, '')
    const counted = await Promise.all(incers.map((c) => c.result<{ ops: number }>()))
    return { epochs, undone, incs: counted.reduce((a, r) => a + r.ops, 0) }
  }

  it('a delete that resolved is never undone by an inc that read before it', async () => {
    const { epochs, undone, incs } = await deleteRace(false)
    expect(epochs).toBe(100)
    expect(incs).toBeGreaterThan(100)
    expect(undone).toBe(0)
  }, 120_000)

  it('control: with a read-modify-write "inc" (get, then set) the same check sees deletes undone', async () => {
    const { undone, incs } = await deleteRace(true)
    expect(incs).toBeGreaterThan(100)
    expect(undone).toBeGreaterThan(0)
  }, 120_000)

  it("control for the conformance suite's touch race: a read-then-rewrite touch fails it, the adapter's passes", async () => {
    const dir = freshDir()
    const ctx = { now: Date.now, threshold: 100, emit: () => {} }
    const real = filesystemAdapter({ dir, purgeInterval: 0 }, ctx)
    const inner = filesystemAdapter({ dir, purgeInterval: 0 }, ctx)
    const naive: CacheAdapter = {
      ...inner,
      // What a backend without a native touch might do: read the entry, then write it back.
      async touch(key, expiresAt) {
        const value = await inner.get(key)
        if (value === undefined) return false
        await new Promise((r) => setImmediate(r))
        await inner.set(key, value, expiresAt)
        return true
      },
    }
    const good = createCache({ adapter: real })
    const bad = createCache({ adapter: naive })
    expect(await staleAfterTouchRace(good, 'race', 24, 60_000)).toBe(0)
    expect(await staleAfterTouchRace(bad, 'race', 24, 60_000)).toBeGreaterThan(0)
    await good.close()
    await bad.close()
  })

  it('a set landing while a purge judges an expired entry is kept (the purge removes only what it judged)', async () => {
    const dir = freshDir()
    const clock = new FakeClock()
    const ctx = { now: clock.now, threshold: 0, emit: () => {} }
    const purger = filesystemAdapter({ dir, purgeInterval: 0 }, ctx)
    const writer = filesystemAdapter({ dir, purgeInterval: 0 }, ctx)
    await purger.set('k', 'old', clock.t + 1000)
    clock.advance(1000)
    const files = new EntryFiles(resolve(dir), { staleMs: 10_000, fileMode: 0o600, dirMode: 0o700 })
    let landed: unknown
    // What a purge does for an expired entry: judge it under its lock, then remove it. A set from another
    // process lands in between (here: from within the judgement, the one place in between).
    const removed = files.removeIf(keyRef('k').hash, 'header', (read) => {
      landed = writer.set('k', 'fresh', null)
      return typeof read === 'object' && read.header.expiresAt !== null && read.header.expiresAt <= clock.t
    })
    expect(removed).toBe(true)
    await landed
    expect(await writer.get('k')).toBe('fresh')
    await purger.close()
    await writer.close()
  })
})

describe('filesystem: symbolic links and strangers in the folder', () => {
  const ctx = (events: AdapterEvent[] = []) => ({ now: Date.now, threshold: 100, emit: (e: AdapterEvent) => events.push(e) })

  it('a shard folder replaced by a symbolic link: writes refuse it, clear, keys and purges never follow it', async () => {
    const dir = freshDir()
    const outside = freshDir()
    const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, ctx())
    const key = 'victim'
    const { hash } = keyRef(key)
    // Outside the cache: a file named like an entry of that shard, which clear() would remove if it went there.
    mkdirSync(outside, { recursive: true })
    const bait = join(outside, hash)
    await adapter.set(key, 'v', null)
    const entry = readFileSync(fileOf(dir, key))
    writeFileSync(bait, entry)
    rmSync(join(dir, hash.slice(0, 2)), { recursive: true })
    symlinkSync(outside, join(dir, hash.slice(0, 2)))
    expect(() => adapter.set(key, 'w', null)).toThrow(/symbolic link/)
    expect(() => adapter.increment(key, 1, null)).toThrow(/symbolic link/)
    const listed: string[] = []
    for await (const k of adapter.keys('')) listed.push(k)
    expect(listed).toEqual([])
    await adapter.clear('')
    await adapter.clear('vic')
    expect(await adapter.purgeExpired()).toBe(0)
    expect(readdirSync(outside)).toEqual([hash])
    expect(readFileSync(bait).equals(entry)).toBe(true)
    await adapter.close()
  })

  it('a planted link at the name of a temporary file makes no write land on its target', async () => {
    const dir = freshDir()
    const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, ctx())
    await adapter.set('warm', 'up', null)
    const target = join(base, `target-${n++}`)
    writeFileSync(target, 'precious')
    const file = fileOf(dir, 'k')
    mkdirSync(join(file, '..'), { recursive: true })
    // The next temporary names this adapter will use (one counter per adapter, from 1; 'warm' took 1).
    for (let i = 2; i < 10; i++) symlinkSync(target, `${file}.${process.pid}-${i}.tmp`)
    await adapter.set('k', 'value', null)
    await adapter.increment('n', 1, null)
    expect(readFileSync(target, 'utf8')).toBe('precious')
    expect(await adapter.get('k')).toBe('value')
    expect(lstatSync(file).isFile()).toBe(true)
    await adapter.close()
  })

  it('a link or a FIFO in the place of an entry is a miss (no hang), is removed, and its target is left alone', async () => {
    const dir = freshDir()
    const events: AdapterEvent[] = []
    const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, ctx(events))
    await adapter.set('a', '1', null)
    await adapter.set('b', '2', null)
    const target = join(base, `target-${n++}`)
    const entry = readFileSync(fileOf(dir, 'a'))
    writeFileSync(target, entry)
    rmSync(fileOf(dir, 'a'))
    symlinkSync(target, fileOf(dir, 'a'))
    rmSync(fileOf(dir, 'b'))
    execFileSync('mkfifo', [fileOf(dir, 'b')])
    expect(await adapter.get('a')).toBeUndefined()
    expect(await adapter.get('b')).toBeUndefined()
    expect(() => lstatSync(fileOf(dir, 'a'))).toThrow(/ENOENT/)
    expect(() => lstatSync(fileOf(dir, 'b'))).toThrow(/ENOENT/)
    expect(readFileSync(target).equals(entry)).toBe(true)
    expect(events.filter((e) => e.type === 'corrupt')).toHaveLength(2)
    await adapter.close()
  })

  it('a journal or state file replaced by a link never writes to its target', async () => {
    for (const name of ['cachekit-writes', 'cachekit-state']) {
      const dir = freshDir()
      await filesystemAdapter({ dir, purgeInterval: 0 }, ctx()).close()
      const target = join(base, `target-${n++}`)
      writeFileSync(target, 'precious')
      rmSync(join(dir, name), { force: true })
      symlinkSync(target, join(dir, name))
      try {
        const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, ctx())
        await adapter.ready?.()
        for (let i = 0; i < 5; i++) await adapter.set(`k${i}`, 'v', null)
        await adapter.purgeExpired()
        await adapter.close()
      } catch (error) {
        // Refusing the folder is an answer too; writing through the link is not.
        expect(String(error)).toMatch(/cache folder/)
      }
      expect(readFileSync(target, 'utf8')).toBe('precious')
    }
  })

  it('warns when the cache folder belongs to another user, even with mode 0700', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('only root can give a folder to another user (chown)')
    const dir = freshDir()
    mkdirSync(dir, { mode: 0o700 })
    chownSync(dir, 65534, 65534)
    const events: AdapterEvent[] = []
    const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, ctx(events))
    const warnings = events.filter((e) => e.type === 'warning').map((e) => (e as { message: string }).message)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/belongs to another user \(uid 65534/)
    await adapter.close()
    // A folder of one's own: no warning.
    const own: AdapterEvent[] = []
    await filesystemAdapter({ dir: freshDir(), purgeInterval: 0 }, ctx(own)).close()
    expect(own.filter((e) => e.type === 'warning')).toEqual([])
  })
})

describe('filesystem: forged headers', () => {
  it('a header claiming more than 4 GiB (or more than the file holds) is a miss, is removed and reported', async () => {
    const dir = freshDir()
    const events: AdapterEvent[] = []
    const adapter = filesystemAdapter({ dir, purgeInterval: 0 }, { now: Date.now, threshold: 100, emit: (e) => events.push(e) })
    for (const [key, keyLength, payloadLength] of [
      ['huge', 4, 0xffff_ffff],
      ['huge-key', 0xffff_ffff, 10],
      ['3gib', 4, 3 * 2 ** 30],
    ] as const) {
      await adapter.set(key, 'v', null)
      const file = fileOf(dir, key)
      const real = readFileSync(file)
      // Larger than one read (64 KiB), so that the claimed length is what would be allocated.
      const forged = Buffer.concat([real, Buffer.alloc(70 * 1024)])
      forged.writeUInt32LE(keyLength, 24)
      forged.writeUInt32LE(payloadLength, 28)
      writeFileSync(file, forged)
      expect(await adapter.get(key)).toBeUndefined()
      expect(() => lstatSync(file)).toThrow(/ENOENT/)
      // The key works again.
      await adapter.set(key, 'again', null)
      expect(await adapter.get(key)).toBe('again')
    }
    expect(events.filter((e) => e.type === 'corrupt')).toHaveLength(3)
    await adapter.close()
  })
})
