/**
 * One deadline per public call on PostgreSQL and MySQL/MariaDB (issue 10, point 10): the commands of a
 * getOrSet or a memoized call share it (`operationTimeout`, else the backend's `commandTimeout`), a
 * command given less than `commandTimeout` fails after that, and `operationTimeout` bounds each statement.
 * The shared servers are never frozen: each test talks to them through a TCP proxy of its own
 * (support/proxy.ts) that holds the answers back (a frozen server) or passes each one on late (a slow one).
 *
 * And a short write never lands late: it runs under a server limit of 80% of what was left of its call's
 * deadline, so a statement stuck on a lock is given up by the server before the client stops waiting.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mysqlAdapter } from '../adapters/mysql/index.js'
import { postgresAdapter } from '../adapters/postgres/index.js'
import type { CacheAdapter } from '../src/adapter.js'
import type { Cache } from '../src/cache.js'
import { CacheBackendError, type CacheError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { uniqueTableName } from './support/prefix.js'
import { HoldingProxy } from './support/proxy.js'
import { mysql, MYSQL_URL, mysqlOrSkip, mysqlQuery, pg, POSTGRES_URL, postgresOrSkip, pgQuery } from './support/sql.js'
import { timed } from './support/timed.js'

/** The deadline of the tests (the cache's `commandTimeout`, as in the issue). */
const D = 1000
/** What a call may take beyond its one deadline on a loaded machine (as in deadline.test.ts). */
const SLACK = 1500
/** How late the slow server answers: four commands at this pace take 3.2 D, far past the bound. */
const SLOW = 0.8 * D

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A connection of the test's own that holds row locks on a table, behind the adapter's back. */
interface Holder {
  lock(table: string): Promise<void>
  release(): Promise<void>
  end(): Promise<void>
}

interface Backend {
  name: 'postgres' | 'mysql'
  port: number
  url: (port: number) => string
  adapter: typeof postgresAdapter | typeof mysqlAdapter
  drop: (table: string) => Promise<unknown>
  holder: () => Promise<Holder>
  /** The server's own words when it gave up on a statement. */
  cancelled: RegExp
}

const postgres: Backend = {
  name: 'postgres',
  port: Number(new URL(POSTGRES_URL).port || 5432),
  url: (port) => {
    const u = new URL(POSTGRES_URL)
    u.hostname = '127.0.0.1'
    u.port = String(port)
    return u.href
  },
  adapter: postgresAdapter,
  drop: (t) => pgQuery(`DROP TABLE IF EXISTS "${t}"`),
  async holder() {
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    client.on('error', () => {})
    await client.connect()
    return {
      async lock(t) {
        await client.query('BEGIN')
        await client.query(`SELECT * FROM "${t}" FOR UPDATE`)
      },
      release: async () => void (await client.query('ROLLBACK')),
      end: () => client.end(),
    }
  },
  cancelled: /canceling statement due to statement timeout/,
}

const mysqlBackend: Backend = {
  name: 'mysql',
  port: Number(new URL(MYSQL_URL).port || 3306),
  url: (port) => {
    const u = new URL(MYSQL_URL)
    u.hostname = '127.0.0.1'
    u.port = String(port)
    return u.href
  },
  adapter: mysqlAdapter,
  drop: (t) => mysqlQuery(`DROP TABLE IF EXISTS \`${t}\``),
  async holder() {
    const connection = mysql.createConnection({ uri: MYSQL_URL })
    connection.on('error', () => {})
    const q = (sql: string) => new Promise((resolve, reject) => connection.query(sql, [], (e, r) => (e ? reject(e) : resolve(r))))
    return {
      async lock(t) {
        await q('BEGIN')
        await q(`SELECT * FROM \`${t}\` FOR UPDATE`)
      },
      release: async () => void (await q('ROLLBACK')),
      end: () => new Promise<void>((resolve) => connection.end(() => resolve())),
    }
  },
  cancelled: /max_statement_time exceeded|maximum statement execution time exceeded|Lock wait timeout/i,
}

const runs = { postgres: await postgresOrSkip('the SQL deadline tests'), mysql: await mysqlOrSkip('the SQL deadline tests') }

