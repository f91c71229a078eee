/**
 * The PostgreSQL and MySQL backends as config sees them: their types, aliases, URL schemes, environment
 * variables and options, validated before anything connects (no server needed here).
 */
import { describe, expect, it } from 'vitest'
import { postgresDefinition } from '../adapters/postgres/definition.js'
import { requireDriver } from '../adapters/sql/options.js'
import { resolveConfig } from '../src/config/index.js'
import { CacheConfigError, configFromEnv, type CacheConfig } from '../src/index.js'

function configError(fn: () => unknown): CacheConfigError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(CacheConfigError)
    return error as CacheConfigError
  }
  throw new Error('expected a CacheConfigError')
}

describe('postgres and mysql in config', () => {
  it('URLs of each scheme select the backend and keep the URL for the driver', () => {
    for (const [url, type] of [
      ['postgres://app@db:5432/app', 'postgres'],
      ['postgresql://app@db/app?sslmode=require', 'postgres'],
      ['mysql://app@db:3306/app', 'mysql'],
      ['mariadb://app@db/app', 'mysql'],
    ] as const) {
      const r = resolveConfig(url)
      expect(r.type).toBe(type)
      expect(r.adapterOptions).toEqual({ url })
    }
  })

  it('types and aliases: postgresql is postgres, mariadb is mysql', () => {
    expect(resolveConfig({ type: 'postgresql' }).type).toBe('postgres')
    expect(resolveConfig({ type: 'mariadb', url: 'mysql://db/app' }).type).toBe('mysql')
  })

  it('accepts the options the issue names, typed (this file compiles with them)', () => {
    const pool = { query: () => undefined, on: () => undefined, removeListener: () => undefined }
    const config: CacheConfig = { type: 'postgres', pool, table: 'cachekit_entries', unlogged: true, commandTimeout: '1s', poolSize: 4, purgeBatchSize: 100 }
    const r = resolveConfig(config)
    expect(r.adapterOptions).toEqual({ pool, table: 'cachekit_entries', unlogged: true, commandTimeout: 1000, poolSize: 4, purgeBatchSize: 100 })
  })

  it('a misspelled option gets a suggestion; an option of the other backend says whose it is', () => {
    expect(configError(() => resolveConfig({ type: 'postgres', unloged: true } as never)).message).toContain('Did you mean `unlogged`?')
    const e = configError(() => resolveConfig({ type: 'mysql', url: 'mysql://db/app', unlogged: true }))
    expect(e.message).toContain('It is an option of the `postgres` backend, not of `mysql`.')
  })

  it('a URL of the wrong shape is refused before anything connects, without echoing a password', () => {
    const e = configError(() => resolveConfig({ type: 'postgres', url: 'mysql://u:hunter2@db/app' }))
    expect(e.message).toContain('a postgres: or postgresql: URL')
    expect(e.message).not.toContain('hunter2')
    expect(configError(() => resolveConfig('mysql://u:hunter2@db')).message).toMatch(/database/)
    expect(configError(() => resolveConfig('mysql://u:hunter2@db/app?flags=-FOUND_ROWS')).message).toContain('`pool`')
    expect(configError(() => resolveConfig('postgres://db/app/extra')).message).toMatch(/database name/)
  })

  it('CACHE_POSTGRES_URL and CACHE_MYSQL_URL select their backend; CACHE_SQL_TABLE goes with either', () => {
    expect(configFromEnv({ CACHE_POSTGRES_URL: 'postgres://db/app', CACHE_SQL_TABLE: 'my_cache' })).toEqual({
      type: 'postgres',
      url: 'postgres://db/app',
      table: 'my_cache',
    })
    expect(configFromEnv({ CACHE_MYSQL_URL: 'mysql://db/app', CACHE_SQL_TABLE: 'my_cache' })).toEqual({ type: 'mysql', url: 'mysql://db/app', table: 'my_cache' })
    expect(configFromEnv({ CACHE_URL: 'mariadb://db/app', CACHE_SQL_TABLE: 'my_cache' })).toEqual({ url: 'mariadb://db/app', table: 'my_cache' })
    // The table alone names no backend.
    expect(configError(() => configFromEnv({ CACHE_SQL_TABLE: 'my_cache' })).option).toBe('CACHE_TYPE')
  })

  it('a missing driver is a CacheConfigError that says what to install', async () => {
    const e = configError(() => requireDriver('pg-not-installed-here', 'postgres'))
    expect(e.message).toContain('run `npm install pg-not-installed-here`')
    expect(e.option).toBe('type')
    // With the driver present, load() gives the factory.
    expect(typeof (await postgresDefinition.load())).toBe('function')
  })
})
