import { redactUrl } from '../../src/redact.js'
import { CacheBackendError, CacheConfigError } from '../../src/errors.js'
import { requireDriver } from '../sql/options.js'
import { reasonOf, secretForms, withoutSecrets } from '../sql/secrets.js'
import { CallTimeouts, notSentError, serverStatementTimeout, shortStatementTimeout, shortTimeoutError, type CallControl } from '../sql/timeouts.js'
import type { MysqlPool } from './definition.js'

/** What a statement answers: rows (as arrays), or for a write the OK packet's counts. */
export interface MysqlResult {
  affectedRows?: number
  /** The statement's LAST_INSERT_ID(expr), if it set one: cachekit's statements report their outcome in it. */
  insertId?: number | string
  [row: number]: unknown[]
  length?: number
}

type Callback = (error: (Error & { fatal?: boolean; code?: string }) | null, result: unknown) => void

interface Connection {
  execute(options: { sql: string; rowsAsArray: boolean }, values: unknown[], callback: Callback): unknown
  query(options: { sql: string; rowsAsArray: boolean }, values: unknown[], callback: Callback): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  removeListener(event: 'error', listener: (error: Error) => void): unknown
}

interface PoolConnection extends Connection {
  release(): void
  destroy(): void
}

interface CorePool {
  getConnection(callback: (error: Error | null, connection: PoolConnection) => void): void
  end(callback: (error?: Error | null) => void): void
  on(event: string, listener: (...args: never[]) => void): unknown
  removeListener(event: string, listener: (...args: never[]) => void): unknown
  config?: { connectionLimit?: number; connectionConfig?: { host?: string; port?: number; database?: string; password?: unknown } }
  _allConnections?: { length: number }
}

interface MysqlDriver {
  createPool(config: Record<string, unknown>): CorePool
}

/** Load `mysql2`. @throws {CacheConfigError} saying to run `npm install mysql2` when it is missing. */
export function loadMysql(): MysqlDriver {
  return requireDriver<MysqlDriver>('mysql2', 'mysql')
}

/** A deadlock rolled the statement back: running it again is safe whatever it does (until the call's deadline). */
const RETRY_ALWAYS = new Set(['ER_LOCK_DEADLOCK'])
const LOST = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
])

/**
 * The server's own limits on cachekit's sessions, shorter than `commandTimeout` (see serverStatementTimeout):
 * MariaDB's `max_statement_time` bounds every statement; MySQL's `max_execution_time` bounds reads only, so
 * there `innodb_lock_wait_timeout` (whole seconds, at least 1) bounds a write's wait for a row lock.
 */
export function mysqlSessionSetup(mariadb: boolean, commandTimeout: number): string {
  return sessionLimits(mariadb, serverStatementTimeout(commandTimeout))
}

/**
 * `SET SESSION` of a server limit of `ms`. On MySQL (not MariaDB) a write's wait for a row lock is bounded in
 * whole seconds, at least 1 s, so there a limit under 1 s does not bound it.
 */
export function sessionLimits(mariadb: boolean, ms: number): string {
  if (mariadb) return `SET SESSION max_statement_time = ${ms / 1000}`
  return `SET SESSION max_execution_time = ${ms}, innodb_lock_wait_timeout = ${Math.max(1, Math.floor(ms / 1000))}`
}

/** The connection to the server was lost (KILL, a restart, a network failure), or could not be made. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: unknown; fatal?: unknown; message?: unknown } | undefined
  if (e?.fatal === true) return true
  if (typeof e?.code === 'string' && LOST.has(e.code)) return true
  return typeof e?.message === 'string' && /closed state|Connection lost/i.test(e.message)
}

export interface MysqlConnectionOptions {
  url: string | undefined
  pool: MysqlPool | undefined
  poolSize: number
  connectTimeout: number
  commandTimeout: number
  /** The option `commandTimeout` comes from, for messages: `operationTimeout` when the cache's is shorter. */
  timeoutName?: string
}

/**
 * The pool cachekit sends its statements on: its own (from `url`, with cachekit's timeouts and a
 * `program_name` connection attribute of `cachekit`), or the one the app passed. Every call is bounded by
 * `commandTimeout`, the wait for a free connection included (mysql2's pool would wait forever); a connection
 * that stops answering is destroyed, and one that got a connection only after its call had timed out is
 * given back unused, so that a timed-out write never runs late.
 */
