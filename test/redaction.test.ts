/**
 * No credential in anything cachekit throws, emits or prints: errors, their causes and stacks (as
 * `util.inspect(err, { depth: 10 })` shows them, which is what `console.error(err)` prints), 'error' and
 * 'warning' events, stderr, and the CLI's output. Every URL-taking option and variable, each malformed form.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Cache, configFromEnv, createCache } from '../src/index.js'
import { ADAPTERS } from '../src/registry.js'
import { redactError, redactText, redactUrl, urlSecrets } from '../src/redact.js'
import { freePort, RedisServer, redisServerOrSkip } from './support/redis.js'

/** Pieces of the passwords below: none may appear anywhere. */
const SECRETS = ['Hunter2', 'Qz9x', 'Hunt3r']

/** A port nobody listens on, filled in before the tests run: a well-formed URL must not connect anywhere. */
let closed = 0

/** Each malformed form of a URL with a password, with `scheme` and a closed port on this machine. */
function forms(scheme: string): Record<string, string> {
  const host = `127.0.0.1:${closed}`
  return {
    'a password with /': `${scheme}://app:Hunter2/Qz9x@${host}`,
    'a non-numeric port': `${scheme}://app:Hunter2@127.0.0.1:abc`,
    'a bad IPv6 host': `${scheme}://app:Hunter2@[::1:${closed}`,
    'a password with @': `${scheme}://app:Hunt3r@Qz9x@${host}`,
    'a password with #': `${scheme}://app:Hunter2#Qz9x@${host}`,
    'a password with ?': `${scheme}://app:Hunter2?Qz9x@${host}`,
    'a password that reads as a port and a path': `${scheme}://app:6379/Qz9x@${host}`,
    'no // before the user': `${scheme}:app:Hunter2@${host}`,
    'a well-formed URL': `${scheme}://app:Hunter2@${host}`,
  }
}

/** Everything that could show a secret: the text, the stack, and the deep inspection of each thing seen. */
function shown(things: unknown[]): string {
  return things
    .map((t) => (typeof t === 'string' ? t : `${inspect(t, { depth: 10 })}\n${(t as Error)?.stack ?? ''}\n${String((t as Error)?.message)}`))
    .join('\n---\n')
}

function expectNoSecret(text: string, what: string): void {
  for (const s of SECRETS) expect(text.includes(s), `${what} shows ${JSON.stringify(s)}:\n${text}`).toBe(false)
}

/**
 * Run a cache's life with `config`: init (which may throw), ready (which may reject), one read, one counter,
 * close; collecting every error, event and console line on the way.
 */
async function lifeOf(config: unknown, env?: Record<string, string>): Promise<unknown[]> {
  const seen: unknown[] = []
  const warn = vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void seen.push(...args))
  const error = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void seen.push(...args))
  try {
    const cache = new Cache()
    cache.on('error', (e, info) => seen.push(e, info))
    cache.on('warning', (m) => seen.push(m))
    try {
      if (env !== undefined) {
        // As init() reads them, with short timeouts when they name Redis (no variable sets those).
        const fromEnv = configFromEnv(env)
        const redis = fromEnv?.type === 'redis' || /^rediss?:/.test(String(fromEnv?.url))
        cache.init({ ...fromEnv, ...(redis ? quick('redis') : {}) })
      } else cache.init(config as never)
    } catch (e) {
      seen.push(e)
      return seen
    }
    await cache.ready().catch((e: unknown) => seen.push(e))
    await cache.get('k').catch((e: unknown) => seen.push(e))
    await cache.inc('n').catch((e: unknown) => seen.push(e))
    await cache.close().catch((e: unknown) => seen.push(e))
    return seen
  } finally {
    warn.mockRestore()
    error.mockRestore()
  }
}

/** Options that keep a cache that does connect from waiting long. */
function quick(type: string): Record<string, unknown> {
  return type === 'redis' || type === 'keyv' ? { connectTimeout: 300, commandTimeout: 300 } : {}
}

// A file: or sqlite: URL that is accepted makes a folder or a file: keep them out of the worktree.
const cwd = process.cwd()
let sandbox = ''
beforeAll(async () => {
  closed = await freePort()
  sandbox = mkdtempSync(join(tmpdir(), 'ck-redact-'))
  process.chdir(sandbox)
})
afterAll(() => {
  process.chdir(cwd)
  rmSync(sandbox, { recursive: true, force: true })
})

