import { createHash } from 'node:crypto'
import { redactUrl } from '../../src/redact.js'
import { CacheBackendError, CacheConfigError } from '../../src/errors.js'
import { requireDriver } from '../sql/options.js'
import { reasonOf, secretForms, withoutSecrets } from '../sql/secrets.js'
import { CallTimeouts, notSentError, serverStatementTimeout, shortStatementTimeout, shortTimeoutError, type CallControl } from '../sql/timeouts.js'
import type { PostgresPool } from './definition.js'

/** A query as pg takes it: a named one is prepared once per connection. */
export interface PgQuery {
  name?: string
  text: string
  values?: unknown[]
  rowMode?: 'array'
}

/** What cachekit reads of a pg result. */
export interface PgResult {
  rows: unknown[][]
  rowCount: number | null
}

interface PgClient {
  query(query: PgQuery): Promise<PgResult>
  on(event: 'error', listener: (error: Error) => void): unknown
  removeListener(event: 'error', listener: (error: Error) => void): unknown
}

interface PgPoolClient extends PgClient {
  release(error?: Error | boolean): void
}

/** What cachekit uses of a pg Pool: a Client has `query` only. */
interface PgPool extends PgClient {
  readonly totalCount: number
  readonly waitingCount: number
  readonly options: { max?: number; host?: string; port?: number; database?: string; connectionString?: string; password?: unknown }
  connect(): Promise<PgPoolClient>
  end(): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
  on(event: 'connect', listener: (client: PgClient) => void): unknown
}

interface PgDriver {
  Pool: new (config: Record<string, unknown>) => PgPool
}

/** Load `pg`. @throws {CacheConfigError} saying to run `npm install pg` when it is missing. */
export function loadPg(): PgDriver {
  return requireDriver<PgDriver>('pg', 'postgres')
}

/**
 * Errors after which the statement had no effect, so that running it again is safe whatever it does: a
 * serialization failure (a session at REPEATABLE READ or SERIALIZABLE lost a race on the row) or a deadlock.
 * Retried until the call's deadline.
 */
const RETRY_ALWAYS = new Set(['40001', '40P01'])

/** The connection to the server was lost (terminated by an operator, a restart, a network failure). */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined
  const code = typeof e?.code === 'string' ? e.code : ''
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true
  if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code)) return true
  return typeof e?.message === 'string' && /Connection terminated|not queryable|Client was closed/.test(e.message)
}

/** `url` with `application_name` set (or prefixed) to `cachekit`, so that operators see whose connections these are. */
export function withApplicationName(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return url
  }
  const given = parsed.searchParams.get('application_name')
  if (given === null) return url
  if (given.startsWith('cachekit')) return url
  parsed.searchParams.set('application_name', `cachekit/${given}`)
  return parsed.href
}

/** The server, as messages name it: never a password. */
function describe(url: string | undefined, pool: PgPool | undefined): string {
  if (url !== undefined) return `PostgreSQL at ${redactUrl(url.replace(/\?.*$/, ''))}`
  const o = pool?.options
  if (o?.connectionString !== undefined) return `PostgreSQL at ${redactUrl(o.connectionString.replace(/\?.*$/, ''))}`
  if (o?.host !== undefined) return `PostgreSQL at ${o.host}:${o.port ?? 5432}${o.database === undefined ? '' : `/${o.database}`}`
  return 'PostgreSQL (the pool you passed)'
}

function passwordOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined
  try {
    const u = new URL(url)
    return u.password !== '' ? u.password : (u.searchParams.get('password') ?? undefined)
  } catch {
    return undefined
  }
}

/** A statement name unique to its text, so that caches over different tables can share one pool. */
export function statementName(text: string): string {
  return `cachekit_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`
}

export interface PgConnectionOptions {
  url: string | undefined
  pool: PostgresPool | undefined
  poolSize: number
  connectTimeout: number
  commandTimeout: number
  /** The option `commandTimeout` comes from, for messages: `operationTimeout` when the cache's is shorter. */
  timeoutName?: string
  /** Whether a commit on cachekit's own connections waits for the server's disk (`synchronous_commit`). */
  synchronousCommit: boolean
  /** Reports a lost connection once per outage (a pool error), never thrown. */
  onLost: (error: Error) => void
}

/**
 * The pool cachekit sends its statements on: its own (from `url`, with cachekit's timeouts and
 * `application_name`), or the one the app passed. Every call is bounded by `commandTimeout`, the wait for a
 * free connection included; a connection that stops answering is dropped from the pool.
 */
export class PgConnection {
  /** Names the server in messages, e.g. `PostgreSQL at postgres://app:***@db:5432/app`. */
  readonly where: string
  readonly #pool: PgPool | undefined
  /** A Client the app passed: statements go to it directly, one at a time (pg queues them). */
  readonly #client: PgClient | undefined
  readonly #owned: boolean
  readonly #secrets: string[]
  readonly #calls: CallTimeouts
  readonly #setup: CallTimeouts
  readonly #onPoolError: (error: Error) => void
  readonly #timeoutName: string
  /** The server's limit on cachekit's own connections (`statement_timeout`), set back after a short write. */
  readonly #serverLimit: number
  #lost = false
  #closed = false

