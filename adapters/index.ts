/**
 * The one list of the adapters cachekit ships. The core reads it (through `src/registry.ts`) and imports
 * nothing else under `adapters/`; each definition is driver-free, and loads its adapter only when used.
 */
import type { AdapterDefinition } from '../src/definition.js'
import { filesystemDefinition, type FilesystemAdapterOptions } from './filesystem/definition.js'
import { keyvDefinition, type KeyvAdapterOptions } from './keyv/definition.js'
import { memcachedDefinition, type MemcachedOptions } from './memcached/definition.js'
import { memoryDefinition, type MemoryAdapterOptions } from './memory/definition.js'
import { mysqlDefinition, type MysqlAdapterOptions, type MysqlPool } from './mysql/definition.js'
import { nullDefinition } from './null/definition.js'
import { postgresDefinition, type PostgresAdapterOptions, type PostgresPool } from './postgres/definition.js'
import { redisDefinition, type RedisAdapterOptions } from './redis/definition.js'
import { sqliteDefinition, type SqliteAdapterOptions } from './sqlite/definition.js'

/** Every adapter cachekit ships, by type. A new backend adds one line here. */
export const ADAPTERS: readonly AdapterDefinition[] = [
  memoryDefinition,
  filesystemDefinition,
  nullDefinition,
  sqliteDefinition,
  redisDefinition,
  keyvDefinition,
  memcachedDefinition,
  postgresDefinition,
  mysqlDefinition,
]

/** The options of every built-in backend; each is read only by the backend that declares it. */
export type BuiltinAdapterOptions = MemoryAdapterOptions &
  FilesystemAdapterOptions &
  SqliteAdapterOptions &
  RedisAdapterOptions &
  Partial<KeyvAdapterOptions> &
  MemcachedOptions &
  Omit<PostgresAdapterOptions, 'pool'> &
  Omit<MysqlAdapterOptions, 'pool'> & {
    /** postgres: an existing pg Pool (or connected Client); mysql: an existing mysql2 pool. cachekit never ends it. */
    pool?: PostgresPool | MysqlPool
  }

export type { FilesystemAdapterOptions, KeyvAdapterOptions, MemcachedOptions, MemoryAdapterOptions, MysqlAdapterOptions, PostgresAdapterOptions, RedisAdapterOptions, SqliteAdapterOptions }
export type { RedisNodeOption } from './redis/definition.js'
