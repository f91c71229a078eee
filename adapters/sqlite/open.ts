/** Opening a cache file: refuse what is not SQLite, create it private, then WAL and the schema check. */
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { AdapterEvent } from '../../src/adapter.js'
import { CacheBackendError, CacheConfigError, CacheError } from '../../src/errors.js'
import { isBusy, sqliteErrorCode, type SqliteConnection, type SqliteDriver } from './driver.js'
import type { SqliteSettings } from './options.js'
import { checkSchema } from './schema.js'

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1')

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Open the file with `driver`, check it is cachekit's (or new), switch it to WAL, and run `setup` on it
 * (preparing the statements); the connection is closed again if any of it fails. Waits out another process
 * that holds the lock while it creates the same file, up to `busyTimeout`.
 * @throws {CacheConfigError} for a path that is not a cachekit database; {@link CacheBackendError} otherwise.
 */
export async function openDatabase<T>(
  settings: SqliteSettings,
  driver: SqliteDriver,
  emit: (event: AdapterEvent) => void,
  setup: (db: SqliteConnection) => T,
): Promise<{ db: SqliteConnection; setup: T }> {
  const { file, memory, busyTimeout, where } = settings
  const db = connect(settings, driver)
  try {
    const deadline = Date.now() + busyTimeout
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      try {
        checkSchema(db, settings)
        if (!memory) {
          // Persistent in the file; every process then reads while one writes.
          const mode = db.prepare('PRAGMA journal_mode = WAL', true).get()
          if (mode !== 'wal') emit({ type: 'warning', message: `${where} could not use WAL (journal mode is ${String(mode)}): readers and writers will block each other.` })
        }
        break
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw error
        await sleep(delay)
      }
    }
    // Durable across a process crash; a power loss may lose the last commits, which a cache can afford.
    db.exec('PRAGMA synchronous = NORMAL')
    return { db, setup: setup(db) }
  } catch (error) {
    db.close()
    if (error instanceof CacheError) throw error
    const code = sqliteErrorCode(error)
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new CacheConfigError(`Option \`path\`: ${file} is not a usable SQLite database (${(error as Error).message}); it was left as it is. Point \`path\` to a file of its own.`, {
        option: 'path',
        cause: error,
      })
    }
    throw new CacheBackendError(`Cannot use ${where}: ${(error as Error).message}.`, { cause: error })
  }
}

function connect(settings: SqliteSettings, driver: SqliteDriver): SqliteConnection {
  try {
    if (!settings.memory) prepareFile(settings)
    return driver.open(settings.file, settings.busyTimeout)
  } catch (cause) {
    if (cause instanceof CacheError) throw cause
    throw new CacheBackendError(`Cannot open ${settings.where}: ${(cause as Error).message}.`, { cause })
  }
}

/** Refuse a folder or a file that is not SQLite; create the folders (0700) and a new file (0600). */
function prepareFile({ file, where }: SqliteSettings): void {
  const stat = statSync(file, { throwIfNoEntry: false })
  if (stat?.isDirectory()) {
    throw new CacheConfigError(`Option \`path\`: ${file} is a folder; give the path of a database file inside it, e.g. ${resolve(file, 'cachekit.sqlite')}.`, { option: 'path' })
  }
  // A zero-length file is an empty database to SQLite; anything else must start with its header.
  if (stat !== undefined && stat.size > 0) {
    const head = Buffer.alloc(SQLITE_HEADER.length)
    const fd = openSync(file, 'r')
    try {
      readSync(fd, head, 0, head.length, 0)
    } finally {
      closeSync(fd)
    }
    if (!head.equals(SQLITE_HEADER)) {
      throw new CacheConfigError(
        `Option \`path\`: ${file} is not a SQLite database, so it is not a cachekit cache; it was left as it is. ` +
          'Point `path` to a file of its own (it is created as needed), or remove this one if it is yours to remove.',
        { option: 'path' },
      )
    }
  }
  try {
    // Cached data may be private: folders cachekit creates are 0700 and a new file 0600 (SQLite gives
    // its -wal and -shm files the mode of the database). An existing file keeps its mode.
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    if (stat === undefined) closeSync(openSync(file, 'a', 0o600))
  } catch (cause) {
    throw new CacheBackendError(`Cannot create ${where}: ${(cause as Error).message}.`, { cause })
  }
}
