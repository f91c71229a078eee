/**
 * Test support for Redis: is one reachable and are redis-server and redis-cli installed (the policy of
 * servers.ts: skip with one loud line outside CI, fail under CI=true), a guard for the shared server at
 * REDIS_URL, and real redis-server processes started (and always stopped) by the tests that stop, kill or
 * restart a server. Nothing here writes to the shared server but the guard's own two keys.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '@redis/client'
import { afterAll, beforeAll, expect } from 'vitest'
import { uniquePrefix } from './prefix.js'
import { serverOrSkip } from './servers.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** True if a Redis answers PING at `url` within `ms` (after AUTH with the URL's user and password, if it has them). */
export function pingRedis(url: string, ms = 1000): Promise<boolean> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = createConnection({ host: u.hostname, port: Number(u.port || 6379) })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    socket.on('error', () => done(false))
    const auth = [u.username, u.password].filter((part) => part !== '').map((part) => decodeURIComponent(part))
    socket.on('connect', () => socket.write(u.password ? `AUTH ${auth.join(' ')}\r\nPING\r\n` : 'PING\r\n'))
    socket.on('data', (d) => d.toString().includes('PONG') && done(true))
  })
}

/**
 * Whether the tests `what` on the Redis at `url` can run (serverOrSkip): true if it answers PING within
 * 10 s (a loaded machine can be slow to accept); else one loud line outside CI, a failure under CI=true.
 */
export function redisOrSkip(what: string, url = REDIS_URL): Promise<boolean> {
  return serverOrSkip(what, `Redis at ${url}`, () => pingRedis(url, 10_000), 'start one (redis-server) or set REDIS_URL, then run this test file again')
}

/**
 * Whether the tests `what`, which start redis-servers of their own, can run (serverOrSkip): true if
 * redis-server and redis-cli are installed; else one loud line outside CI, a failure under CI=true.
 * `file` is the test file, for the line's command.
 */
export function redisServerOrSkip(what: string, file: string): Promise<boolean> {
  return serverOrSkip(what, 'redis-server and redis-cli', () => haveRedisServer() || 'redis-server and redis-cli are not installed', `install redis-server (apt-get install redis-server), then run: npx vitest run ${file}`)
}

/** How long the guard's keys live on the shared server if a run dies before it removes them. */
const GUARD_TTL_MS = 3_600_000

/**
 * Fails the calling test file if, while it ran, keys of another user of the shared Redis disappeared: a
 * test that clears more than its own prefix (an empty one, a FLUSHDB), or that sweeps a whole store (the
 * keyv bridge's purgeExpired, on a fake clock), deletes other files' keys at random moments, which shows up
 * elsewhere as a flaky test. Before the file's tests it writes two keys under a prefix of their own, both
 * kept by Redis for an hour: a plain one, and one in Keyv's envelope (`{"value":..,"expires":ms}`, as
 * `toKeyvStore` and @keyv/redis store entries) whose own expiry has passed, which only a store-wide purge
 * would delete. After the file's tests it checks that both are still there. Call it at the top level of the
 * file, once Redis is known to be up.
 */
export function guardSharedRedis(label: string, url = REDIS_URL): void {
  const prefix = uniquePrefix(`${label}-guard`)
  const keys = [`${prefix}plain`, `${prefix}keyv-entry`] as const
  const client = createClient({ url })
  const kept = { expiration: { type: 'PX', value: GUARD_TTL_MS } } as const
  beforeAll(async () => {
    await client.connect()
    await client.set(keys[0], 'another user', kept)
    await client.set(keys[1], JSON.stringify({ value: 'another user', expires: Date.now() }), kept)
  })
  afterAll(async () => {
    try {
      const missing = (await Promise.all(keys.map(async (k) => ((await client.exists(k)) === 1 ? [] : [k])))).flat()
      expect(missing, `keys of another user of the Redis at ${url} were deleted while ${label} ran: a test (of this file, or of another run on the same server) cleared or purged beyond its own prefix`).toEqual([])
    } finally {
      await client.unlink([...keys])
      await client.close()
    }
  })
}

/** True if redis-server and redis-cli are installed (the fault tests need them). */
export function haveRedisServer(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0
}

/** A port nobody listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

const running = new Set<ChildProcess>()
const dirs = new Set<string>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** A redis-server of the test's own on `port`, without persistence. Killed by `stopAll()` or at exit. */
export class RedisServer {
  process: ChildProcess | undefined
  readonly dir: string
  constructor(
    readonly port: number,
    readonly args: string[] = [],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'ck-redis-'))
    dirs.add(this.dir)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.args], {
      stdio: 'ignore',
    })
    this.process = child
    running.add(child)
    child.on('exit', () => running.delete(child))
    for (let i = 0; i < 250; i++) {
      if (await pingRedis(this.url, 200)) return this
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`redis-server did not start on port ${this.port}`)
  }

  /** Kill the server (SIGKILL by default: a crash) and wait until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.process
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
    this.process = undefined
  }

  /** Run redis-cli against this server; returns its trimmed output. */
  cli(...args: string[]): string {
    return redisCli(this.port, ...args)
  }

  async stop(): Promise<void> {
    await this.kill()
    dirs.delete(this.dir)
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout.trim()
}

/** Three masters of a Redis Cluster of the test's own, all slots assigned. Stop it with `stop()`. */
export async function startCluster(): Promise<{ servers: RedisServer[]; rootNodes: { url: string }[]; stop: () => Promise<void> }> {
  const servers: RedisServer[] = []
  const stop = async () => {
    for (const s of servers) await s.stop()
  }
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(await new RedisServer(await freePort(), ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no']).start())
    }
    const r = spawnSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`)
    for (let i = 0; i < 250; i++) {
      if (servers.every((s) => s.cli('CLUSTER', 'INFO').includes('cluster_state:ok'))) {
        return { servers, rootNodes: servers.map((s) => ({ url: s.url })), stop }
      }
      await new Promise((res) => setTimeout(res, 40))
    }
    throw new Error('the cluster did not reach cluster_state:ok')
  } catch (error) {
    await stop()
    throw error
  }
}

/** A master and one sentinel watching it as `mymaster`, both of the test's own. */
export async function startSentinel(withReplica = false): Promise<{ master: RedisServer; replica?: RedisServer; sentinelPort: number; stop: () => Promise<void> }> {
  const master = await new RedisServer(await freePort()).start()
  const replica = withReplica ? await new RedisServer(await freePort(), ['--replicaof', '127.0.0.1', String(master.port)]).start() : undefined
  const sentinelPort = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ck-sentinel-'))
  dirs.add(dir)
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`, 'sentinel down-after-milliseconds mymaster 1000', 'sentinel failover-timeout mymaster 5000', ''].join('\n'))
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  running.add(child)
  child.on('exit', () => running.delete(child))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
    dirs.delete(dir)
    await master.stop()
    await replica?.stop()
  }
  for (let i = 0; i < 250; i++) {
    const r = spawnSync('redis-cli', ['-p', String(sentinelPort), 'SENTINEL', 'get-master-addr-by-name', 'mymaster'], { encoding: 'utf8' })
    const knowsReplica = replica === undefined || spawnSync('redis-cli', ['-p', String(sentinelPort), 'SENTINEL', 'replicas', 'mymaster'], { encoding: 'utf8' }).stdout.includes(String(replica.port))
    if (r.status === 0 && r.stdout.includes(String(master.port)) && knowsReplica) return { master, replica, sentinelPort, stop }
    await new Promise((res) => setTimeout(res, 40))
  }
  await stop()
  throw new Error('the sentinel did not report its master')
}
