/**
 * The MySQL / MariaDB backend beyond the conformance suite: prefix-safe clear beside another application's
 * rows, purge and the row bound, the foreign-table refusal, a closed port, connections killed mid-run,
 * timeouts and pool exhaustion, max_allowed_packet, credentials in errors, atomicity across sessions at
 * each isolation level with a control that loses updates. Tables have random names and are dropped at the end.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { mysqlAdapter } from '../adapters/mysql/index.js'
import type { AdapterContext, CacheAdapter } from '../src/adapter.js'
import { CacheBackendError, CacheConfigError, CacheTypeError, createCache, type Cache } from '../src/index.js'
import { FakeClock } from '../src/testing/index.js'
import { uniqueTableName } from './support/prefix.js'
import { freePort } from './support/redis.js'
import { mysql, MYSQL_URL, mysqlOrSkip, mysqlQuery, type MysqlPool } from './support/sql.js'

const tables: string[] = []
const users: string[] = []
const table = (tag: string) => {
  const t = uniqueTableName(tag)
  tables.push(t)
  return t
}
// Closed after each test: the server is shared, and its connections are few.
const open: (Cache | CacheAdapter)[] = []
const pools: MysqlPool[] = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
  for (const p of pools.splice(0)) await new Promise((resolve) => p.end(resolve))
})
afterAll(async () => {
  for (const t of tables) await mysqlQuery(`DROP TABLE IF EXISTS \`${t}\``)
  for (const u of users) await mysqlQuery(`DROP USER IF EXISTS '${u}'@'127.0.0.1', '${u}'@'localhost'`)
})

function cache(options: Record<string, unknown> = {}): Cache {
  const c = createCache({ type: 'mysql', url: MYSQL_URL, table: table('t'), ...options })
  open.push(c)
  return c
}

function adapter(options: Record<string, unknown>, context: Partial<AdapterContext> = {}): CacheAdapter {
  const a = mysqlAdapter({ url: MYSQL_URL, ...options }, { now: Date.now, threshold: 0, emit: () => {}, ...context })
  open.push(a)
  return a
}

function pool(config: Record<string, unknown> = {}, onConnection?: string): MysqlPool {
  const p = mysql.createPool({ uri: MYSQL_URL, ...config })
  if (onConnection !== undefined) p.on('connection', (c) => (c as { query(sql: string): void }).query(onConnection))
  pools.push(p)
  return p
}

const poolQuery = <T = unknown[]>(p: MysqlPool, sql: string, values?: unknown[]) =>
  new Promise<T>((resolve, reject) => p.query(sql, values, (error, result) => (error ? reject(error) : resolve(result as T))))

const rows = async (t: string): Promise<number> => Number(((await mysqlQuery<{ n: number }[]>(`SELECT COUNT(*) AS n FROM \`${t}\``))[0])?.n)
const closedUrl = async (credentials = 'root'): Promise<string> => `mysql://${credentials}@127.0.0.1:${await freePort()}/test`

const run = await mysqlOrSkip('the mysql tests')

describe.runIf(run)('mysql: tables', () => {
  it('creates its table (InnoDB) with an index on expiry', async () => {
    const t = table('create')
    await cache({ table: t }).ready()
    const indexes = await mysqlQuery<{ INDEX_NAME: string; COLUMN_NAME: string }[]>(
      'SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX',
      [t],
    )
    expect(indexes.map((i) => `${i.INDEX_NAME}:${i.COLUMN_NAME}`)).toEqual([`${t}_expires_at:expires_at`, `${t}_key_head:key_head`, `${t}_key_head:key_hash`, 'PRIMARY:key_hash'])
    const engine = await mysqlQuery<{ ENGINE: string }[]>('SELECT ENGINE FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?', [t])
    expect(engine[0]?.ENGINE).toBe('InnoDB')
  })

  it('refuses a table of another shape at ready(), naming it, and leaves it as it was', async () => {
    const t = table('foreign')
    await mysqlQuery(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, name TEXT)`)
    await mysqlQuery(`INSERT INTO \`${t}\` VALUES (1, 'theirs')`)
    const before = await mysqlQuery(`SHOW CREATE TABLE \`${t}\``)
    const error = await cache({ table: t }).ready().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as Error).message).toContain(`The table ${t} of MySQL at`)
    expect((error as Error).message).toContain('its columns are id int NOT NULL PRIMARY KEY, name text')
    expect((error as Error).message).toContain('cachekit did not change it')
    expect(await mysqlQuery(`SHOW CREATE TABLE \`${t}\``)).toEqual(before)
    expect(await mysqlQuery(`SELECT name FROM \`${t}\``)).toEqual([{ name: 'theirs' }])
  })

  it('processes starting together create the table once', async () => {
    const t = table('together')
    const caches = Array.from({ length: 6 }, () => cache({ table: t, poolSize: 2 }))
    await Promise.all(caches.map((c) => c.ready()))
    await Promise.all(caches.map((c, i) => c.set(`k${i}`, i)))
    expect(await rows(t)).toBe(6)
  })
})

describe.runIf(run)('mysql: prefixes and sizes', () => {
  it("clear() removes only its own prefix: _ and % are characters, not wildcards, and another app's rows survive", async () => {
    const t = table('prefix')
    const mine = cache({ table: t, keyPrefix: 'a_b:' })
    const percent = cache({ table: t, keyPrefix: 'a%:' })
    const others = cache({ table: t, keyPrefix: '' })
    await mine.set('x', 1)
    await percent.set('y', 2)
    await others.setMany([['aXb:x', 3], ['a_bX', 4], ['aZ:y', 5], ['a%', 6]])
    await mysqlQuery(`INSERT INTO \`${t}\` (key_hash, cache_key, value, is_text, expires_at) VALUES (UNHEX(SHA2('foreign', 256)), 'foreign', 'theirs', 1, NULL)`)
    await mine.clear()
    await percent.clear()
    expect(await mine.get('x')).toBeUndefined()
    expect(await percent.get('y')).toBeUndefined()
    const left: string[] = []
    for await (const k of others.keys()) left.push(k)
    expect(left.sort()).toEqual(['a%', 'aXb:x', 'aZ:y', 'a_bX', 'foreign'])
  })

  it('a prefix longer than the indexed head of a key is still exact', async () => {
    const t = table('longprefix')
    const long = 'p'.repeat(300)
    const mine = cache({ table: t, keyPrefix: `${long}:` })
    const other = cache({ table: t, keyPrefix: `${long}X` })
    await mine.set('k', 1)
    await other.set('k', 2)
    const listed: string[] = []
    for await (const k of mine.keys()) listed.push(k)
    expect(listed).toEqual(['k'])
    await mine.clear()
    expect(await other.get('k')).toBe(2)
    expect(await mine.get('k')).toBeUndefined()
  })

  it('keys() pages through thousands of keys, each once; a key of 64 KiB works', async () => {
    const c = cache({ keyPrefix: 'many:' })
    await c.setMany(Array.from({ length: 2500 }, (_, i) => [`k${i}`, i] as const))
    const big = 'K'.repeat(64 * 1024)
    await c.set(big, 'big')
    const seen = new Set<string>()
    for await (const k of c.keys()) seen.add(k)
    expect(seen.size).toBe(2501)
    expect(await c.get(big)).toBe('big')
  })

  it('values of 4 MiB round-trip byte-exact; one beyond max_allowed_packet is refused and the connection lives on', async () => {
    const [{ max }] = await mysqlQuery<[{ max: number }]>('SELECT @@max_allowed_packet AS max')
    const serializer = { encode: (v: unknown) => v as string | Uint8Array, decode: (p: unknown) => p }
    // The very first call of a cache already knows the limit.
    const first = cache({ serializer })
    const firstErrors: Error[] = []
    first.on('error', (e) => firstErrors.push(e))
    expect(await first.set('huge', Buffer.alloc(max + 1))).toBe(false)
    expect(firstErrors[0]?.message).toContain("more than the server's max_allowed_packet")
    const c = cache({ serializer })
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    const bytes = randomBytes(4 * 1024 * 1024)
    await c.set('bytes', bytes)
    await c.set('text', 'é'.repeat(1024 * 1024))
    expect(Buffer.compare(Buffer.from((await c.get<Uint8Array>('bytes')) as Uint8Array), bytes)).toBe(0)
    expect(await c.get('text')).toBe('é'.repeat(1024 * 1024))
    expect(await c.set('huge', Buffer.alloc(max + 1))).toBe(false)
    expect(errors.at(-1)?.message).toContain("more than the server's max_allowed_packet")
    await expect(c.add('huge', Buffer.alloc(max + 1))).rejects.toThrow(/max_allowed_packet/)
    expect(await c.get('text')).toBe('é'.repeat(1024 * 1024))
  })
})

describe.runIf(run)('mysql: purge and the row bound', () => {
  it('purgeExpired() deletes expired rows in batches and keeps live ones; the timer purges too', async () => {
    const t = table('purge')
    const clock = new FakeClock()
    const a = adapter({ table: t, purgeBatchSize: 7, purgeInterval: 0 }, { now: clock.now })
    await a.ready?.()
    for (let i = 0; i < 50; i++) await a.set(`gone${i}`, 'x', clock.t + 1000)
    await a.set('kept', 'x', null)
    clock.advance(1000)
    expect(await a.purgeExpired()).toBe(50)
    expect(await rows(t)).toBe(1)
    const b = adapter({ table: t, purgeInterval: 20 }, { now: clock.now })
    await b.ready?.()
    await b.set('soon', 'x', clock.t + 10)
    clock.advance(10)
    await vi.waitFor(async () => expect(await rows(t)).toBe(1), { timeout: 10_000, interval: 20 })
  })

  it('threshold bounds the rows: the soonest to expire leave first, never-expiring rows last', async () => {
    const t = table('bound')
    const a = adapter({ table: t, purgeInterval: 0, purgeBatchSize: 5 }, { threshold: 20 })
    await a.ready?.()
    for (let i = 0; i < 10; i++) await a.set(`forever${i}`, 'x', null)
    for (let i = 0; i < 40; i++) await a.set(`ttl${i}`, 'x', Date.now() + 3_600_000 + i * 1000)
    await vi.waitFor(async () => expect(await rows(t)).toBeLessThanOrEqual(20), { timeout: 10_000, interval: 20 })
    for (let i = 0; i < 10; i++) expect(await a.has(`forever${i}`)).toBe(true)
    expect(await a.has('ttl39')).toBe(true)
    expect(await a.has('ttl0')).toBe(false)
  })
})

describe.runIf(run)('mysql: failures', () => {
  it('a closed port: ready() rejects at once (not after connectTimeout), reads miss, inc and add throw', async () => {
    const c = createCache({ type: 'mysql', url: await closedUrl(), connectTimeout: '60s' })
    open.push(c)
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    await expect(c.ready()).rejects.toBeInstanceOf(CacheBackendError)
    expect(await c.get('k')).toBeUndefined()
    expect(await c.set('k', 1)).toBe(false)
    await expect(c.inc('n')).rejects.toBeInstanceOf(CacheBackendError)
    await expect(c.add('a', 1)).rejects.toBeInstanceOf(CacheBackendError)
    expect(errors.length).toBeGreaterThanOrEqual(2)
  })

  it('no credential in errors, their causes, events or the CLI output (closed port, and a wrong password)', async () => {
    for (const url of [await closedUrl('app:s3cr3t%2Fpw'), MYSQL_URL.replace('//root@', '//root:s3cr3t%2Fpw@')]) {
      const c = createCache({ type: 'mysql', url })
      open.push(c)
      const seen: unknown[] = []
      c.on('error', (e) => seen.push(e))
      seen.push(await c.ready().catch((e: unknown) => e))
      await c.get('k')
      seen.push(await c.inc('n').catch((e: unknown) => e))
      expect(seen.length).toBeGreaterThanOrEqual(3)
      for (const e of seen) {
        const text = inspect(e, { depth: 10 })
        expect(text).not.toContain('s3cr3t')
        expect(text).toMatch(/MySQL at mysql:\/\/(app|root):\*\*\*@127\.0\.0\.1/)
      }
      const cli = spawnSync(process.execPath, ['--import', 'tsx', 'bin/cachekit.ts', 'get', 'k', '--url', url], { encoding: 'utf8', timeout: 60_000 })
      expect(cli.status).toBe(2)
      expect(cli.stderr).toContain('MySQL at')
      expect(`${cli.stdout}${cli.stderr}`).not.toContain('s3cr3t')
    }
  })

  it('connections killed mid-run (KILL from another session): later calls recover without a restart', async () => {
    const user = `ck_kill_${randomBytes(3).toString('hex')}`
    users.push(user)
    for (const host of ['127.0.0.1', 'localhost']) {
      await mysqlQuery(`CREATE USER '${user}'@'${host}' IDENTIFIED BY 'pw'`)
      await mysqlQuery(`GRANT ALL ON test.* TO '${user}'@'${host}'`)
    }
    const c = cache({ url: MYSQL_URL.replace('//root@', `//${user}:pw@`) })
    await c.set('n', 0)
    const state: { killedAt?: number } = {}
    const got: (number | Error)[] = []
    const counting = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (state.killedAt === undefined || got.length < state.killedAt + 40) got.push(await c.inc('n').catch((e: Error) => e))
      }),
    )
    await vi.waitFor(() => expect(got.length).toBeGreaterThan(20), { timeout: 20_000, interval: 5 })
    const ids = await mysqlQuery<{ ID: number }[]>('SELECT ID FROM information_schema.processlist WHERE USER = ?', [user])
    expect(ids.length).toBeGreaterThan(0)
    for (const { ID } of ids) await mysqlQuery(`KILL ${ID}`).catch(() => {})
    state.killedAt = got.length
    await counting
    const counted = got.filter((r): r is number => typeof r === 'number')
    expect(new Set(counted).size).toBe(counted.length)
    expect(await c.inc('n')).toBeGreaterThan(Math.max(...counted))
    expect(await c.set('after', 'ok')).toBe(true)
    expect(await c.get('after')).toBe('ok')
  })

  it('a statement stuck on a lock fails within commandTimeout, and the cache goes on', async () => {
    const t = table('lock')
    // The entry is written with the default timeout: only the call under the lock should meet the short one.
    await cache({ table: t }).set('n', 1)
    const c = cache({ table: t, commandTimeout: 500 })
    const holder = mysql.createConnection({ uri: MYSQL_URL })
    const q = (sql: string) => new Promise((resolve, reject) => holder.query(sql, [], (e, r) => (e ? reject(e) : resolve(r))))
    try {
      for (let round = 0; round < 3; round++) {
        await q('BEGIN')
        await q(`SELECT * FROM \`${t}\` FOR UPDATE`)
        const error = await c.inc('n').catch((e: unknown) => e)
        // The lock goes the moment the caller hears of the failure: a statement the server still ran would land now.
        await q('ROLLBACK')
        expect(error).toBeInstanceOf(CacheBackendError)
        // The server gave up first (max_statement_time at 80% of commandTimeout), not the client: nothing is left to land late.
        expect(((error as Error).cause as Error).message).toMatch(/max_statement_time exceeded/)
        await new Promise((resolve) => setTimeout(resolve, 200))
        expect(await c.get('n')).toBe(1)
      }
    } finally {
      holder.end()
    }
    expect(await c.inc('n')).toBe(2)
  })

  it("an exhausted pool is reported, not waited on forever; the app's pool is never ended", async () => {
    const p = pool({ connectionLimit: 1 })
    const c = createCache({ type: 'mysql', pool: p as never, table: table('pool'), commandTimeout: 300 })
    await c.ready()
    const held = await new Promise<{ release(): void }>((resolve, reject) =>
      (p as unknown as { getConnection(cb: (e: Error | null, c: { release(): void }) => void): void }).getConnection((e, conn) => (e ? reject(e) : resolve(conn))),
    )
    const error = await c.inc('n').catch((e: unknown) => e)
    held.release()
    expect(error).toBeInstanceOf(CacheBackendError)
    expect((error as Error).message).toContain('all 1 connections of the pool stayed busy')
    expect(await c.inc('n')).toBe(1)
    await c.close()
    expect(await poolQuery(p, 'SELECT 1 AS one')).toEqual([{ one: 1 }])
  })

  it("an app's pool without FOUND_ROWS gives the same answers (add, touch, delete)", async () => {
    const p = pool({ flags: ['-FOUND_ROWS'] })
    const c = createCache({ type: 'mysql', pool: p as never, table: table('flags') })
    expect(await c.add('a', 1, '1h')).toBe(true)
    expect(await c.add('a', 2, '1h')).toBe(false)
    expect(await c.get('a')).toBe(1)
    expect(await c.touch('a', 0)).toBe(true)
    expect(await c.touch('a', 0)).toBe(true)
    expect(await c.touch('missing', 0)).toBe(false)
    expect(await c.delete('a')).toBe(true)
    expect(await c.delete('a')).toBe(false)
    await c.close()
  })

  it('inc refuses non-integers and results beyond the safe range, leaving the value', async () => {
    const c = cache()
    await c.set('s', 'text')
    await expect(c.inc('s')).rejects.toBeInstanceOf(CacheTypeError)
    await c.set('max', Number.MAX_SAFE_INTEGER)
    await expect(c.inc('max')).rejects.toThrow(/safe integer range/)
    expect(await c.get('max')).toBe(Number.MAX_SAFE_INTEGER)
    expect(await c.dec('max')).toBe(Number.MAX_SAFE_INTEGER - 1)
    await c.set('min', -Number.MAX_SAFE_INTEGER)
    await expect(c.dec('min')).rejects.toThrow(/safe integer range/)
    expect(await c.inc('min', 5)).toBe(-Number.MAX_SAFE_INTEGER + 5)
  })
})

describe.runIf(run)('mysql: atomic across sessions', () => {
  for (const level of ['REPEATABLE READ', 'READ COMMITTED', 'SERIALIZABLE'] as const) {
    it(`inc, add and deleteIfEquals from 8 pools at ${level}: exactly 1..400, one add, one release`, async () => {
      const t = table('atomic')
      const setLevel = `SET SESSION TRANSACTION ISOLATION LEVEL ${level}`
      const own = Array.from({ length: 8 }, () => pool({ connectionLimit: 2 }, setLevel))
      const shown = await poolQuery<{ level: string }[]>(own[0] as MysqlPool, 'SELECT @@tx_isolation AS level')
      expect(shown[0]?.level).toBe(level.replace(' ', '-'))
      const caches = own.map((p) => {
        const c = createCache({ type: 'mysql', pool: p as never, table: t })
        open.push(c)
        return c
      })
      await Promise.all(caches.map((c) => c.ready()))
      const counts = (await Promise.all(caches.map((c) => Promise.all(Array.from({ length: 50 }, () => c.inc('n')))))).flat()
      expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1))
      const adds = await Promise.all(caches.map((c, i) => c.add('once', i)))
      expect(adds.filter(Boolean)).toHaveLength(1)
      await caches[0]?.set('lease', 'token')
      const a = mysqlAdapter({ pool: own[1] as never, table: t }, { now: Date.now, threshold: 0, emit: () => {} })
      const b = mysqlAdapter({ pool: own[2] as never, table: t }, { now: Date.now, threshold: 0, emit: () => {} })
      open.push(a, b)
      await Promise.all([a.ready?.(), b.ready?.()])
      const released = await Promise.all([a.deleteIfEquals?.('lease', '"token"'), b.deleteIfEquals?.('lease', '"token"')])
      expect(released.filter(Boolean)).toHaveLength(1)
    })
  }

  it('control: a read-then-write increment over 8 pools loses updates (so the test above can fail)', async () => {
    const t = table('control')
    await cache({ table: t }).set('n', 0)
    const own = Array.from({ length: 8 }, () => pool({ connectionLimit: 2 }))
    // The first read of every pool waits for the others' before it writes, so the reads overlap for certain
    // (left to the scheduler, a loaded machine can run the increments nearly one after another); the rest run
    // as they come.
    let arrived = 0
    let allRead: () => void = () => {}
    const barrier = new Promise<void>((resolve) => (allRead = resolve))
    const naive = async (p: MysqlPool, first: boolean) => {
      const read = await poolQuery<{ v: string }[]>(p, `SELECT CAST(value AS CHAR) AS v FROM \`${t}\` WHERE key_hash = UNHEX(SHA2('n', 256))`)
      const next = Number(read[0]?.v) + 1
      if (first && ++arrived === own.length) allRead()
      await (first ? barrier : new Promise((resolve) => setImmediate(resolve)))
      await poolQuery(p, `UPDATE \`${t}\` SET value = ? WHERE key_hash = UNHEX(SHA2('n', 256))`, [String(next)])
      return next
    }
    const results = (await Promise.all(own.map((p) => Promise.all(Array.from({ length: 50 }, (_, i) => naive(p, i === 0)))))).flat()
    expect(new Set(results).size).toBeLessThan(400)
  })
})
