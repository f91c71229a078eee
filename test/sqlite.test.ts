import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadSqliteDriver, prefixEnd, sqliteAdapter, SQLITE_APPLICATION_ID, type SqliteAdapterOptions } from '../adapters/sqlite/index.js'
import { addToPayload, type AdapterContext, type CacheAdapter } from '../src/adapter.js'
import { Cache } from '../src/cache.js'
import { configFromEnv, EMBEDDED_DEFAULT, resolveConfig } from '../src/config/index.js'
import { CacheBackendError, CacheConfigError, CacheTypeError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { FakeClock, runInProcesses } from '../src/testing/index.js'
import { inspectSqlite, sqliteDriversUnderTest } from './support/sqlite.js'

const DRIVERS = sqliteDriversUnderTest('the SQLite tests (test/sqlite.test.ts)')

const root = mkdtempSync(join(tmpdir(), 'cachekit-sqlite-proofs-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const fresh = (name = 'c.sqlite') => join(mkdtempSync(join(root, 't-')), name)
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
// Children may run in another folder, so tsx is passed by its location rather than by name.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

function spawnTs(script: string, env: Record<string, string>, cwd?: string): ChildProcessWithoutNullStreams {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CACHE_')))
  return spawn(process.execPath, ['--import', tsx, fixture(script)], { env: { ...base, ...env }, cwd, stdio: 'pipe' })
}

/** Resolves with the child's stdout and stderr when it exits 0; rejects otherwise. */
function finished(child: ChildProcessWithoutNullStreams): Promise<{ stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`child exited with ${code}\n${stderr}`)))),
  )
}

