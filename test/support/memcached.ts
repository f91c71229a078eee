/**
 * Test support for memcached: real memcached processes of the tests' own, each on a free port of 127.0.0.1
 * (never a shared server), started, killed, paused and restarted by the tests; and whether the tests can
 * run here at all (the policy of servers.ts): outside CI a missing `memcached` binary or memjs driver skips
 * with one loud line; under CI=true it fails the run (.ci/run installs memcached; `npm ci` installs memjs).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it } from 'vitest'
import { freePort } from './redis.js'
import { serverOrSkip } from './servers.js'

export { freePort }

const running = new Set<ChildProcess>()
const dirs = new Set<string>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** True if `memcached` is installed. */
export function haveMemcached(): boolean {
  return spawnSync('memcached', ['-h']).status === 0
}

/** True if this memcached build has SASL (`-S`) and `saslpasswd2` is there to make its user database. */
export function haveSasl(): boolean {
  const help = spawnSync('memcached', ['-h'], { encoding: 'utf8' })
  return help.status === 0 && /enable-sasl/.test(help.stdout) && spawnSync('saslpasswd2', ['-v']).error === undefined
}

async function haveMemjs(): Promise<boolean> {
  const name = 'memjs'
  try {
    await import(name)
    return true
  } catch {
    return false
  }
}

/**
 * Whether the memcached tests `what` can run (serverOrSkip): the binary and the driver are there. Outside
 * CI they skip with one loud line when not, and one visible skipped test; under CI=true that is a failure.
 */
export async function memcachedOrSkip(what: string): Promise<boolean> {
  const missing = [haveMemcached() ? undefined : 'the memcached binary (apt-get install memcached)', (await haveMemjs()) ? undefined : 'the memjs driver (npm install)'].filter(
    (m) => m !== undefined,
  )
  const fix = 'install them, then run: npx vitest run test/adapters/memcached.test.ts test/memcached.test.ts'
  if (await serverOrSkip(what, 'memcached and memjs', () => missing.length === 0 || `${missing.join(' and ')} missing`, fix)) return true
  // One visible skipped test, so the file is not an empty suite and the report says what did not run.
  it.skip(`${what} (skipped: ${missing.join(' and ')} missing)`, () => {})
  return false
}

/** True once something accepts TCP connections on the port. */
function accepts(port: number, ms = 200): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    socket.on('error', () => done(false))
    socket.on('connect', () => done(true))
  })
}

/** A SASL user database and config for memcached `-S`, in a folder of its own. */
export interface SaslSetup {
  dir: string
  username: string
  password: string
}

/** Make a SASL PLAIN user for memcached (cyrus sasldb, read through SASL_CONF_PATH). */
export function makeSaslUser(username: string, password: string): SaslSetup {
  const dir = mkdtempSync(join(tmpdir(), 'ck-memcached-sasl-'))
  dirs.add(dir)
  const db = join(dir, 'sasldb2')
  const r = spawnSync('saslpasswd2', ['-p', '-a', 'memcached', '-c', '-f', db, username], { input: password })
  if (r.status !== 0) throw new Error(`saslpasswd2 failed: ${String(r.stderr)}`)
  // memcached drops root for `-u memcache`: the database must be readable by it.
  chmodSync(dir, 0o755)
  chmodSync(db, 0o644)
  writeFileSync(join(dir, 'memcached.conf'), `mech_list: plain\nsasldb_path: ${db}\n`)
  return { dir, username, password }
}

/** A memcached of the test's own on `port`. Killed at exit at the latest. */
export class MemcachedServer {
  process: ChildProcess | undefined

  constructor(
    readonly port: number,
    /** Extra arguments, e.g. `['-I', '4m']`. */
    readonly args: string[] = [],
    readonly sasl?: SaslSetup,
  ) {}

  static async start(args: string[] = [], sasl?: SaslSetup): Promise<MemcachedServer> {
    return new MemcachedServer(await freePort(), args, sasl).start()
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get url(): string {
    return `memcached://${this.address}`
  }

  async start(): Promise<this> {
    // memcached refuses to run as root without -u.
    const user = process.getuid?.() === 0 ? ['-u', 'memcache'] : []
    const sasl = this.sasl === undefined ? [] : ['-S']
    const child = spawn('memcached', ['-p', String(this.port), '-l', '127.0.0.1', '-U', '0', ...user, ...sasl, ...this.args], {
      stdio: 'ignore',
      env: this.sasl === undefined ? process.env : { ...process.env, SASL_CONF_PATH: this.sasl.dir },
    })
    this.process = child
    running.add(child)
    child.on('exit', () => running.delete(child))
    for (let i = 0; i < 250; i++) {
      if (child.exitCode !== null) break
      if (await accepts(this.port)) return this
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`memcached did not start on port ${this.port}`)
  }

  /** Kill the server (SIGKILL by default: a crash) and wait until it is gone. Its items are lost. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.process
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
    this.process = undefined
  }

  /** Kill it and start it again on the same port, empty. */
  async restart(): Promise<void> {
    await this.kill()
    await this.start()
  }

  /**
   * Stop it answering while the kernel keeps accepting connections for it (SIGSTOP), or let it go on
   * (SIGCONT). Resolves once the process is in that state (Linux: /proc/<pid>/stat).
   */
  async pause(paused: boolean): Promise<void> {
    const child = this.process
    if (child?.pid === undefined) return
    child.kill(paused ? 'SIGSTOP' : 'SIGCONT')
    for (let i = 0; i < 500; i++) {
      const state = /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${child.pid}/stat`, 'utf8'))?.[1]
      if ((state === 'T') === paused) return
      await new Promise((r) => setTimeout(r, 2))
    }
    throw new Error(`memcached on port ${this.port} did not ${paused ? 'stop' : 'continue'}`)
  }

  async stop(): Promise<void> {
    this.process?.kill('SIGCONT')
    await this.kill()
  }
}

/**
 * One command in memcached's text protocol, straight over a socket (not through cachekit or memjs), and
 * its reply up to `until` (by default the reply's end: a line for a meta command, `END` for a get).
 */
export function ascii(port: number, command: string | Buffer, until: RegExp = /(\r\n(END|HD[^\r]*|EN|NF|NS|EX|STORED|NOT_STORED|DELETED|NOT_FOUND)\r\n|^(EN|NF|HD[^\r]*|STORED|NOT_STORED|DELETED|NOT_FOUND|END|ERROR[^\r]*|CLIENT_ERROR[^\r]*|SERVER_ERROR[^\r]*)\r\n)$/): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let reply = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no reply from memcached on ${port} to ${String(command).slice(0, 40)}; got ${JSON.stringify(reply)}`))
    }, 5_000)
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on('connect', () => socket.write(command))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (until.test(reply)) {
        clearTimeout(timer)
        socket.end()
        resolve(reply)
      }
    })
  })
}
