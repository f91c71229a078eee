import type { BenchBackend } from '../harness.js'
import { filesystem } from './filesystem.js'
import { memcached } from './memcached.js'
import { memory } from './memory.js'
import { mysqlBackend } from './mysql.js'
import { postgres } from './postgres.js'
import { redis } from './redis.js'
import { sqlite } from './sqlite.js'

/** Every backend of the benchmark, in table order. One module each. */
export const BACKENDS: readonly BenchBackend[] = [memory, filesystem, sqlite, redis, memcached, postgres, mysqlBackend]
