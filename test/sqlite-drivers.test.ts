/**
 * The two SQLite drivers: how one is chosen, what is said when neither is there, and that they share files.
 * The tests that need a second Node (one with node:sqlite beside the Node 20 that better-sqlite3 is built
 * for) run it as a child process: see test/support/sqlite.ts for where that Node comes from.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadSqliteDriver } from '../adapters/sqlite/index.js'
import { resolveConfig } from '../src/config/index.js'
import { CacheConfigError } from '../src/errors.js'
import { createCache } from '../src/singleton.js'
import { inCI } from './support/servers.js'
import { nodeWithSqlite, whyNot } from './support/sqlite.js'

const root = mkdtempSync(join(tmpdir(), 'cachekit-sqlite-drivers-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const fresh = () => join(mkdtempSync(join(root, 't-')), 'c.sqlite')
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const HIDE = pathToFileURL(fixture('hide-better-sqlite3.mjs')).href
const MISSING = { betterSqlite3: 'better-sqlite3-not-installed', node: 'node:sqlite-not-there' }

interface Run {
  node: string
  env: Record<string, string>
  hide?: boolean
  cwd?: string
  /** Lines written to the child's stdin once it says "ready". */
  go?: Promise<void>
}

/** Run the driver fixture; resolves with its last stdout line parsed, rejects with its stderr. */
function run({ node, env, hide = false, cwd, go }: Run): { ready: Promise<void>; done: Promise<unknown> } {
  // CACHE_* would choose a backend; NODE_OPTIONS may hide better-sqlite3 already (.ci/run does on Node 22+).
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CACHE_') && k !== 'NODE_OPTIONS'))
  const child = spawn(node, [...(hide ? ['--import', HIDE] : []), '--import', tsx, fixture('sqlite-driver-child.ts')], { env: { ...base, ...env }, cwd, stdio: 'pipe' })
  let stdout = ''
  let stderr = ''
  let signalReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => (signalReady = resolve))
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c
    if (stdout.startsWith('ready\n')) signalReady()
  })
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  void go?.then(() => child.stdin.write('go\n'))
  const done = new Promise<unknown>((resolve, reject) =>
    child.on('exit', (code) => {
      const last = stdout.trim().split('\n').pop() ?? ''
      if (code === 0) resolve(JSON.parse(last))
      else reject(new Error(`${node} ${env.CACHEKIT_MODE} exited with ${code}\n${stderr}`))
    }),
  )
  return { ready, done }
}

/**
 * `value`, or: a failing test under CI, one loud line outside it, or (with `excluded`) one line saying
 * where the test runs instead.
 */
function needs<T>(what: string, value: T | undefined, missing: string, excluded?: string): T | undefined {
  if (value !== undefined) return value
  if (excluded !== undefined) console.warn(`\n!!! EXCLUDED ${what} on Node ${process.version}: ${excluded}\n`)
  else if (inCI) it(what, () => expect.fail(`${missing}, and CI is set.`))
  else console.warn(`\n!!! SKIPPING ${what}: ${missing}. Under CI=true this is a failure.\n`)
  return undefined
}