describe('redactUrl and redactText', () => {
  it('hide everything between scheme:// and the last @, whether the URL parses or not', () => {
    for (const [form, url] of Object.entries(forms('redis'))) {
      expectNoSecret(redactUrl(url), form)
      // In free text only `scheme://` starts a URL (`user:bob@example.com` may be a key); a URL known from
      // the config is found through its secrets, whatever its form.
      const text = `failed: ${url} (again "${url}")`
      if (url.includes('//')) expectNoSecret(redactText(text), form)
      expectNoSecret(redactText(text, urlSecrets(url)), form)
    }
    expect(redactUrl('redis://app:Hunter2@host:6379/0')).toBe('redis://app:***@host:6379/0')
    expect(redactUrl('redis://app:Hunt3r@Qz9x@host:6379')).toBe('redis://app:***@host:6379')
    expect(redactUrl('rediss://:Hunter2@host')).toBe('rediss://:***@host')
    // A lone userinfo may be a token: all of it goes.
    expect(redactUrl('redis://Hunter2@host')).toBe('redis://***@host')
    // Nothing to hide: unchanged.
    for (const plain of ['redis://127.0.0.1:6379', 'sqlite:./data@2x.db', 'file:./cache', 'file:///var/cache@2', 'memory:']) expect(redactUrl(plain)).toBe(plain)
    for (const text of [
      'the key "user:bob@example.com" is not an integer',
      'at file:///app/node_modules/@scope/pkg/index.js:1:2',
      'see https://github.com/@someone and mailto:x@example.com',
    ]) {
      expect(redactText(text)).toBe(text)
    }
    expect(redactText('a: redis://app:Hunter2@h:1, b: rediss://:Qz9x@h')).toBe('a: redis://app:***@h:1, b: rediss://:***@h')
    expect(redactText('write redis://[user:password@]host:port')).toBe('write redis://[user:password@]host:port')
  })

  it('redactError copies an error whose message, stack, own fields or causes hold a secret, and keeps a clean one as it is', () => {
    const url = 'redis://app:Hunter2/Qz9x@host:6379'
    let raw: unknown
    try {
      new URL(url)
    } catch (e) {
      raw = e
    }
    const wrapped = new Error(`connecting to ${url}`, { cause: raw })
    const safe = redactError(wrapped)
    expectNoSecret(shown([safe]), 'a redacted error')
    expect(safe).toBeInstanceOf(Error)
    expect(((safe as Error).cause as Error).name).toBe('TypeError')
    expect((safe as Error).cause).toBeInstanceOf(TypeError)
    // A secret known from the config is hidden wherever it appears, not only in URL form.
    expectNoSecret(shown([redactError(new Error('AUTH Hunter2 failed'), ['Hunter2'])]), 'a known secret')
    const clean = new Error('connect ECONNREFUSED 127.0.0.1:1')
    expect(redactError(clean)).toBe(clean)
  })
})

