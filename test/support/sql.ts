/**
 * Test support for PostgreSQL and MySQL/MariaDB: the servers' URLs, whether one answers (the policy of
 * servers.ts: skip with one loud line outside CI, fail under CI=true), and a plain driver connection for
 * the checks a test makes behind the adapter's back. Table names: uniqueTableName (prefix.ts).
 */
import { createRequire } from 'node:module'
import { serverOrSkip } from './servers.js'

export const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test'

const require = createRequire(import.meta.url)

/** The small part of pg the tests use. */
export interface PgClient {
  connect(): Promise<void>
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>
  end(): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
}
export interface PgPool extends PgClient {
  totalCount: number
}
export const pg = require('pg') as {
  Client: new (config: Record<string, unknown>) => PgClient
  Pool: new (config: Record<string, unknown>) => PgPool
}

/** The small part of mysql2 (callback API) the tests use. */
export interface MysqlConnection {
  query(sql: string, values: unknown[] | undefined, callback: (error: Error | null, result: unknown) => void): unknown
  end(callback?: (error?: Error | null) => void): unknown
  destroy(): void
  on(event: 'error', listener: (error: Error) => void): unknown
  threadId: number | null
}
export interface MysqlPool {
  query(sql: string, values: unknown[] | undefined, callback: (error: Error | null, result: unknown) => void): unknown
  end(callback?: (error?: Error | null) => void): unknown
  on(event: string, listener: (...args: unknown[]) => void): unknown
}
export const mysql = require('mysql2') as {
  createConnection(config: string | Record<string, unknown>): MysqlConnection
  createPool(config: string | Record<string, unknown>): MysqlPool
}

/** Run one statement on PostgreSQL on a connection of its own. */
export async function pgQuery(text: string, values?: unknown[], url = POSTGRES_URL): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(text, values)
  } finally {
    await client.end()
  }
}

/** Run one statement on MySQL on a connection of its own. */
export async function mysqlQuery<T = unknown>(sql: string, values?: unknown[], url = MYSQL_URL): Promise<T> {
  const c = mysql.createConnection({ uri: url, connectTimeout: 10_000 })
  c.on('error', () => {})
  try {
    return await new Promise<T>((resolve, reject) => c.query(sql, values, (error, result) => (error ? reject(error) : resolve(result as T))))
  } finally {
    await new Promise<void>((resolve) => c.end(() => resolve()))
  }
}

/**
 * serverOrSkip for a SQL server that `probe` queries: when it fails, the reason says what went wrong. The
 * timeouts above are roomy: on a loaded machine a server that is there once took over 2 s to accept.
 */
function answersOrSkip(what: string, name: string, probe: () => Promise<unknown>, fix: string): Promise<boolean> {
  return serverOrSkip(what, name, () => probe().then(() => true as const, (error: unknown) => `no ${name} (${(error as Error)?.message ?? String(error)})`), fix)
}

/** Whether the tests `what` on PostgreSQL can run (serverOrSkip: skip outside CI when no server answers; fail under CI). */
export function postgresOrSkip(what: string): Promise<boolean> {
  return answersOrSkip(what, `PostgreSQL at ${POSTGRES_URL}`, () => pgQuery('SELECT 1'), 'start one or set POSTGRES_URL, then run this test file again')
}

/** Whether the tests `what` on MySQL/MariaDB can run (serverOrSkip: skip outside CI when no server answers; fail under CI). */
export function mysqlOrSkip(what: string): Promise<boolean> {
  return answersOrSkip(what, `MySQL/MariaDB at ${MYSQL_URL}`, () => mysqlQuery('SELECT 1'), 'start one or set MYSQL_URL, then run this test file again')
}