describe('sqlite drivers: choosing one', () => {
  it('with neither better-sqlite3 nor node:sqlite, the error names both fixes', () => {
    const error = (() => {
      try {
        return loadSqliteDriver(undefined, MISSING)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as Error).message).toContain('npm install better-sqlite3-not-installed')
    expect((error as Error).message).toContain('Node 22.13 or later')
    expect((error as Error).message).toContain(process.version)
  })

  it("driver: 'better-sqlite3' without it says to install it; driver: 'node' without node:sqlite says which Node", () => {
    expect(() => loadSqliteDriver('better-sqlite3', MISSING)).toThrow(/driver: 'better-sqlite3'.*npm install better-sqlite3-not-installed/)
    expect(() => loadSqliteDriver('node', MISSING)).toThrow(/driver: 'node'.*Node 22\.13 or later.*npm install better-sqlite3-not-installed/)
  })

  it('a driver that does not exist, or is not a string, or is misspelled, is a config error naming `driver`', async () => {
    const cache = createCache({ type: 'sqlite', path: fresh(), driver: 'sqlite3' as never })
    const error = await cache.ready().then(() => undefined, (e: unknown) => e)
    await cache.close()
    expect(error).toBeInstanceOf(CacheConfigError)
    expect((error as CacheConfigError).option).toBe('driver')
    expect((error as Error).message).toMatch(/'better-sqlite3' or 'node'.*"sqlite3"/)
    expect(() => resolveConfig({ type: 'sqlite', driver: 5 as never })).toThrow(/`driver` must be a string/)
    expect(() => resolveConfig({ type: 'sqlite', drvier: 'node' } as never)).toThrow(/Did you mean `driver`/)
  })
})

describe('sqlite drivers: in other processes', () => {
  const withSqlite = needs(
    'the SQLite driver tests that need a Node with node:sqlite',
    nodeWithSqlite(),
    'no Node here has node:sqlite (22.13+): .ci/run installs one into ~/.cache/cachekit-node/24, or set CACHEKIT_NODE_SQLITE to a Node 24 binary',
  )
  const hasNodeSqlite = whyNot('node') === undefined
  const without = needs(
    'the test of a Node without node:sqlite and without better-sqlite3',
    hasNodeSqlite ? undefined : process.execPath,
    'this Node has node:sqlite',
    hasNodeSqlite ? 'it needs a Node without node:sqlite; it runs in the Node 20 pass of .ci/run' : undefined,
  )
  const betterSqlite3Node = whyNot('better-sqlite3') === undefined ? process.execPath : undefined
  const both =
    withSqlite === undefined
      ? undefined
      : needs(
          'the tests of both drivers on one file',
          betterSqlite3Node === undefined ? undefined : { better: betterSqlite3Node, node: withSqlite },
          `better-sqlite3 does not run here (${whyNot('better-sqlite3')})`,
          process.env.CACHEKIT_SQLITE_DRIVERS?.includes('better-sqlite3') === false
            ? 'better-sqlite3 is not built for this Node; they run in the Node 20 pass of .ci/run, against a Node 24 child'
            : undefined,
        )

  if (withSqlite !== undefined) {
    it('with better-sqlite3 hidden, the default is node:sqlite, and cache.init() (the embedded default) counts on it', async () => {
      const cwd = mkdtempSync(join(root, 'app-'))
      const seen = await run({ node: withSqlite, env: { CACHEKIT_MODE: 'which' }, hide: true, cwd }).done
      expect(seen).toEqual({ driver: 'node', counts: [1, 2] })
      // The control: the same Node with better-sqlite3 visible picks it.
      expect(await run({ node: withSqlite, env: { CACHEKIT_MODE: 'pick' } }).done).toEqual({ driver: 'better-sqlite3' })
    }, 60_000)
  }

  if (without !== undefined) {
    it('on a Node without node:sqlite and with better-sqlite3 hidden, ready() names both fixes', async () => {
      const error = await run({ node: without, env: { CACHEKIT_MODE: 'which' }, hide: true, cwd: mkdtempSync(join(root, 'app-')) }).done.then(
        () => undefined,
        (e: Error) => e.message,
      )
      expect(error).toMatch(/needs better-sqlite3 or node:sqlite.*npm install better-sqlite3.*or use Node 22\.13 or later/)
    }, 60_000)
  }

  if (both !== undefined) {
    /** What a reader sees when `count` holds `count`, before it increments it. */
    const expected = (count: number) => ({
      values: ['héllo wörld 🔑', { a: 1, list: [true, null, 'x'], when: new Date(0).toJSON() }, 'under a key holding U+0000', 'no expiry', count, null],
      objectDate: true,
      ttlAboutAnHour: true,
      keys: ['count', 'forever', 'nul\u0000key', 'object', 'raw:bytes', 'raw:empty', 'raw:text', 'text'].sort(),
      next: count + 1,
      raw: [{ text: 'Grüße\u0000世界' }, { bytes: [0, 255, 128, 0], class: 'Uint8Array' }, { bytes: [], class: 'Uint8Array' }],
    })

    it('each driver reads what the other wrote: values, bytes, text holding U+0000, counters and expiry', async () => {
      for (const [writer, reader] of [
        ['better-sqlite3', 'node'],
        ['node', 'better-sqlite3'],
      ] as const) {
        const path = fresh()
        const nodeOf = (d: 'better-sqlite3' | 'node') => (d === 'node' ? both.node : both.better)
        await run({ node: nodeOf(writer), env: { CACHEKIT_MODE: 'write', CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: writer } }).done
        expect(await run({ node: nodeOf(reader), env: { CACHEKIT_MODE: 'read', CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: reader } }).done).toEqual(expected(5))
        // And back: the writer's driver reads the reader's increment.
        expect(await run({ node: nodeOf(writer), env: { CACHEKIT_MODE: 'read', CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: writer } }).done).toEqual(expected(6))
      }
    }, 120_000)

    it('processes on both drivers share one counter at once: 2 x 4 processes x 100 increments give 1..800', async () => {
      const path = fresh()
      let go: () => void = () => {}
      const started = new Promise<void>((resolve) => (go = resolve))
      const runs = (['better-sqlite3', 'node'] as const).flatMap((driver) =>
        Array.from({ length: 4 }, () =>
          run({ node: driver === 'node' ? both.node : both.better, env: { CACHEKIT_MODE: 'inc', CACHEKIT_SQLITE_PATH: path, CACHEKIT_SQLITE_DRIVER: driver, CACHEKIT_COUNT: '100' }, go: started }),
        ),
      )
      await Promise.all(runs.map((r) => r.ready))
      go()
      const results = (await Promise.all(runs.map((r) => r.done))) as number[][]
      expect(results.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 800 }, (_, i) => i + 1))
    }, 120_000)
  }
})