  constructor(o: PgConnectionOptions) {
    if (o.url !== undefined && o.pool !== undefined) {
      throw new CacheConfigError('Options `url` and `pool` both say where PostgreSQL is: give only one of them.', { option: 'pool' })
    }
    const given = o.pool as unknown as Partial<PgPool> | undefined
    // The app's pool may carry a password too: it must not reach a message either.
    const theirs = given?.options
    this.#secrets = [
      ...secretForms(passwordOf(o.url ?? theirs?.connectionString)),
      ...secretForms(typeof theirs?.password === 'string' ? theirs.password : undefined),
    ]
    if (given !== undefined) {
      if (typeof given !== 'object' || given === null || typeof given.query !== 'function' || typeof given.on !== 'function') {
        throw new CacheConfigError('Option `pool` must be a pg Pool (or a connected pg Client): `new pg.Pool({ connectionString })`.', { option: 'pool' })
      }
      const isPool = typeof given.connect === 'function' && typeof given.totalCount === 'number'
      this.#pool = isPool ? (given as PgPool) : undefined
      this.#client = isPool ? undefined : (given as PgClient)
      this.#owned = false
      this.where = describe(undefined, this.#pool)
    } else {
      const { Pool } = loadPg()
      this.#pool = new Pool({
        ...(o.url === undefined ? {} : { connectionString: withApplicationName(o.url) }),
        application_name: 'cachekit',
        max: o.poolSize,
        // Waiting for a free connection is bounded too: a busy pool is reported, never waited on forever.
        connectionTimeoutMillis: o.connectTimeout,
        // The server gives up on a statement that runs too long (a lock wait, a huge purge batch).
        statement_timeout: serverStatementTimeout(o.commandTimeout),
        idle_in_transaction_session_timeout: o.commandTimeout * 5,
        keepAlive: true,
        idleTimeoutMillis: 30_000,
        // An open cache must not keep a finished script alive.
        allowExitOnIdle: true,
      })
      if (!o.synchronousCommit) {
        // Sent first on each new connection (pg runs a client's queries in order), so no statement of
        // cachekit's runs before it. Were it refused, that connection would simply keep waiting for the disk.
        this.#pool.on('connect', (client) => {
          client.query({ text: 'SET synchronous_commit TO off' }).catch(() => {})
        })
      }
      this.#client = undefined
      this.#owned = true
      this.where = o.url === undefined ? 'PostgreSQL (from the PG* environment variables, else localhost:5432)' : describe(o.url, undefined)
    }
    this.#calls = new CallTimeouts(o.commandTimeout)
    this.#setup = new CallTimeouts(o.connectTimeout + o.commandTimeout)
    this.#timeoutName = o.timeoutName ?? 'commandTimeout'
    this.#serverLimit = serverStatementTimeout(o.commandTimeout)
    this.#onPoolError = (error) => {
      // An idle connection died (pg_terminate_backend, a restart): the pool drops it and makes a new one on demand.
      if (this.#lost || this.#closed) return
      this.#lost = true
      o.onLost(this.fail(error, 'connection lost; new connections are made as needed'))
    }
    ;(this.#pool ?? this.#client)?.on('error', this.#onPoolError)
  }

  /** A driver error as cachekit reports it: the server named, no credential anywhere. */
  fail(error: unknown, what?: string): Error {
    if (error instanceof CacheBackendError || error instanceof CacheConfigError) return withoutSecrets(error, this.#secrets)
    const e = withoutSecrets(error as Error, this.#secrets)
    return new Error(`${this.where}: ${what ?? reasonOf(e)}`, { cause: e })
  }

  #timeoutError(control: CallControl, ms: number, setup: boolean): Error {
    const which = setup ? `connectTimeout + ${this.#timeoutName}` : this.#timeoutName
    const pool = this.#pool
    if (control.phase === 'acquire' && pool !== undefined && pool.options.max !== undefined && pool.totalCount >= pool.options.max) {
      return new Error(
        `${this.where}: all ${pool.options.max} connections of the pool stayed busy for ${ms} ms (${which}); ` +
          'raise `poolSize` (or your pool\'s `max`) if this load is expected.',
      )
    }
    if (control.phase === 'acquire') return new Error(`${this.where}: no connection within ${ms} ms (${which})`)
    return new Error(`${this.where} did not answer within ${ms} ms (${which})`)
  }

  /**
   * Run one statement, bounded by `commandTimeout` (or, during set-up, `connectTimeout + commandTimeout`), or
   * by `timeout` if less (what is left of its call's deadline). A serialization failure or deadlock is retried
   * (the statement had no effect); a lost connection is retried once on a fresh one when `idempotent` (a
   * read, or a write that means the same twice).
   *
   * A `write` given less than the whole timeout must not land after cachekit stopped waiting for it: on
   * cachekit's own pool it runs under a server limit of 80% of what is left when it is sent (`SET
   * statement_timeout` on its connection, set back afterwards), and is not sent at all when that would be
   * under a few ms. A read needs none of this: one answered late changes nothing.
   */
  run(query: PgQuery, idempotent: boolean, setup = false, timeout?: number, write = false): Promise<PgResult> {
    if (this.#closed) return Promise.reject(new CacheBackendError(`${this.where}: the cache is closed.`))
    const timeouts = setup ? this.#setup : this.#calls
    const given = setup ? undefined : timeout
    return timeouts.run(
      async (control) => {
        let reconnected = false
        for (;;) {
          try {
            const result = await this.#once(query, control, write)
            this.#lost = false
            return result
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

  async #once(query: PgQuery, control: CallControl, write: boolean): Promise<PgResult> {
    if (this.#client !== undefined) {
      control.phase = 'query'
      return this.#client.query(query)
    }
    const pool = this.#pool as PgPool
    control.phase = 'acquire'
    const client = await pool.connect()
    if (control.done) {
      client.release()
      throw new Error('timed out')
    }
    control.phase = 'query'
    let released = false
    const release = (error?: Error) => {
      if (released) return
      released = true
      client.release(error)
    }
    // A checked-out client that loses its connection emits 'error' besides failing the query: without a
    // listener that would crash the process. The query's own rejection reports it.
    const onError = () => {}
    client.on('error', onError)
    control.onTimeout = () => release(new Error('cachekit: the statement timed out; this connection is dropped'))
    const limited = write && control.short && this.#owned
    try {
      if (limited) {
        const limit = shortStatementTimeout(control.deadline - performance.now())
        if (limit === undefined) {
          release()
          throw Object.assign(notSentError(this.where, control.deadline - performance.now()), { notSent: true })
        }
        await client.query({ text: `SET statement_timeout = ${limit}` })
      }
      const result = await client.query(query)
      client.removeListener('error', onError)
      if (limited && !control.done) this.#restore(client, release)
      else release()
      return result
    } catch (error) {
      if (limited && !released && !isConnectionError(error)) {
        this.#restore(client, release)
        throw error
      }
      // A lost connection must not go back to the pool.
      release(isConnectionError(error) ? (error as Error) : undefined)
      throw error
    }
  }

  /** Set the connection's limit back to cachekit's usual one after a short write, then give it back (or drop it, if that fails). */
  #restore(client: PgPoolClient, release: (error?: Error) => void): void {
    client.query({ text: `SET statement_timeout = ${this.#serverLimit}` }).then(
      () => release(),
      (error: unknown) => release(error instanceof Error ? error : new Error('cachekit: could not restore statement_timeout')),
    )
  }

  /** Run `body` on one connection in a transaction (the schema set-up), bounded like `run` in set-up. */
  transaction<T>(body: (query: (q: PgQuery) => Promise<PgResult>) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CacheBackendError(`${this.where}: the cache is closed.`))
    return this.#setup.run(
      async (control) => {
        const on: { client: PgClient; release: (error?: Error) => void } =
          this.#client !== undefined ? { client: this.#client, release: () => {} } : await this.#checkout(control)
        const q = (query: PgQuery) => on.client.query(query)
        try {
          await q({ text: 'BEGIN' })
          const result = await body(q)
          await q({ text: 'COMMIT' })
          on.release()
          return result
        } catch (error) {
          await q({ text: 'ROLLBACK' }).catch(() => {})
          on.release(isConnectionError(error) ? (error as Error) : undefined)
          throw this.fail(error)
        }
      },
      () => new Error(`${this.where}: setting up the table took longer than ${this.#setup.ms} ms (connectTimeout + commandTimeout)`),
    )
  }

  async #checkout(control: CallControl): Promise<{ client: PgClient; release: (error?: Error) => void }> {
    let client: PgPoolClient
    try {
      client = await (this.#pool as PgPool).connect()
    } catch (error) {
      throw this.fail(error)
    }
    let released = false
    const onError = () => {}
    client.on('error', onError)
    const release = (error?: Error) => {
      if (released) return
      released = true
      if (error === undefined) client.removeListener('error', onError)
      client.release(error)
    }
    control.onTimeout = () => release(new Error('cachekit: the set-up timed out; this connection is dropped'))
    if (control.done) release()
    return { client, release }
  }

  /** Release the pool: end it if it is cachekit's, else only take cachekit's listener off it. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#calls.stop()
    this.#setup.stop()
    const target = this.#pool ?? this.#client
    target?.removeListener('error', this.#onPoolError)
    if (!this.#owned || this.#pool === undefined) return
    // Errors while ending (connections already gone) change nothing.
    this.#pool.on('error', () => {})
    await this.#pool.end().catch(() => {})
  }
}