export class MysqlConnection {
  /** Names the server in messages, e.g. `MySQL at mysql://app:***@db:3306/app`. */
  readonly where: string
  readonly #pool: CorePool | undefined
  readonly #single: Connection | undefined
  readonly #owned: boolean
  readonly #secrets: string[]
  readonly #calls: CallTimeouts
  readonly #setup: CallTimeouts
  readonly #onError = () => {}
  /** `SET SESSION ...` for each new connection of cachekit's own pool, once the server's kind is known. */
  sessionSetup: string | undefined
  /** Whether the server is MariaDB, once set-up has found out (for the limit of a short write). */
  mariadb: boolean | undefined
  readonly #timeoutName: string
  #closed = false

  constructor(o: MysqlConnectionOptions) {
    if (o.url !== undefined && o.pool !== undefined) {
      throw new CacheConfigError('Options `url` and `pool` both say where MySQL is: give only one of them.', { option: 'pool' })
    }
    this.#calls = new CallTimeouts(o.commandTimeout)
    this.#setup = new CallTimeouts(o.connectTimeout + o.commandTimeout)
    this.#timeoutName = o.timeoutName ?? 'commandTimeout'
    if (o.pool !== undefined) {
      const given = o.pool as unknown as Record<string, unknown>
      // mysql2/promise's pool wraps the callback pool as `.pool`; a single connection has `execute` and no `getConnection`.
      const core = (typeof given.getConnection === 'function' && typeof (given.pool as CorePool | undefined)?.getConnection === 'function' ? given.pool : given) as Partial<CorePool> & Partial<Connection>
      if (typeof core !== 'object' || core === null || (typeof core.getConnection !== 'function' && typeof core.execute !== 'function')) {
        throw new CacheConfigError('Option `pool` must be a mysql2 pool (or connection): `mysql.createPool({ uri })`.', { option: 'pool' })
      }
      this.#pool = typeof core.getConnection === 'function' ? (core as CorePool) : undefined
      this.#single = this.#pool === undefined ? (core as Connection) : undefined
      this.#single?.on('error', this.#onError)
      this.#owned = false
      const c = this.#pool?.config?.connectionConfig
      // The app's pool may carry a password too: it must not reach a message either.
      this.#secrets = secretForms(typeof c?.password === 'string' ? c.password : undefined)
      this.where = c?.host === undefined ? 'MySQL (the pool you passed)' : `MySQL at ${c.host}:${c.port ?? 3306}${c.database === undefined ? '' : `/${c.database}`}`
      return
    }
    if (o.url === undefined) throw new CacheConfigError('The mysql backend needs `url` (mysql://user:password@host:3306/database) or `pool`.', { option: 'url' })
    const u = new URL(o.url)
    this.#secrets = secretForms(u.password)
    this.where = `MySQL at ${redactUrl(o.url.replace(/\?.*$/, ''))}`
    const pool = loadMysql().createPool({
      host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')),
      port: u.port === '' ? 3306 : Number(u.port),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: decodeURIComponent(u.pathname.slice(1)),
      connectionLimit: o.poolSize,
      connectTimeout: o.connectTimeout,
      enableKeepAlive: true,
      charset: 'utf8mb4',
      // Operators see whose connections these are (performance_schema.session_connect_attrs).
      connectAttributes: { program_name: 'cachekit' },
      // `?ssl=true`: TLS with the system's CAs (checked by the definition: no other parameter is read).
      ...(u.searchParams.has('ssl') ? { ssl: {} } : {}),
    })
    pool.on('connection', ((connection: PoolConnection) => {
      // The server gives up on a statement that runs too long; which variable depends on the server.
      const sql = this.sessionSetup ?? mysqlSessionSetup(true, o.commandTimeout)
      connection.query({ sql, rowsAsArray: true }, [], (error) => {
        if (error !== null && this.sessionSetup === undefined) {
          connection.query({ sql: mysqlSessionSetup(false, o.commandTimeout), rowsAsArray: true }, [], () => {})
        }
      })
    }) as never)
    this.#pool = pool
    this.#single = undefined
    this.#owned = true
  }

  /** Whether cachekit owns the pool (and so sets its sessions up). */
  get owned(): boolean {
    return this.#owned
  }

