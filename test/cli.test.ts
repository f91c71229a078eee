/**
 * The real `cachekit` binary (bin/cachekit.ts through tsx), run as a child process against real backends:
 * each command, its exit code, --json, and errors on stderr.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCache } from '../src/index.js'
import { COMMANDS } from '../bin/commands.js'
import type { Frame } from '../bin/watch.js'
import { sharedBackends, type FreshCache } from './support/shared-backends.js'
import { mysqlQuery, pgQuery } from './support/sql.js'
import { freePort, guardSharedRedis, pingRedis, REDIS_URL } from './support/redis.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// `clear` runs on the shared Redis: it must remove nothing but the keys under its --prefix.
if (await pingRedis(REDIS_URL)) guardSharedRedis('cli')
const SOURCE = join(ROOT, 'bin', 'cachekit.ts')
const BUILT = join(ROOT, 'dist', 'bin', 'cachekit.js')

function newest(dir: string): number {
  let t = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) t = Math.max(t, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return t
}

/**
 * The binary as users get it (dist/bin/cachekit.js) when the build is newer than every source file, as under
 * `npm test`, which builds first; else the source through tsx. Both are the same program; the built one
 * starts four times faster, which matters for a file that runs it a hundred times.
 */
const BIN: string[] =
  existsSync(BUILT) && statSync(BUILT).mtimeMs >= Math.max(...['bin', 'src', 'adapters'].map((d) => newest(join(ROOT, d))))
    ? [BUILT]
    : ['--import', 'tsx', SOURCE]

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The environment without any CACHE_* variable of the machine, plus `env`. */
function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CACHE_')))
  return { ...base, ...env }
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...BIN, ...args], { env: cleanEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

/**
 * Each test here starts CLI processes (up to 14 at once): on a loaded 2-core machine, as CI can be, starting
 * a node process takes seconds. What the tests claim is each run's output, not how long a start takes.
 */
const PROCESSES = { timeout: 120_000 }

describe('cachekit CLI, any backend', PROCESSES, () => {
  it('--help works for the program and for every command', async () => {
    const top = await cli(['--help'])
    expect(top.code).toBe(0)
    for (const c of COMMANDS) expect(top.stdout).toContain(c.usage)
    const runs = await Promise.all(COMMANDS.map((c) => cli([c.name, '--help'])))
    runs.forEach((r, i) => {
      expect(r.code).toBe(0)
      expect(r.stdout.startsWith(`Usage: cachekit ${COMMANDS[i]?.usage}`)).toBe(true)
      expect(r.stdout).toContain('--json')
    })
  })

  it('exits 2 with the message on stderr for usage errors and bad config', async () => {
    const [unknown, option, count, ttl, url, env, delta] = await Promise.all([
      cli(['frobnicate']),
      cli(['get', 'k', '--bogus', '--url', 'memory:']),
      cli(['get', '--url', 'memory:']),
      cli(['set', 'k', 'v', '--ttl', '60', '--url', 'memory:']),
      cli(['ping', '--url', 'mongo://nowhere']),
      cli(['ping'], { CACHE_TYPE: 'memroy' }),
      cli(['inc', 'k', 'x', '--url', 'memory:']),
    ])
    for (const r of [unknown, option, count, ttl, url, env, delta]) {
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(/^cachekit: /)
    }
    expect(unknown.stderr).toContain('unknown command "frobnicate"')
    expect(option.stderr).toContain("'--bogus'")
    expect(count.stderr).toContain('expected 1 argument(s), got 0')
    expect(ttl.stderr).toContain('needs a unit')
    expect(url.stderr).toContain('Unknown cache URL')
    expect(env.stderr).toContain('Did you mean `memory`')
    expect(delta.stderr).toContain('the delta must be an integer')
  })

  it('reads the config from CACHE_* variables when there is no --url', async () => {
    const r = await cli(['stats', '--json'], { CACHE_URL: 'memory:' })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ backend: 'memory', keys: 0 })
  })

  it('names CACHE_* variables the backend does not read, once, on stderr, without their values', async () => {
    const r = await cli(['ping'], { CACHE_TYPE: 'memory', CACHE_DIR: '/srv/nowhere', CACHE_REDIS_URL: 'redis://app:s3cret@10.0.0.1' })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^PONG from memory/)
    expect(r.stderr.match(/CACHE_DIR and CACHE_REDIS_URL are set but ignored/g)).toHaveLength(1)
    expect(r.stderr).not.toMatch(/nowhere|s3cret/)
  })

  it('get exits 1 on a miss, with nothing on stdout', async () => {
    const r = await cli(['get', 'nothing-here', '--url', 'memory:'])
    expect(r).toMatchObject({ code: 1, stdout: '' })
    expect(r.stderr).toContain('(miss) nothing-here')
    const j = await cli(['get', 'nothing-here', '--url', 'memory:', '--json'])
    expect(j.code).toBe(1)
    expect(JSON.parse(j.stdout)).toEqual({ key: 'nothing-here', hit: false })
  })

  describe('race', () => {
    let good: Server
    let broken: Server
    const serve = (counter: () => number) =>
      createServer((req, res) => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ value: req.url === '/create' ? 0 : counter(), worker: 1 }))
      })
    beforeAll(async () => {
      let n = 0
      good = serve(() => ++n)
      good.on('request', (req) => {
        if (req.url === '/create') n = 0
      })
      let m = 0
      broken = serve(() => (++m % 50) + 1) // wraps around: duplicates and gaps
      await Promise.all([once(good.listen(0, '127.0.0.1'), 'listening'), once(broken.listen(0, '127.0.0.1'), 'listening')])
    })
    afterAll(() => {
      good.close()
      broken.close()
    })
    const url = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/`

    it('exits 0 when the clients see exactly 1..N, and 1 with the duplicates and gaps when not', async () => {
      const ok = await cli(['race', url(good)])
      expect(ok.code).toBe(0)
      expect(ok.stdout).toContain('OK: they saw exactly 1..100, each once')
      const bad = await cli(['race', url(broken), '--json'])
      expect(bad.code).toBe(1)
      const result = JSON.parse(bad.stdout) as { ok: boolean; duplicates: unknown[]; missing: number[]; values: number[] }
      expect(result.ok).toBe(false)
      expect(result.values).toHaveLength(100)
      expect(result.duplicates.length).toBeGreaterThan(0)
      expect(result.missing).toContain(100)
    })

    it('never shows a password of the app URL, in text or JSON', async () => {
      const withPassword = url(good).replace('http://', 'http://app:Hunter2@')
      // One race after the other: each resets the app's one counter, so two at once would count each other's clients.
      const text = await cli(['race', withPassword, '--clients', '3'])
      const json = await cli(['race', withPassword, '--clients', '3', '--json'])
      expect(text.code).toBe(0)
      expect(text.stdout).toContain('http://app:***@127.0.0.1:')
      expect((JSON.parse(json.stdout) as { url: string }).url).toMatch(/^http:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/increment$/)
      expect(text.stdout + text.stderr + json.stdout + json.stderr).not.toContain('Hunter2')
    })

    it('exits 2 when nothing listens at the URL', async () => {
      const port = (good.address() as AddressInfo).port
      const closed = createServer()
      await once(closed.listen(0, '127.0.0.1'), 'listening')
      const free = (closed.address() as AddressInfo).port
      closed.close()
      expect(free).not.toBe(port)
      const r = await cli(['race', `http://127.0.0.1:${free}/`])
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('ECONNREFUSED')
    })
  })
})

