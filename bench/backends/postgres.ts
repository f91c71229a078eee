import KeyvPostgres from '@keyv/postgres'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'

export const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const POOL_SIZE = 10

interface Pool {
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: Record<string, unknown>[] }>
  on(event: 'error', listener: () => void): unknown
  end(): Promise<void>
}
const pg = createRequire(import.meta.url)('pg') as { Pool: new (config: Record<string, unknown>) => Pool }

const run = `ckbench_${randomBytes(4).toString('hex')}`
const tables = { cachekit: `${run}_cachekit`, unlogged: `${run}_unlogged`, raw: `${run}_raw` } as Record<string, string>

/**
 * pg with a pool of the same size as cachekit's and named (prepared) statements, one statement per call:
 * JSON values in a text column, an indexed expires_at checked on read, an UPSERT ... RETURNING increment.
 */
async function raw(): Promise<Contestant> {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: POOL_SIZE })
  pool.on('error', () => {})
  const t = tables.raw
  await pool.query({ text: `CREATE TABLE "${t}" (key text PRIMARY KEY, value text NOT NULL, expires_at bigint)` })
  await pool.query({ text: `CREATE INDEX ON "${t}" (expires_at)` })
  const get = async (k: string) => {
    const row = (await pool.query({ name: `${t}_get`, text: `SELECT value, expires_at FROM "${t}" WHERE key = $1`, values: [k] })).rows[0]
    return row === undefined || (row.expires_at !== null && Number(row.expires_at) <= Date.now()) ? undefined : (JSON.parse(row.value as string) as unknown)
  }
  const set = (k: string, v: unknown) =>
    pool.query({
      name: `${t}_set`,
      text: `INSERT INTO "${t}" (key, value, expires_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      values: [k, JSON.stringify(v), Date.now() + TTL_MS],
    })
  return {
    name: 'raw pg',
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
    inc: async (k) =>
      Number(
        (
          await pool.query({
            name: `${t}_inc`,
            text: `INSERT INTO "${t}" AS t (key, value, expires_at) VALUES ($1, '1', $2) ON CONFLICT (key) DO UPDATE SET value = (t.value::bigint + 1)::text RETURNING value`,
            values: [k, Date.now() + TTL_MS],
          })
        ).rows[0]?.value,
      ),
    close: () => pool.end(),
  }
}

async function cleanup(): Promise<void> {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 })
  pool.on('error', () => {})
  for (const t of Object.values(tables)) await pool.query({ text: `DROP TABLE IF EXISTS "${t}"` })
  await pool.end()
}

export const postgres: BenchBackend = {
  name: 'postgres',
  inflight: [1, 32],
  batch: 1,
  async open() {
    return [
      ...(await cachekit('postgres', { type: 'postgres', url: POSTGRES_URL, table: tables.cachekit, poolSize: POOL_SIZE, threshold: 0 })),
      // The same, on an UNLOGGED table: no write-ahead log to flush at each commit (a crash empties it).
      ...(await cachekit('postgres', { type: 'postgres', url: POSTGRES_URL, table: tables.unlogged, unlogged: true, poolSize: POOL_SIZE, threshold: 0 })).map(
        (c): Contestant => ({ ...c, name: 'cachekit unlogged', role: 'peer' }),
      ),
      await raw(),
      ...keyvPeers('@keyv/postgres', (name) => {
        const table = `${run}_${name.replace(/\W/g, '_')}`
        tables[name] = table
        return new KeyvPostgres({ uri: POSTGRES_URL, table, max: POOL_SIZE }) as never
      }),
    ]
  },
  cleanup,
  notes: [
    `postgres: the machine's PostgreSQL 15 at ${POSTGRES_URL} over loopback; each contestant has its own table (dropped at the end), pools of ${POOL_SIZE} connections.`,
    'postgres: cachekit runs with threshold 0 (no row bound), as the others have none; "cachekit unlogged" is cachekit with `unlogged: true`, the others write to logged tables.',
  ],
}