describe('the url option of every backend type, and URL strings', () => {
  const types = ADAPTERS.map((d) => d.type)

  for (const type of types) {
    it(`type ${JSON.stringify(type)}: no malformed form shows its password`, async () => {
      const schemes = ADAPTERS.find((d) => d.type === type)?.schemes ?? ['redis']
      for (const scheme of new Set([...schemes, 'redis'])) {
        for (const [form, url] of Object.entries(forms(scheme))) {
          expectNoSecret(shown(await lifeOf({ type, url, ...quick(type) })), `{ type: '${type}', url: <${form}> }`)
        }
      }
    })
  }

  it('a URL string of every scheme: no malformed form shows its password', async () => {
    for (const scheme of ADAPTERS.flatMap((d) => d.schemes ?? [])) {
      for (const [form, url] of Object.entries(forms(scheme))) {
        // A Redis URL that parses would wait connectTimeout as a string: that one is tried as { url } only.
        const redis = scheme.startsWith('redis')
        if (!redis || form !== 'a well-formed URL') expectNoSecret(shown(await lifeOf(url)), `'${scheme}:' URL string <${form}>`)
        expectNoSecret(shown(await lifeOf({ url, ...(redis ? quick('redis') : {}) })), `{ url: <${form}> } (${scheme})`)
      }
    }
  })

  it('an accepted file: or sqlite: URL never turns a password into a folder or file name', () => {
    expectNoSecret(readdirSync(sandbox, { recursive: true }).join('\n'), 'the files created')
  })

  it('an option of the wrong kind holding a URL does not print it', async () => {
    const url = `redis://app:Hunter2@127.0.0.1:${closed}`
    for (const config of [{ type: 'redis', url: new URL(url) }, { type: 'redis', client: url }, { type: 'redis', clientOptions: url }, { type: 'redis', cluster: url }]) {
      expectNoSecret(shown(await lifeOf(config)), JSON.stringify(Object.keys(config)))
    }
    expectNoSecret(shown(await lifeOf(42 as never)), 'a number')
    // A URL pasted where a type or a duration goes.
    for (const pasted of [url, `redis:app:Hunter2@127.0.0.1:${closed}`]) {
      expectNoSecret(shown(await lifeOf({ type: pasted })), 'a URL as the type')
      expectNoSecret(shown(await lifeOf(undefined, { CACHE_TYPE: pasted })), 'a URL in CACHE_TYPE')
      expectNoSecret(shown(await lifeOf(undefined, { CACHE_TYPE: 'memory', CACHE_DEFAULT_TTL: pasted })), 'a URL in CACHE_DEFAULT_TTL')
    }
  })

  it('redis: clientOptions that contradict the URL (tls), and cluster root nodes, do not show it', async () => {
    for (const [form, url] of Object.entries(forms('redis'))) {
      expectNoSecret(shown(await lifeOf({ url, clientOptions: { socket: { tls: true } }, ...quick('redis') })), `tls mismatch, ${form}`)
      expectNoSecret(shown(await lifeOf({ type: 'redis', cluster: { rootNodes: [{ url }] }, ...quick('redis') })), `cluster rootNodes, ${form}`)
    }
  })

  it('keyv: a store module constructed with a URL does not show it', async () => {
    for (const [form, url] of Object.entries(forms('redis'))) {
      expectNoSecret(shown(await lifeOf({ type: 'keyv', store: { module: '@keyv/redis', options: url }, ...quick('keyv') })), `@keyv/redis, ${form}`)
    }
  })
})

describe('environment variables', () => {
  const urlVariables = ['CACHE_URL', ...ADAPTERS.flatMap((d) => Object.keys(d.env ?? {})).filter((v) => v.endsWith('_URL'))]

  it('covers every *_URL variable', () => {
    expect(urlVariables).toEqual(['CACHE_URL', 'CACHE_REDIS_URL', 'CACHE_POSTGRES_URL', 'CACHE_MYSQL_URL'])
  })

  for (const variable of urlVariables) {
    it(`${variable}: no malformed form shows its password`, async () => {
      for (const [form, url] of Object.entries(forms('redis'))) {
        expectNoSecret(shown(await lifeOf(undefined, { [variable]: url, CACHE_DEFAULT_TTL: '1m' })), `${variable}=<${form}>`)
        // With the type said too, and with another backend's type (the variable is then ignored, by name).
        expectNoSecret(shown(await lifeOf(undefined, { [variable]: url, CACHE_TYPE: 'redis' })), `${variable}=<${form}> CACHE_TYPE=redis`)
        expectNoSecret(shown(await lifeOf(undefined, { [variable]: url, CACHE_TYPE: 'memory' })), `${variable}=<${form}> CACHE_TYPE=memory`)
      }
    })
  }

  it('cache.init() reading process.env', async () => {
    vi.stubEnv('CACHE_URL', `redis://app:Hunter2/Qz9x@127.0.0.1:${closed}`)
    try {
      expectNoSecret(shown(await lifeOf(undefined)), 'init() with CACHE_URL')
    } finally {
      vi.unstubAllEnvs()
    }
  })
})

const canStartRedis = await redisServerOrSkip('the redaction tests of a Redis that refuses or is gone', 'test/redaction.test.ts')