describe('cachekit stats --watch', PROCESSES, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-watch-'))
  const env = { CACHE_URL: `sqlite:${join(dir, 'watch.sqlite')}`, CACHE_KEY_PREFIX: 'app:' }
  const apps: ChildProcess[] = []
  afterAll(() => {
    for (const app of apps) app.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  /** An app that publishes its counters every 200 ms (test/fixtures/publishing-app.ts), once it says it has. */
  async function startApp(): Promise<ChildProcess> {
    const app = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'publishing-app.ts')], { env: cleanEnv({ ...env, PUBLISH_MS: '200' }) })
    apps.push(app)
    let out = ''
    app.stdout.on('data', (d: Buffer) => (out += d.toString()))
    let err = ''
    app.stderr.on('data', (d: Buffer) => (err += d.toString()))
    let gone = false
    void once(app, 'exit').then(() => (gone = true))
    while (!out.includes('ready')) {
      if (gone) throw new Error(`the app exited before it was ready: ${err}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    return app
  }

  const frames = (r: Run): Frame[] => r.stdout.trim().split('\n').map((line) => JSON.parse(line) as Frame)

  it('--json: a line per refresh with each publishing process\'s ops/s and hit rate; a process that closed drops out', async () => {
    const [a, b] = await Promise.all([startApp(), startApp()])
    const watched = await cli(['stats', '--watch', '--json', '--interval', '300ms', '--count', '3'], env)
    expect(watched, watched.stderr).toMatchObject({ code: 0 })
    const seen = frames(watched)
    expect(seen).toHaveLength(3)
    const last = seen[2] as Frame
    expect(last.processes.map((p) => p.pid).sort()).toEqual([a.pid, b.pid].sort())
    for (const p of last.processes) {
      expect(p).toMatchObject({ backend: 'sqlite', errors: 0 })
      expect(p.opsPerSec).toBeGreaterThan(0)
      // Each app reads three hits to one miss.
      expect(p.hitRate).toBeCloseTo(0.75, 1)
    }
    expect(last.total.opsPerSec).toBeCloseTo(last.processes.reduce((n, p) => n + p.opsPerSec, 0), 6)
    expect(last.entries).toBe(1)
    // What the file holds: the one entry and the two processes' reports, which `entries` leaves out.
    expect(last.store).toMatchObject({ stored: 3, expired: 0 })
    // Closing a cache removes its report: the view no longer lists it.
    a.kill('SIGTERM')
    expect(await once(a, 'exit')).toEqual([0, null])
    const after = frames(await cli(['stats', '--watch', '--json', '--count', '1'], env))
    expect(after[0]?.processes.map((p) => p.pid)).toEqual([b.pid])
    b.kill('SIGTERM')
    await once(b, 'exit')
  })

  it('redraws in place on a terminal, and says when no process publishes', async () => {
    await startApp()
    const command = [process.execPath, ...BIN, 'stats', '--watch', '--interval', '200ms', '--count', '3'].map((a) => `'${a}'`).join(' ')
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...cleanEnv(env), COLUMNS: '120' } })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const [code] = (await once(child, 'exit')) as [number]
    expect(code).toBe(0)
    expect(out.split('\x1b[H\x1b[2J')).toHaveLength(4)
    expect(out).toContain('(Ctrl-C stops)')
    expect(out.match(/processes {2}1 publishing/g)).toHaveLength(3)
    expect(out).toMatch(/hit rate/)
    const quiet = await cli(['stats', '--watch', '--count', '1', '--prefix', 'nobody:'], env)
    expect(quiet.stdout).toContain('none publishes its counters: start the app with publishStats')
  })

  it('refuses a bad --interval or --count, and either without --watch', async () => {
    const runs = await Promise.all([
      cli(['stats', '--watch', '--interval', '5'], env),
      cli(['stats', '--watch', '--interval', '10ms'], env),
      cli(['stats', '--watch', '--count', '0'], env),
      cli(['stats', '--count', '2'], env),
    ])
    for (const r of runs) expect(r.code).toBe(2)
    expect(runs[0]?.stderr).toContain('needs a unit')
    expect(runs[1]?.stderr).toContain('--interval must be at least 100ms')
    expect(runs[2]?.stderr).toContain('--count must be a whole number >= 1')
    expect(runs[3]?.stderr).toContain('go with --watch')
  })
})

for (const backend of sharedBackends()) {
  describe(`cachekit CLI on ${backend.name}`, PROCESSES, () => {
    let usable = false
    let fresh: FreshCache = { url: '', prefix: '', env: {} }
    let prefix = ''
    /**
     * The cache under prefix `p` as the CLI is told of it: `--url`, or, for a SQL table of its own,
     * CACHE_URL with CACHE_SQL_TABLE (with --url the CLI reads no CACHE_* variable).
     */
    const target = (p: string): { args: string[]; env: Record<string, string> } => {
      const own = Object.keys(fresh.env).length > 0
      return {
        args: [...(own ? [] : ['--url', fresh.url]), ...(p === '' ? [] : ['--prefix', p])],
        env: own ? { CACHE_URL: fresh.url, ...fresh.env } : {},
      }
    }
    // Options first: `inc n -- -2` ends the options.
    const under = (p: string, args: string[], env: Record<string, string> = {}) => {
      const where = target(p)
      return cli([...where.args, ...args], { ...where.env, ...env })
    }
    const on = (args: string[], env: Record<string, string> = {}) => under(prefix, args, env)
    beforeAll(async () => {
      usable = await backend.available()
      fresh = backend.fresh()
      prefix = fresh.prefix
    })
    afterAll(async () => {
      if (usable) await on(['clear', '--yes'])
      await backend.cleanup()
    })

    it('set, get, --json and exit codes', async (t) => {
      if (!usable) return t.skip()
      const sets = await Promise.all([
        on(['set', 'greeting', 'hello world']),
        on(['set', 'user', '{"name":"Ada","tags":["x"]}']),
        on(['set', 'quoted', '"5"']),
        on(['set', 'forced', '42', '--string']),
      ])
      for (const r of sets) expect(r).toMatchObject({ code: 0, stderr: '' })
      const [greeting, user, quoted, forced, miss] = await Promise.all([
        on(['get', 'greeting']),
        on(['get', 'user', '--json']),
        on(['get', 'quoted', '--json']),
        on(['get', 'forced', '--json']),
        on(['get', 'absent']),
      ])
      expect(greeting).toMatchObject({ code: 0, stdout: 'hello world\n' })
      expect(JSON.parse(user.stdout)).toEqual({ key: 'user', hit: true, value: { name: 'Ada', tags: ['x'] } })
      expect(JSON.parse(quoted.stdout).value).toBe('5')
      expect(JSON.parse(forced.stdout).value).toBe('42')
      expect(miss).toMatchObject({ code: 1, stdout: '' })
    })

    it('inc counts atomically from what set stored, and refuses a non-integer', async (t) => {
      if (!usable) return t.skip()
      await Promise.all([on(['set', 'n', '5']), on(['set', 'text', 'hello'])])
      expect((await on(['inc', 'n'])).stdout).toBe('6\n')
      expect((await on(['inc', 'n', '--', '-2'])).stdout).toBe('4\n')
      // 12 concurrent CLI processes on one counter, beside the other calls: each result once.
      const [json, text, ...runs] = await Promise.all([
        on(['inc', 'n', '10', '--json']),
        on(['inc', 'text']),
        ...Array.from({ length: 12 }, () => on(['inc', 'parallel'])),
      ])
      expect(JSON.parse(json?.stdout ?? '')).toEqual({ key: 'n', value: 14 })
      expect(runs.map((r) => Number(r.stdout)).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
      if (text === undefined) throw new Error('no run')
      expect(text.code).toBe(2)
      expect(text.stderr).toContain('not an integer')
    })

    it('del, keys with a glob, and --json lists', async (t) => {
      if (!usable) return t.skip()
      await Promise.all(['user:1', 'user:2', 'order:1'].map((k) => on(['set', k, '1'])))
      const [keys, all] = await Promise.all([on(['keys', 'user:*']), on(['keys', '--json'])])
      expect(keys.code).toBe(0)
      expect(keys.stdout.trim().split('\n').sort()).toEqual(['user:1', 'user:2'])
      expect(JSON.parse(all.stdout) as string[]).toContain('order:1')
      const del = await on(['del', 'user:1', 'user:404'])
      expect(del).toMatchObject({ code: 0, stdout: 'deleted 1 of 2 keys\n' })
      const [gone, left] = await Promise.all([on(['get', 'user:1']), on(['keys', 'user:?'])])
      expect(gone.code).toBe(1)
      expect(left.stdout).toBe('user:2\n')
    })

    it('ttl reports the time left, "never", and a miss', async (t) => {
      if (!usable) return t.skip()
      await Promise.all([on(['set', 'short', 'x', '--ttl', '1h']), on(['set', 'forever', 'x', '--ttl', '0'])])
      const [short, forever, miss] = await Promise.all([on(['ttl', 'short', '--json']), on(['ttl', 'forever', '--json']), on(['ttl', 'absent'])])
      expect(short.code).toBe(0)
      const left = (JSON.parse(short.stdout) as { ttlMs: number }).ttlMs
      expect(left).toBeGreaterThan(50 * 60_000)
      expect(left).toBeLessThanOrEqual(60 * 60_000)
      expect(JSON.parse(forever.stdout)).toMatchObject({ hit: true, ttlMs: null })
      expect(miss).toMatchObject({ code: 1, stdout: '' })
    })

    if (backend.name === 'redis') {
      it('ping exits 2 with the reason on stderr when nothing answers', async (t) => {
        if (!usable) return t.skip()
        const port = await freePort()
        const r = await cli(['ping', '--url', `redis://127.0.0.1:${port}`, '--timeout', '2s'])
        expect(r.code).toBe(2)
        expect(r.stdout).toBe('')
        expect(r.stderr).toContain(`cachekit: gave up after 2.0s: the cache from --url redis://127.0.0.1:${port} did not answer`)
      })
    }

    it('stats and ping', async (t) => {
      if (!usable) return t.skip()
      const [statsRun, ping] = await Promise.all([on(['stats', '--json']), on(['ping'])])
      const stats = JSON.parse(statsRun.stdout) as Record<string, unknown>
      expect(stats).toMatchObject({ backend: backend.name, prefix, shared: true })
      expect(stats.keys).toBeGreaterThan(0)
      expect(ping.code).toBe(0)
      expect(ping.stdout).toMatch(/^PONG from /)
    })

    it('purge removes expired entries', async (t) => {
      if (!usable) return t.skip()
      await Promise.all([on(['set', 'fleeting', 'x', '--ttl', '20ms']), on(['set', 'lasting', 'x'])])
      await new Promise((r) => setTimeout(r, 50))
      // The SQL backends tell by themselves what they store and what awaits the purge (stats reads it from
      // the table, with no process's help); the others leave it out.
      const inspects = backend.name === 'sqlite' || backend.name === 'postgres' || backend.name === 'mysql'
      const before = JSON.parse((await on(['stats', '--json'])).stdout) as { keys: number; stored?: number; bytes?: number; expired?: number }
      if (inspects) {
        expect(before.expired).toBe(1)
        expect(before.stored).toBeGreaterThanOrEqual(before.keys + 1)
        expect(before.bytes).toBeGreaterThan(0)
      } else expect(before).not.toHaveProperty('expired')
      const r = await on(['purge', '--json'])
      expect(r.code).toBe(0)
      // Redis expires entries itself (so a purge may find nothing); elsewhere the purge took the expired row,
      // and on PostgreSQL and MySQL (a table of this file's own) it is gone from the table.
      expect((JSON.parse(r.stdout) as { purged: number }).purged).toBeGreaterThanOrEqual(backend.name === 'redis' ? 0 : 1)
      expect((await on(['get', 'fleeting'])).code).toBe(1)
      const table = fresh.table
      if (table !== undefined) {
        const rows = async (key: string) => {
          const stored = Buffer.from(`${prefix}${key}`)
          return backend.name === 'postgres'
            ? Number((await pgQuery(`SELECT count(*)::int AS n FROM ${table} WHERE cache_key = $1`, [stored])).rows[0]?.n)
            : Number((await mysqlQuery<{ n: number }[]>(`SELECT count(*) AS n FROM ${table} WHERE cache_key = ?`, [stored]))[0]?.n)
        }
        expect(await rows('lasting')).toBe(1) // the query finds a stored key
        expect(await rows('fleeting')).toBe(0)
      }
      if (inspects) expect(JSON.parse((await on(['stats', '--json'])).stdout)).toMatchObject({ expired: 0, stored: before.stored! - 1 })
    })

    it('clear asks for --yes, then removes only keys under its prefix', async (t) => {
      if (!usable) return t.skip()
      // Each step's exit code is checked with its stderr, so a failed set or get is told apart from a clear
      // that removed too much.
      for (const r of await Promise.all([
        under(`${prefix}other:`, ['set', 'keep', 'me']),
        under(`${prefix}scoped:`, ['set', 'a', '1']),
        on(['set', 'mine', 'x']),
      ])) {
        expect(r, r.stderr).toMatchObject({ code: 0 })
      }
      const [refused, cleared] = await Promise.all([
        under(`${prefix}other:`, ['clear']),
        under(`${prefix}scoped:`, ['clear', '--yes', '--json']),
      ])
      expect(refused.code).toBe(2)
      expect(refused.stderr).toContain('--yes')
      expect(cleared.code).toBe(0)
      expect(JSON.parse(cleared.stdout)).toMatchObject({ cleared: 1 })
      // The refused clear removed nothing, and the scoped one left every other prefix alone.
      const [kept, mine, scoped] = await Promise.all([
        under(`${prefix}other:`, ['get', 'keep']),
        on(['get', 'mine']),
        under(`${prefix}scoped:`, ['keys']),
      ])
      expect(kept, kept.stderr).toMatchObject({ code: 0, stdout: 'me\n' })
      expect(mine, mine.stderr).toMatchObject({ code: 0 })
      expect(scoped).toMatchObject({ code: 0, stdout: '' })
    })

    it('clear shows a progress bar on a terminal for a large cache', async (t) => {
      if (!usable) return t.skip()
      const scoped = `${prefix}bulk:`
      const where = target(scoped)
      const filled = createCache({ url: fresh.url, keyPrefix: scoped, ...(fresh.table === undefined ? {} : { table: fresh.table }) })
      expect(await filled.setMany(Array.from({ length: 1500 }, (_, i) => [`k${i}`, i] as const))).toBe(true)
      await filled.close()
      const command = [process.execPath, ...BIN, 'clear', '--yes', ...where.args].map((a) => `'${a}'`).join(' ')
      // `script` gives the CLI a pseudo-terminal, as an operator's shell would.
      const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...cleanEnv(where.env), COLUMNS: '100' } })
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      const [code] = (await once(child, 'exit')) as [number]
      expect(code).toBe(0)
      expect(out).toMatch(/clearing \[#+-*\] +\d+% \d+\/1500/)
      expect(out).toContain('100% 1500/1500')
      expect(out).toContain('cleared 1500 keys')
      expect((await under(scoped, ['stats', '--json'])).stdout).toContain('"keys":0')
    })
  })
}
