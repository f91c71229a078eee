import KeyvMysql from '@keyv/mysql'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'

export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test'
const POOL_SIZE = 10

interface Pool {
  execute(sql: string, values: unknown[], callback: (error: Error | null, result: unknown) => void): void
  query(sql: string, values: unknown[], callback: (error: Error | null, result: unknown) => void): void
  end(callback: () => void): void
}
const mysql = createRequire(import.meta.url)('mysql2') as { createPool(config: Record<string, unknown>): Pool }

const run = `ckbench_${randomBytes(4).toString('hex')}`
const tables = { cachekit: `${run}_cachekit`, raw: `${run}_raw` } as Record<string, string>

const call = <T>(pool: Pool, how: 'execute' | 'query', sql: string, values: unknown[] = []) =>
  new Promise<T>((resolve, reject) => pool[how](sql, values, (error, result) => (error ? reject(error) : resolve(result as T))))

/**
 * mysql2 with a pool of the same size as cachekit's and prepared statements (`execute`), one statement per
 * call: JSON values in a text column, an indexed expires_at checked on read, and the classic one-statement
 * counter (ON DUPLICATE KEY UPDATE ... LAST_INSERT_ID(value + 1)).
 */
async function raw(): Promise<Contestant> {
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: POOL_SIZE })
  const t = tables.raw
  await call(pool, 'query', `CREATE TABLE \`${t}\` (id VARCHAR(255) PRIMARY KEY, value TEXT NOT NULL, expires_at BIGINT, INDEX (expires_at)) ENGINE=InnoDB`)
  const get = async (k: string) => {
    const row = (await call<{ value: string; expires_at: number | null }[]>(pool, 'execute', `SELECT value, expires_at FROM \`${t}\` WHERE id = ?`, [k]))[0]
    return row === undefined || (row.expires_at !== null && row.expires_at <= Date.now()) ? undefined : (JSON.parse(row.value) as unknown)
  }
  const set = (k: string, v: unknown) =>
    call(pool, 'execute', `INSERT INTO \`${t}\` (id, value, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)`, [
      k,
      JSON.stringify(v),
      Date.now() + TTL_MS,
    ])
  return {
    name: 'raw mysql2',
    role: 'raw',
    get,
    set,
    async getOrSet(k, f) {
      const hit = await get(k)
      if (hit !== undefined) return hit
      const v = await f()
      await set(k, v)
      return v
    },
    async inc(k) {
      const r = await call<{ insertId: number }>(
        pool,
        'execute',
        `INSERT INTO \`${t}\` (id, value, expires_at) VALUES (?, '1', ?) ON DUPLICATE KEY UPDATE value = LAST_INSERT_ID(CAST(value AS SIGNED) + 1)`,
        [k, Date.now() + TTL_MS],
      )
      return r.insertId === 0 ? 1 : r.insertId
    },
    close: () => new Promise<void>((resolve) => pool.end(() => resolve())),
  }
}

async function cleanup(): Promise<void> {
  const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 1 })
  for (const t of Object.values(tables)) await call(pool, 'query', `DROP TABLE IF EXISTS \`${t}\``)
  await new Promise<void>((resolve) => pool.end(() => resolve()))
}

export const mysqlBackend: BenchBackend = {
  name: 'mysql',
  inflight: [1, 32],
  batch: 1,
  async open() {
    return [
      ...(await cachekit('mysql', { type: 'mysql', url: MYSQL_URL, table: tables.cachekit, poolSize: POOL_SIZE, threshold: 0 })),
      await raw(),
      ...keyvPeers('@keyv/mysql', (name) => {
        const table = `${run}_${name.replace(/\W/g, '_')}`
        tables[name] = table
        return new KeyvMysql({ uri: MYSQL_URL, table, connectionLimit: POOL_SIZE }) as never
      }),
    ]
  },
  cleanup,
  notes: [
    `mysql: the machine's MariaDB 10.11 at ${MYSQL_URL} over loopback; each contestant has its own table (dropped at the end), pools of ${POOL_SIZE} connections.`,
    'mysql: cachekit runs with threshold 0 (no row bound), as the others have none.',
  ],
}