/** Resolves when the child has printed `line`. */
function printed(child: ChildProcessWithoutNullStreams, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes(`${line}\n`)) resolve()
    })
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before printing ${line}\n${err}`)))
  })
}

function adapter(options: SqliteAdapterOptions, context: Partial<AdapterContext> = {}): CacheAdapter {
  return sqliteAdapter(options, { now: Date.now, threshold: 0, emit: () => {}, ...context })
}

function rows(path: string, table = 'cachekit'): number {
  const db = inspectSqlite(path)
  try {
    return db.value(`SELECT count(*) FROM "${table}"`) as number
  } finally {
    db.close()
  }
}

/** The error a cache over `options` gives at `ready()`, or undefined if it opens. */
async function readyError(options: SqliteAdapterOptions): Promise<unknown> {
  const cache = createCache({ type: 'sqlite', purgeInterval: 0, ...options })
  try {
    await cache.ready()
    return undefined
  } catch (error) {
    return error
  } finally {
    await cache.close()
  }
}

for (const driver of DRIVERS) {
  describe(`sqlite on ${driver}`, () => {
    describe('sqlite: crash safety', () => {
      it('a writer killed with SIGKILL mid-write, 6 times over: every key reads as a whole value, and the lock is free', async () => {
        const path = fresh()
        for (let round = 0; round < 6; round++) {
          const child = spawnTs('sqlite-writer.ts', { CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: driver, CACHEKIT_START_GEN: String(round * 1_000) })
          const exit = new Promise((resolve) => child.on('exit', resolve))
          await printed(child, 'writing')
          // Let it write for a while (a different while each round) so the kill lands inside some write.
          await new Promise((r) => setTimeout(r, 20 + round * 37))
          child.kill('SIGKILL')
          await exit
        }
        const cache = createCache({ type: 'sqlite', driver, path, purgeInterval: 0 })
        await cache.ready()
        const errors: unknown[] = []
        cache.on('error', (e) => errors.push(e))
        const keys = [...Array.from({ length: 8 }, (_, i) => `batch:${i}`), ...Array.from({ length: 16 }, (_, i) => `single:${i}`)]
        let seen = 0
        for (const key of keys) {
          const v = await cache.get<{ gen: number; body: string; length: number }>(key)
          if (v === undefined) continue
          seen++
          expect(v.body).toHaveLength(v.length)
          expect(v.body).toBe(String.fromCharCode(97 + (v.gen % 26)).repeat(v.length))
        }
        // setMany is one transaction: the 8 batch keys always hold the same generation.
        const batch = await cache.getMany<{ gen: number }>(keys.slice(0, 8))
        expect(new Set(batch.map((v) => v?.gen)).size).toBe(1)
        for (let i = 0; i < 4; i++) {
          const bytes = await cache.get<Buffer>(`bytes:${i}`)
          if (bytes !== undefined) expect(bytes.every((b) => b === bytes[0])).toBe(true)
        }
        expect(seen).toBeGreaterThan(0)
        expect(errors).toEqual([])
        // Whatever the killed writers held is released: a write and an increment go through at once.
        const count = await cache.get<number>('count')
        expect(Number.isSafeInteger(count)).toBe(true)
        expect(await cache.inc('count')).toBe((count ?? 0) + 1)
        expect(await cache.add('after-crash', 1)).toBe(true)
        await cache.close()
        const db = inspectSqlite(path)
        expect(db.value('PRAGMA integrity_check')).toBe('ok')
        db.close()
      }, 60_000)
    })

    describe('sqlite: a new file opened by many processes at once', () => {
      it('8 processes creating the same new file together all open it and count 1..80', async () => {
        const path = fresh()
        const results = (await runInProcesses<number>({ type: 'sqlite', driver, path }, { kind: 'inc', key: 'n', count: 10 }, 8)).flat()
        expect(results.sort((a, b) => a - b)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1))
      }, 60_000)
    })

    describe('sqlite: purge', () => {
      it('10,000 short-TTL entries never read are gone after purgeExpired, deleted in batches that yield to the event loop', async () => {
        const path = fresh()
        const clock = new FakeClock()
        const cache = new Cache().init({ type: 'sqlite', driver, path, now: clock.now, threshold: 0, purgeInterval: 0, purgeBatchSize: 500 })
        await cache.setMany(Array.from({ length: 10_000 }, (_, i) => [`short:${i}`, i] as const), '1s')
        await cache.set('long', 'stays', 0)
        expect(rows(path)).toBe(10_001)
        clock.advance(1_000)
        let seenMidway: number | undefined
        const purging = cache.purgeExpired()
        setImmediate(() => (seenMidway = rows(path)))
        expect(await purging).toBe(10_000)
        // Other work ran while the purge was under way: it is done in steps, not in one long statement.
        expect(seenMidway).toBeGreaterThan(1)
        expect(seenMidway).toBeLessThan(10_001)
        expect(rows(path)).toBe(1)
        expect(await cache.get('long')).toBe('stays')
        await cache.close()
      })

      it('10,000 short-TTL entries never read are gone after the purge interval, on its own timer', async () => {
        const path = fresh()
        const clock = new FakeClock()
        const cache = new Cache().init({ type: 'sqlite', driver, path, now: clock.now, threshold: 0, purgeInterval: '20ms' })
        await cache.setMany(Array.from({ length: 10_000 }, (_, i) => [`short:${i}`, i] as const), '1s')
        await cache.set('long', 'stays', 0)
        expect(rows(path)).toBe(10_001)
        clock.advance(1_000)
        while (rows(path) > 1) await new Promise((r) => setTimeout(r, 20))
        expect(await cache.get('long')).toBe('stays')
        await cache.close()
      })

      it('expired rows are never returned, even before a purge', async () => {
        const clock = new FakeClock()
        const a = adapter({ driver, path: fresh(), purgeInterval: 0 }, { now: clock.now })
        await a.ready?.()
        a.set('k', 'v', clock.now() + 10)
        a.set('forever', 'f', null)
        clock.advance(10)
        expect(a.get('k')).toBeUndefined()
        expect(a.getMany(['k', 'forever'])).toEqual([undefined, 'f'])
        expect(a.has('k')).toBe(false)
        expect(a.touch('k', null)).toBe(false)
        expect(a.delete('k')).toBe(false)
        await a.close()
      })
    })

    describe('sqlite: threshold', () => {
      it('bounds the rows: expired rows go first, then the soonest to expire (with one TTL, the least recently written), then rows without expiry', async () => {
        const path = fresh()
        const clock = new FakeClock()
        const cache = new Cache().init({ type: 'sqlite', driver, path, now: clock.now, threshold: 100, purgeInterval: 0, defaultTtl: '1h' })
        await cache.setMany(Array.from({ length: 30 }, (_, i) => [`expired:${i}`, i] as const), '1s')
        clock.advance(1_000)
        await cache.setMany(Array.from({ length: 10 }, (_, i) => [`forever:${i}`, i] as const), 0)
        for (let i = 0; i < 90; i++) {
          clock.advance(1)
          await cache.set(`live:${i}`, i)
        }
        expect(rows(path)).toBe(100)
        expect(await cache.getMany(Array.from({ length: 90 }, (_, i) => `live:${i}`))).toEqual(Array.from({ length: 90 }, (_, i) => i))
        clock.advance(1)
        await cache.set('live:0', 'rewritten')
        for (let i = 0; i < 50; i++) {
          clock.advance(1)
          await cache.set(`new:${i}`, i)
        }
        expect(rows(path)).toBe(100)
        // live:0 was written again, so live:1..50 were the least recently written.
        expect(await cache.get('live:0')).toBe('rewritten')
        expect(await cache.getMany(['live:1', 'live:50', 'live:51', 'live:89', 'new:0', 'new:49'])).toEqual([undefined, undefined, 51, 89, 0, 49])
        expect(await cache.get('forever:0')).toBe(0)
        // With only rows that never expire left to remove, the first inserted go first.
        await cache.setMany(Array.from({ length: 100 }, (_, i) => [`last:${i}`, i] as const), 0)
        await cache.set('one-more', 1, 0)
        expect(rows(path)).toBe(100)
        expect(await cache.getMany(['forever:0', 'forever:9', 'last:0', 'last:99', 'one-more'])).toEqual([undefined, undefined, undefined, 99, 1])
        await cache.close()
      })

      it('a setMany far over the threshold is trimmed right after, in steps, with no further writes and no timer', async () => {
        const path = fresh()
        const cache = createCache({ type: 'sqlite', driver, path, threshold: 100, purgeInterval: 0, purgeBatchSize: 50, defaultTtl: '1h' })
        await cache.setMany(Array.from({ length: 1_000 }, (_, i) => [`k:${i}`, i] as const))
        expect(rows(path)).toBeGreaterThan(100)
        while (rows(path) > 100) await new Promise((r) => setTimeout(r, 5))
        expect(rows(path)).toBe(100)
        await cache.close()
      })

      it('a larger threshold is checked every 1% of writes: the slack is below 1% per writing process', async () => {
        const path = fresh()
        const cache = createCache({ type: 'sqlite', driver, path, threshold: 2_000, purgeInterval: 0, defaultTtl: '1h' })
        await cache.ready()
        const reader = inspectSqlite(path)
        let most = 0
        for (let i = 0; i < 5_000; i++) {
          await cache.set(`k:${i}`, i)
          most = Math.max(most, reader.value('SELECT count(*) FROM cachekit') as number)
        }
        reader.close()
        expect(most).toBeGreaterThan(2_000)
        expect(most).toBeLessThanOrEqual(2_000 + 19)
        expect(await cache.get('k:4999')).toBe(4999)
        await cache.close()
      })
    })

    describe('sqlite: values and increments', () => {
      it('stores text as TEXT and bytes as a BLOB; each comes back as the same kind, byte-exact', async () => {
        const path = fresh()
        const a = adapter({ driver, path, purgeInterval: 0 })
        await a.ready?.()
        const bytes = new Uint8Array([0, 255, 1, 128, 0])
        a.set('text', 'Grüße\u0000世界', null)
        a.set('bytes', bytes.subarray(1, 4), null)
        a.set('empty text', '', null)
        a.set('empty bytes', new Uint8Array(0), null)
        expect(a.get('empty text')).toBe('')
        // Bytes come back as a Uint8Array (a Buffer on better-sqlite3), as the adapter contract says.
        const empty = a.get('empty bytes')
        expect(empty).toBeInstanceOf(Uint8Array)
        expect((empty as Uint8Array).length).toBe(0)
        expect(a.get('text')).toBe('Grüße\u0000世界')
        const back = a.get('bytes')
        expect(back).toBeInstanceOf(Uint8Array)
        expect([...(back as Uint8Array)]).toEqual([255, 1, 128])
        await a.close()
        const db = inspectSqlite(path)
        expect(db.rows('SELECT key, typeof(value) AS kind FROM cachekit ORDER BY key')).toEqual([
          { key: 'bytes', kind: 'blob' },
          { key: 'empty bytes', kind: 'blob' },
          { key: 'empty text', kind: 'text' },
          { key: 'text', kind: 'text' },
        ])
        db.close()
      })

      it('increment follows addToPayload exactly: leading zeros and digit bytes count, anything else is refused and left as it was', async () => {
        const a = adapter({ driver, path: fresh(), purgeInterval: 0 })
        await a.ready?.()
        a.set('zeros', '007', null)
        expect(a.increment('zeros', 1, null)).toBe(8)
        a.set('digit-bytes', Buffer.from('-42'), null)
        expect(a.increment('digit-bytes', 2, null)).toBe(-40)
        expect(a.get('digit-bytes')).toBe('-40')
        const refused = ['12\u00003', ' 12', '1e3', '+5', '', '-', '12345678901234567890', 'spam']
        for (const value of refused) {
          a.set('bad', value, null)
          let expected: unknown
          try {
            addToPayload('bad', value, 1)
          } catch (e) {
            expected = e
          }
          expect(expected).toBeInstanceOf(CacheTypeError)
          expect(() => a.increment('bad', 1, null)).toThrow((expected as Error).message)
          expect(a.get('bad')).toBe(value)
        }
        a.set('edge', String(Number.MAX_SAFE_INTEGER), null)
        expect(() => a.increment('edge', 1, null)).toThrow(/beyond the safe integer range/)
        expect(a.get('edge')).toBe(String(Number.MAX_SAFE_INTEGER))
        expect(a.increment('edge', -1, null)).toBe(Number.MAX_SAFE_INTEGER - 1)
        a.set('unsafe', '9007199254740993', null)
        expect(() => a.increment('unsafe', -10, null)).toThrow(CacheTypeError)
        await a.close()
      })

      it('prefixEnd bounds exactly the keys that start with a prefix, in SQLite order', async () => {
        const a = adapter({ driver, path: ':memory:', purgeInterval: 0 })
        await a.ready?.()
        const keys = ['a', 'a\u0000', 'ab', 'a\uffff', 'a\u{10ffff}', 'a\u{10ffff}\u{10ffff}', 'b', '\u{10ffff}', '\u{10ffff}x', 'é', 'éa', 'ê']
        for (const k of keys) a.set(k, k, null)
        for (const prefix of ['a', 'a\u{10ffff}', '\u{10ffff}', 'é', '']) {
          const listed: string[] = []
          for await (const k of a.keys(prefix) as AsyncIterable<string>) listed.push(k)
          expect(listed.sort()).toEqual(keys.filter((k) => k.startsWith(prefix)).sort())
        }
        expect(prefixEnd('')).toBeInstanceOf(Buffer)
        await a.clear('a\u{10ffff}')
        expect(a.getMany(keys)).toEqual(keys.map((k) => (k.startsWith('a\u{10ffff}') ? undefined : k)))
        await a.close()
      })

      it('keys() lists more than one page, and clear() more than one batch', async () => {
        const a = adapter({ driver, path: fresh(), purgeInterval: 0, purgeBatchSize: 100 })
        await a.ready?.()
        a.setMany(Array.from({ length: 2_500 }, (_, i) => ({ key: `p:${i}`, value: String(i), expiresAt: null })))
        a.set('q', 'other', null)
        const listed = new Set<string>()
        for await (const k of a.keys('p:') as AsyncIterable<string>) listed.add(k)
        expect(listed.size).toBe(2_500)
        await a.clear('p:')
        expect(a.get('p:2499')).toBeUndefined()
        expect(a.get('q')).toBe('other')
        await a.close()
      })
    })

    describe('sqlite: busy', () => {
      it('a write waits out another process holding the lock, and is not lost', async () => {
        const path = fresh()
        const cache = createCache({ type: 'sqlite', driver, path, purgeInterval: 0 })
        await cache.ready()
        await cache.set('n', 41)
        const holder = spawnTs('sqlite-lock-holder.ts', { CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: driver, CACHEKIT_HOLD_MS: '400' })
        const done = finished(holder)
        await printed(holder, 'locked')
        expect(await cache.inc('n')).toBe(42)
        await done
        expect(await cache.get('n')).toBe(42)
        await cache.close()
      })

      it('a lock held longer than busyTimeout fails the write with a CacheBackendError and writes nothing', async () => {
        const path = fresh()
        const cache = createCache({ type: 'sqlite', driver, path, purgeInterval: 0, busyTimeout: '50ms' })
        await cache.ready()
        await cache.set('n', 1)
        // Held until told: a timed hold could end before a slow parent got to its write.
        const holder = spawnTs('sqlite-lock-holder.ts', { CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: driver })
        const done = finished(holder)
        await printed(holder, 'locked')
        const error = await cache.inc('n').catch((e: unknown) => e)
        holder.stdin.end('release\n')
        await done
        expect(error).toBeInstanceOf(CacheBackendError)
        expect(String((error as Error).message)).toMatch(/busyTimeout/)
        expect(await cache.get('n')).toBe(1)
        await cache.close()
      })
    })

    describe('sqlite: files that are not a cachekit database', () => {
      it('a SQLite database of another program: a clear error naming the file, and the file is unchanged', async () => {
        const path = fresh('app.db')
        const db = inspectSqlite(path, { write: true })
        db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann')")
        db.close()
        const before = sha(path)
        const error = await readyError({ driver, path })
        expect(error).toBeInstanceOf(CacheConfigError)
        expect((error as Error).message).toContain(path)
        expect((error as Error).message).toMatch(/another program.*users/)
        expect(sha(path)).toBe(before)
        expect(existsSync(`${path}-wal`)).toBe(false)
      })

      it('a table of another shape: a clear error naming the table and the file, and nothing is altered', async () => {
        const path = fresh()
        const cache = createCache({ type: 'sqlite', driver, path, purgeInterval: 0 })
        await cache.set('mine', 1)
        await cache.close()
        const db = inspectSqlite(path, { write: true })
        db.exec("CREATE TABLE other (id INTEGER PRIMARY KEY, data TEXT); INSERT INTO other (data) VALUES ('keep')")
        db.value('PRAGMA wal_checkpoint(TRUNCATE)')
        db.close()
        const before = sha(path)
        const error = await readyError({ driver, path, table: 'other' })
        expect(error).toBeInstanceOf(CacheConfigError)
        expect((error as Error).message).toContain(path)
        expect((error as Error).message).toMatch(/table other .*id INTEGER PK, data TEXT/)
        expect(sha(path)).toBe(before)
        const check = inspectSqlite(path)
        expect(check.rows('SELECT data FROM other')).toEqual([{ data: 'keep' }])
        check.close()
      })

      it('a file of random bytes, a truncated header and a SQLite header over garbage: a clear error, the file unchanged', async () => {
        const contents = [
          randomBytes(8192),
          Buffer.from('SQLite for'),
          Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), randomBytes(8176)]),
        ]
        for (const content of contents) {
          const path = fresh()
          writeFileSync(path, content)
          const error = await readyError({ driver, path })
          expect(error).toBeInstanceOf(CacheConfigError)
          expect((error as Error).message).toContain(path)
          expect((error as Error).message).toMatch(/not a (usable )?SQLite database/)
          expect(readFileSync(path).equals(content)).toBe(true)
        }
      })

      it('a zero-length file is an empty database to SQLite: it becomes a cachekit cache', async () => {
        const path = fresh()
        writeFileSync(path, '')
        const cache = createCache({ type: 'sqlite', driver, path, purgeInterval: 0 })
        await cache.set('k', 'v')
        expect(await cache.get('k')).toBe('v')
        await cache.close()
        const db = inspectSqlite(path)
        expect(db.value('PRAGMA application_id')).toBe(SQLITE_APPLICATION_ID)
        expect(db.value('PRAGMA journal_mode')).toBe('wal')
        db.close()
      })

      it('a folder at the path and a bad table name are config errors; a path under a plain file is a backend error naming it', async () => {
        const folder = mkdtempSync(join(root, 'dir-'))
        const error = await readyError({ driver, path: folder })
        expect(error).toBeInstanceOf(CacheConfigError)
        expect((error as Error).message).toMatch(/is a folder/)
        const plain = fresh('plain.txt')
        writeFileSync(plain, 'not a folder')
        const under = await readyError({ driver, path: join(plain, 'c.sqlite') })
        expect(under).toBeInstanceOf(CacheBackendError)
        expect((under as Error).message).toContain(join(plain, 'c.sqlite'))
        const bad = await readyError({ driver, path: fresh(), table: 'x; DROP TABLE y' })
        expect(bad).toBeInstanceOf(CacheConfigError)
        expect((bad as CacheConfigError).option).toBe('table')
      })

      it('parent folders are created as needed', async () => {
        const path = join(root, 'deep', 'er', 'still', 'c.sqlite')
        const cache = createCache({ url: `sqlite:${path}`, driver })
        await cache.set('k', 1)
        await cache.close()
        expect(existsSync(path)).toBe(true)
      })
    })

    describe('sqlite: a file that cannot be opened', () => {
      it('every later call reports why, not merely that the adapter is not ready', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'cachekit-sqlite-open-'))
        try {
          // A regular file where a folder of the path must be: the database can never be created there.
          writeFileSync(join(dir, 'blocker'), 'not a folder')
          const c = createCache({ type: 'sqlite', driver, path: join(dir, 'blocker', 'cache.sqlite') })
          const errors: string[] = []
          c.on('error', (error) => errors.push(error.message))
          const failure = await c.ready().then(() => undefined, (e: unknown) => e as Error)
          expect(failure).toBeInstanceOf(Error)
          expect(failure?.message).toContain('blocker')
          expect(await c.set('k', 1)).toBe(false)
          expect(errors).toHaveLength(1)
          expect(errors[0]).toContain('blocker')
          expect(errors[0]).not.toContain('before `ready()`')
          await c.close()
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      })
    })
  })
}

describe('sqlite: config', () => {
  it('URLs: relative, absolute and :memory:', () => {
    const path = (url: string) => resolveConfig(url).adapterOptions.path
    expect(resolveConfig('sqlite:./a/b.sqlite').type).toBe('sqlite')
    expect(path('sqlite:./a/b.sqlite')).toBe('./a/b.sqlite')
    expect(path('sqlite://rel.sqlite')).toBe('rel.sqlite')
    expect(path('sqlite:///var/tmp/c.sqlite')).toBe('/var/tmp/c.sqlite')
    expect(path('sqlite:/var/tmp/c.sqlite')).toBe('/var/tmp/c.sqlite')
    expect(path('sqlite::memory:')).toBe(':memory:')
    expect(() => resolveConfig('sqlite:')).toThrow(/has no path/)
    expect(() => resolveConfig({ url: 'sqlite://' })).toThrow(CacheConfigError)
  })

  it('CACHE_SQLITE_PATH selects sqlite; options are checked at init', () => {
    expect(configFromEnv({ CACHE_SQLITE_PATH: 'data/c.sqlite' })).toEqual({ type: 'sqlite', path: 'data/c.sqlite' })
    expect(() => resolveConfig({ type: 'sqlite', busyTimeout: true as unknown as number })).toThrow(/busyTimeout/)
    expect(() => resolveConfig({ type: 'sqlite', pth: 'x' } as never)).toThrow(/Did you mean `path`/)
  })

  it('a missing driver is a config error that says what to install', () => {
    const missing = { betterSqlite3: 'better-sqlite3-not-installed', node: 'node:sqlite-not-there' }
    expect(() => loadSqliteDriver('better-sqlite3', missing)).toThrow(CacheConfigError)
    expect(() => loadSqliteDriver('better-sqlite3', missing)).toThrow('npm install better-sqlite3-not-installed')
  })

  it(':memory: is not shared; a file is', async () => {
    const memory = adapter({ path: ':memory:' })
    const file = adapter({ path: fresh() })
    expect(memory.capabilities).toEqual({ shared: false, atomic: true, realClock: false })
    expect(file.capabilities).toEqual({ shared: true, atomic: true, realClock: false })
    await memory.close()
    await file.close()
  })
})

describe('sqlite: the embedded default', () => {
  it('is SQLite at .cache/cachekit.sqlite', () => {
    expect(EMBEDDED_DEFAULT).toEqual({ type: 'sqlite', path: '.cache/cachekit.sqlite' })
  })

  it('cache.init() with no CACHE_* variables creates .cache/cachekit.sqlite in the working directory, says so once, and two processes share it', async () => {
    const cwd = mkdtempSync(join(root, 'app-'))
    const runs = [0, 1].map(() => finished(spawnTs('embedded-child.ts', { CACHEKIT_COUNT: '100' }, cwd)))
    const outputs = await Promise.all(runs)
    const counts = outputs.flatMap((o) => JSON.parse(o.stdout.trim()) as number[])
    expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    const file = join(cwd, '.cache', 'cachekit.sqlite')
    expect(existsSync(file)).toBe(true)
    for (const { stderr } of outputs) {
      expect(stderr.match(/embedded default/g)).toHaveLength(1)
      expect(stderr).toContain(`sqlite at ${file}`)
    }
    expect(rows(file)).toBe(1)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(join(cwd, '.cache')).mode & 0o777).toBe(0o700)
  }, 60_000)
})