  /** A driver error as cachekit reports it: the server named, no credential anywhere. */
  fail(error: unknown): Error {
    if (error instanceof CacheBackendError || error instanceof CacheConfigError) return withoutSecrets(error, this.#secrets)
    const e = withoutSecrets(error as Error, this.#secrets)
    return new Error(`${this.where}: ${reasonOf(e)}`, { cause: e })
  }

  #timeoutError(control: CallControl, ms: number, setup: boolean): Error {
    const which = setup ? `connectTimeout + ${this.#timeoutName}` : this.#timeoutName
    const limit = this.#pool?.config?.connectionLimit
    const open = this.#pool?._allConnections?.length
    if (control.phase === 'acquire' && limit !== undefined && open !== undefined && open >= limit) {
      return new Error(
        `${this.where}: all ${limit} connections of the pool stayed busy for ${ms} ms (${which}); raise \`poolSize\` (or your pool's connectionLimit) if this load is expected.`,
      )
    }
    if (control.phase === 'acquire') return new Error(`${this.where}: no connection within ${ms} ms (${which})`)
    return new Error(`${this.where} did not answer within ${ms} ms (${which})`)
  }

  /**
   * Run one statement (`execute`: prepared, binary protocol; `query`: the text protocol, for lists and
   * LIMIT), bounded by `commandTimeout` (or, in set-up, `connectTimeout + commandTimeout`), or by `timeout`
   * if less (what is left of its call's deadline). A deadlock is retried (the statement was rolled back); a
   * lost connection is retried once on a fresh one when `idempotent`.
   *
   * A `write` given less than the whole timeout must not land after cachekit stopped waiting for it: on
   * cachekit's own pool it runs under a server limit of 80% of what is left when it is sent (`SET SESSION`
   * on its connection, set back afterwards), and is not sent at all when that would be under a few ms.
   */
  run(kind: 'execute' | 'query', sql: string, values: unknown[], idempotent: boolean, setup = false, timeout?: number, write = false): Promise<MysqlResult> {
    if (this.#closed) return Promise.reject(new CacheBackendError(`${this.where}: the cache is closed.`))
    const timeouts = setup ? this.#setup : this.#calls
    const given = setup ? undefined : timeout
    return timeouts.run(
      async (control) => {
        let reconnected = false
        for (;;) {
          try {
            return await this.#once(kind, sql, values, control, write)
          } catch (error) {
            if (control.done || (error as { notSent?: boolean }).notSent === true) throw error
            if (RETRY_ALWAYS.has((error as { code?: string }).code ?? '')) {
              await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
              continue
            }
            if (!idempotent || reconnected || !isConnectionError(error)) throw this.fail(error)
            reconnected = true
          }
        }
      },
      (control) => (control.short ? shortTimeoutError(this.where, control, given!) : this.#timeoutError(control, timeouts.ms, setup)),
      given,
    )
  }

  #once(kind: 'execute' | 'query', sql: string, values: unknown[], control: CallControl, write: boolean): Promise<MysqlResult> {
    return new Promise((resolve, reject) => {
      const send = (connection: Connection, done: (error: Error | null) => void) => {
        control.phase = 'query'
        connection[kind]({ sql, rowsAsArray: true }, values, (error, result) => {
          done(error)
          if (error !== null) reject(error)
          else resolve(result as MysqlResult)
        })
      }
      if (this.#single !== undefined) return send(this.#single, () => {})
      ;(this.#pool as CorePool).getConnection((error, connection) => {
        if (error !== null) return reject(error)
        if (control.done) return connection.release()
        let gone = false
        control.onTimeout = () => {
          gone = true
          connection.destroy()
        }
        const finish = (failure: Error | null) => {
          if (gone) return
          // A fatal error already took the connection out of the pool.
          if (failure !== null && isConnectionError(failure)) connection.destroy()
          else connection.release()
        }
        if (!(write && control.short && this.#owned && this.sessionSetup !== undefined && this.mariadb !== undefined)) return send(connection, finish)
        const usual = this.sessionSetup
        const limit = shortStatementTimeout(control.deadline - performance.now())
        if (limit === undefined) {
          connection.release()
          return reject(Object.assign(notSentError(this.where, control.deadline - performance.now()), { notSent: true }))
        }
        control.phase = 'query'
        connection.query({ sql: sessionLimits(this.mariadb, limit), rowsAsArray: true }, [], (failure) => {
          if (failure !== null) {
            finish(failure)
            return reject(failure)
          }
          if (gone) return
          send(connection, (outcome) => {
            if (gone || (outcome !== null && isConnectionError(outcome))) return finish(outcome)
            // Back to cachekit's usual limit before the connection serves anyone else; dropped if that fails.
            connection.query({ sql: usual, rowsAsArray: true }, [], (restored) => {
              if (gone) return
              if (restored !== null) connection.destroy()
              else connection.release()
            })
          })
        })
      })
    })
  }

  /** Release the pool: end it if it is cachekit's, else only take cachekit's listener off it. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#calls.stop()
    this.#setup.stop()
    this.#single?.removeListener('error', this.#onError)
    if (!this.#owned || this.#pool === undefined) return
    const pool = this.#pool
    await new Promise<void>((resolve) => pool.end(() => resolve()))
  }
}