describe.runIf(canStartRedis)('redis: errors and events while the server refuses or is gone', () => {
  let server: RedisServer | undefined
  afterAll(async () => {
    await server?.stop()
  })

  it('a closed port with a password in the URL: ready(), emitted errors, failed reads and counters', async () => {
    for (const url of [`redis://app:Hunter2@127.0.0.1:${closed}/0`, `redis://app:Hunt3r@Qz9x@127.0.0.1:${closed}`, `redis://:Hunter2@127.0.0.1:${closed}`]) {
      const seen = await lifeOf({ url, connectTimeout: 300, commandTimeout: 300 })
      expect(seen.length).toBeGreaterThan(0)
      expectNoSecret(shown(seen), url.replace(/Hunter2|Hunt3r|Qz9x/g, '<pw>'))
    }
  })

  it('a wrong password, and a server that dies under an open cache', async () => {
    server = await new RedisServer(await freePort()).start()
    // Set once it answers: the start-up check pings without a password.
    server.cli('CONFIG', 'SET', 'requirepass', 'Hunter2right')
    const wrong = await lifeOf({ url: `redis://default:Hunter2wrong@127.0.0.1:${server.port}`, connectTimeout: 500, commandTimeout: 300 })
    expect(wrong.length).toBeGreaterThan(0)
    expectNoSecret(shown(wrong), 'a wrong password')

    const seen: unknown[] = []
    // Room for a loaded machine on the server that is up: what this test claims is what the messages say.
    const cache = createCache({ url: `redis://default:Hunter2right@127.0.0.1:${server.port}`, connectTimeout: 500, commandTimeout: 2000 })
    cache.on('error', (e) => seen.push(e))
    cache.on('warning', (m) => seen.push(m))
    await vi.waitFor(() => cache.ready(), { timeout: 10_000, interval: 50 })
    expect(await cache.set('k', 1)).toBe(true)
    await server.kill()
    await vi.waitFor(() => expect(seen.length).toBeGreaterThan(0), { timeout: 5000, interval: 50 })
    await cache.get('k')
    await cache.inc('n').catch((e: unknown) => seen.push(e))
    await cache.close()
    expectNoSecret(shown(seen), 'a server gone')
  })
})

describe('the CLI', () => {
  const ROOT = fileURLToPath(new URL('..', import.meta.url))
  // Run in the sandbox folder: tsx by its full address, since it is not installed there.
  const BIN = ['--import', import.meta.resolve('tsx'), join(ROOT, 'bin', 'cachekit.ts')]
  const run = (args: string[], env: Record<string, string> = {}): Promise<string> =>
    new Promise((resolve) => {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CACHE_')))
      execFile(process.execPath, [...BIN, ...args], { cwd: sandbox, env: { ...clean, ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve(`exit ${String(error?.code ?? 0)}\n${stdout}\n${stderr}`),
      )
    })

  it('--url, CACHE_URL and CACHE_REDIS_URL: no malformed form shows its password', { timeout: 300_000 }, async () => {
    const runs: [string, () => Promise<string>][] = []
    for (const [form, url] of Object.entries(forms('redis'))) {
      runs.push([`--url <${form}>`, () => run(['stats', '--url', url, '--timeout', '2s'])])
      // The variables reach the CLI through configFromEnv, tested above with every form: here the forms
      // that get as far as connecting, and one that does not.
      if (!['a well-formed URL', 'a password with @', 'a password with /'].includes(form)) continue
      runs.push([`CACHE_URL=<${form}>`, () => run(['ping', '--timeout', '2s'], { CACHE_URL: url })])
      runs.push([`CACHE_REDIS_URL=<${form}>`, () => run(['ping', '--json', '--timeout', '2s'], { CACHE_REDIS_URL: url })])
    }
    // A typo of --url and the race command's target.
    runs.push(['--urll', () => run(['get', 'k', `--urll=redis://app:Hunter2@127.0.0.1:${closed}`])])
    runs.push(['race', () => run(['race', `http://app:Hunter2@127.0.0.1:${closed}`, '--clients', '1'])])
    // Four at a time: each is a Node process compiling TypeScript.
    const outputs: string[] = []
    for (let i = 0; i < runs.length; i += 4) outputs.push(...(await Promise.all(runs.slice(i, i + 4).map(([, go]) => go()))))
    for (const [i, [what]] of runs.entries()) {
      const text = outputs[i] ?? ''
      // The CLI's own failure (exit 2, its message on stderr), or a failed race (exit 1).
      expect(text, what).toMatch(/^exit 2\n[^]*cachekit: |^exit 1\n[^]*FAILED/)
      expectNoSecret(text, what)
    }
  })
})
