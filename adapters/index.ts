/**
 * The one list of the adapters cachekit ships. The core reads it (through `src/registry.ts`) and imports
 * nothing else under `adapters/`; each definition is driver-free, and loads its adapter only when used.
 */
import type { AdapterDefinition } from '../src/definition.js'
import { filesystemDefinition, type FilesystemAdapterOptions } from './filesystem/definition.js'
import { keyvDefinition, type KeyvAdapterOptions } from './keyv/definition.js'
import { memoryDefinition, type MemoryAdapterOptions } from './memory/definition.js'
import { nullDefinition } from './null/definition.js'
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
]

/** The options of every built-in backend; each is read only by the backend that declares it. */
export type BuiltinAdapterOptions = MemoryAdapterOptions &
  FilesystemAdapterOptions &
  SqliteAdapterOptions &
  RedisAdapterOptions &
  Partial<KeyvAdapterOptions>

export type { FilesystemAdapterOptions, KeyvAdapterOptions, MemoryAdapterOptions, RedisAdapterOptions, SqliteAdapterOptions }
export type { RedisNodeOption } from './redis/definition.js'