for (const b of [postgres, mysqlBackend]) {
  describe.runIf(runs[b.name])(`one deadline per call on ${b.name}, through a proxy that holds or slows its answers`, () => {
    let proxy: HoldingProxy
    const tables: string[] = []
    const closing: (Cache | CacheAdapter)[] = []
    let errors: CacheError[] = []
    const table = () => {
      const t = uniqueTableName(`dl_${b.name}`)
      tables.push(t)
      return t
    }
    /**
     * Every statement a getOrSet miss sends, run once at full speed: a statement's first use on a connection
     * is prepared first (MySQL: one round trip more), which on the slow server alone takes past a deadline.
     */
    const warm = async (cache: Cache) => {
      await cache.ready()
      expect(await cache.getOrSet(`warm-${randomBytes(4).toString('hex')}`, () => 'w')).toBe('w')
      await cache.add('warm~lease', 'me')
      await cache.delete('warm~lease')
    }
    const open = (config: Record<string, unknown> = {}): Cache => {
      const c = createCache({ type: b.name, url: b.url(proxy.port), table: table(), connectTimeout: 2000, commandTimeout: D, ...config })
      c.on('error', (e) => errors.push(e))
      closing.push(c)
      return c
    }
    const adapter = (options: Record<string, unknown>): CacheAdapter => {
      const a = b.adapter({ url: b.url(proxy.port), table: table(), ...options } as never, { now: Date.now, threshold: 0, emit: () => {} })
      closing.push(a)
      return a
    }

    beforeAll(async () => {
      proxy = await new HoldingProxy(b.port).start()
    })
    afterEach(async () => {
      proxy.set({ kind: 'pass' })
      for (const c of closing.splice(0)) await c.close()
      errors = []
    })
    afterAll(async () => {
      await proxy?.stop()
      for (const t of tables) await b.drop(t).catch(() => {})
    })

    it('the adapter says its commandTimeout, and operationTimeout when that is shorter', () => {
      expect(adapter({ commandTimeout: 1234 }).commandTimeout).toBe(1234)
      const a = b.adapter({ url: b.url(proxy.port), table: table(), commandTimeout: 5000 } as never, { now: Date.now, threshold: 0, emit: () => {}, operationTimeout: 700 })
      closing.push(a)
      expect(a.commandTimeout).toBe(700)
    })

    it('a slow server (each answer 0.8 D late): getOrSet on a miss returns within one deadline, not a sum of them', async () => {
      const cache = open()
      await warm(cache)
      proxy.set({ kind: 'delay', ms: SLOW })
      const call = await timed(() => cache.getOrSet('report', () => 'built'))
      proxy.set({ kind: 'pass' })
      expect(call.error).toBeUndefined()
      expect(call.value).toBe('built')
      expect(call.ms).toBeLessThan(D + SLACK)
      // The second command was given what was left (0.2 D), not a whole commandTimeout, and said so.
      expect(errors.some((e) => /left of its call's deadline/.test(`${e.message} ${(e.cause as Error | undefined)?.message}`))).toBe(true)
    })

    it('a slow server: a memoized call returns within one deadline', async () => {
      const cache = open()
      await cache.ready()
      let calls = 0
      const double = cache.memoize(async function double(n: number) {
        calls++
        return n * 2
      })
      expect(await double(1)).toBe(2)
      proxy.set({ kind: 'delay', ms: SLOW })
      const call = await timed(() => double(21))
      proxy.set({ kind: 'pass' })
      expect(call.error).toBeUndefined()
      expect(call.value).toBe(42)
      expect(calls).toBe(2)
      expect(call.ms).toBeLessThan(D + SLACK)
    })

    it('control: on that slow server, the commands of a getOrSet miss each with a whole commandTimeout would take past the bound', async () => {
      // What a call did before its commands shared a deadline: get, add the lease, set, release it, each a
      // call of its own here (each one alone has a whole commandTimeout, and each answers 0.8 D late).
      const cache = open()
      await warm(cache)
      proxy.set({ kind: 'delay', ms: SLOW })
      // Their answers are not the point (on a loaded machine one may miss its own timeout, which only makes
      // the sum longer): the time the four take one after the other is.
      const sum = await timed(async () => {
        await cache.get('k')
        await cache.add('k~lease', 'me').catch(() => false)
        await cache.set('k', 'v')
        await cache.delete('k~lease')
      })
      proxy.set({ kind: 'pass' })
      expect(sum.error).toBeUndefined()
      expect(sum.ms).toBeGreaterThan(D + SLACK)
    })

    it('a frozen server (answers held): getOrSet on a miss returns within one deadline; with failOpen false it throws within it', async () => {
      const cache = open()
      const strict = open({ failOpen: false })
      await cache.ready()
      await strict.ready()
      proxy.set({ kind: 'hold' })
      const call = await timed(() => cache.getOrSet('k', () => 'v'))
      let ran = 0
      const thrown = await timed(() => strict.getOrSet('k', () => ++ran))
      proxy.set({ kind: 'pass' })
      expect(call.value).toBe('v')
      expect(call.ms).toBeLessThan(D + SLACK)
      expect(thrown.error).toBeInstanceOf(CacheBackendError)
      expect(ran).toBe(0)
      expect(thrown.ms).toBeLessThan(D + SLACK)
    })

    it('operationTimeout below commandTimeout bounds a single command too, and the message names it', async () => {
      const cache = open({ commandTimeout: 10 * D, operationTimeout: D })
      await cache.ready()
      proxy.set({ kind: 'hold' })
      const get = await timed(() => cache.get('k'))
      const call = await timed(() => cache.getOrSet('k', () => 1))
      const inc = await timed(() => cache.inc('n'))
      proxy.set({ kind: 'pass' })
      expect(get.ms).toBeLessThan(D + SLACK)
      expect(call.value).toBe(1)
      expect(call.ms).toBeLessThan(D + SLACK)
      expect(inc.error).toBeInstanceOf(CacheBackendError)
      expect(`${(inc.error as Error).message} ${((inc.error as Error).cause as Error | undefined)?.message}`).toContain('operationTimeout')
      expect(inc.ms).toBeLessThan(D + SLACK)
    })

    it('a command given less than commandTimeout fails after that time, naming what was left of the deadline', async () => {
      const a = adapter({ commandTimeout: D })
      await a.ready!()
      proxy.set({ kind: 'hold' })
      const get = await timed(() => Promise.resolve(a.get('k', 300)))
      const set = await timed(() => Promise.resolve(a.set('k', 'v', null, 300)))
      proxy.set({ kind: 'pass' })
      for (const r of [get, set]) {
        expect(r.error).toBeInstanceOf(Error)
        expect((r.error as Error).message).toMatch(/within the 300 ms left of its call's deadline/)
        expect(r.ms).toBeGreaterThanOrEqual(290)
        // Before the whole commandTimeout: what is left (300 ms) bounds it, not D. (Usually at most a sweep
        // period, D / 8, late; a loaded run saw 613 ms, so the bound checked is the claim's.)
        expect(r.ms).toBeLessThan(D)
      }
    })

    it('a short write stuck on a lock is given up by the server first: it never lands after its caller was told it failed', async () => {
      // One connection, so that the write after it shows that connection's usual limit is back.
      const a = adapter({ commandTimeout: 4 * D, poolSize: 1 })
      await a.ready!()
      const t = tables[tables.length - 1]!
      await a.set('k', 'old', null)
      const holder = await b.holder()
      try {
        await holder.lock(t)
        const start = performance.now()
        const write = await timed(() => Promise.resolve(a.set('k', 'new', null, 500)))
        expect(write.error).toBeInstanceOf(Error)
        expect(write.ms).toBeLessThan(500 + (4 * D) / 8 + 150)
        // The server's limit was 80% of the 500 ms left, so it usually answers first; on a loaded machine its
        // answer may come after the client's own timer. Either way the claim is what follows: the statement
        // the server gave up never lands.
        const said = `${(write.error as Error).message} ${((write.error as Error).cause as Error | undefined)?.message}`
        expect(said.match(b.cancelled) !== null || /within the 500 ms left of its call's deadline/.test(said), said).toBe(true)
        // The lock goes well past the 500 ms but before the usual server limit (3.2 s): a statement the
        // server still ran would land now.
        await sleep(1500 - (performance.now() - start))
        await holder.release()
        await sleep(300)
        expect(String(await a.get('k'))).toBe('old')
        // The connection's usual limit is back: a whole-timeout write waits out a lock of 1.2 s and lands.
        await holder.lock(t)
        const late = Promise.resolve(a.set('k', 'later', null))
        await sleep(1200)
        await holder.release()
        await late
        expect(String(await a.get('k'))).toBe('later')
      } finally {
        await holder.release().catch(() => {})
        await holder.end()
      }
    })

    it('a short write with almost nothing left is not sent at all', async () => {
      const a = adapter({ commandTimeout: D })
      await a.ready!()
      const before = String(await a.get('k'))
      const error = await Promise.resolve(a.set('k', 'v', null, 2)).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).message).toMatch(/was not sent|left of its call's deadline/)
      await sleep(50)
      expect(String(await a.get('k'))).toBe(before)
    })
  })
}
