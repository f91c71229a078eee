/**
 * The filesystem backend: one file per key in a folder that every process on the machine can share.
 *
 * - A key's file is named by the SHA-256 of the full key, in one of 256 shard folders (`<dir>/ab/ab12...`).
 *   No part of a key ever reaches a path, so `../../etc/passwd`, `a/b` or a NUL byte stay inside `dir`.
 * - A file is a header (magic, version, expiry, write time, lengths), the key and the payload
 *   (format.ts). A truncated, empty or foreign file reads as a miss, is removed and reported as `corrupt`.
 * - Writes go to a temporary file and `rename` over the old one (store.ts). Every change of an entry (`set`,
 *   `add`, `increment`, `touch`, `delete`, `clear`, a purge) holds the key's lock, which a crashed holder
 *   cannot leave stuck (lock.ts): so a `touch` or `increment` never writes back a value that a `set` or
 *   `delete` replaced after they read it, and a purge never removes an entry written after it looked.
 *   Reads take no lock: a file is replaced whole, so a read sees the old one or the new one.
 * - Nothing follows a symbolic link planted in the folder: shard folders must be real folders, entries
 *   and temporary files are opened with `O_NOFOLLOW`/`O_EXCL`, and `clear` and purges list real folders only.
 * - Expired files are purged from their headers only, on a timer and on demand, and the count is bounded
 *   by `threshold` without listing the folder on each write (purge.ts).
 *
 * Why synchronous `fs` calls: measured on this project's machines (ext4, 200-byte values), a sync
 * open/read/close is 5.5 µs against 286 µs for an awaited `fs.promises.readFile` (147 µs with callbacks):
 * the thread-pool round trip costs 25-50 times the work itself. An entry read or write is a handful of
 * small calls on a local disk's page cache, like better-sqlite3's synchronous statements. What can take
 * long (a purge or `clear` of a large folder, `keys`) yields to the event loop between shard folders, and a
 * wait for a lock held by another process is an async sleep, never a spin.
 */
import { mkdirSync, readdirSync, statSync, writeFileSync, type Dirent } from 'node:fs'
import { join, resolve } from 'node:path'
import { addToPayload, samePayload, type AdapterContext, type CacheAdapter, type ExpiresAt, type Payload } from '../../src/adapter.js'
import { durationOption } from '../../src/duration.js'
import { CacheBackendError, CacheConfigError, CacheError } from '../../src/errors.js'
import { encodeEntry, ENTRY_NAME, keyRef, sameKey, SHARD_NAME, storedKey, storedPayload, withExpiry, type KeyRef } from './format.js'
import { errorCode, yieldToLoop } from './io.js'
import { lockNowOrLater, unlock, type LockOptions } from './lock.js'
import { Housekeeper } from './purge.js'
import { EntryFiles, type EntryRead } from './store.js'
import type { FilesystemAdapterOptions } from './definition.js'

export type { FilesystemAdapterOptions } from './definition.js'

/** The filesystem backend's defaults. */
export const FILESYSTEM_DEFAULTS = {
  dir: '.cache/cachekit',
  dirMode: 0o700,
  fileMode: 0o600,
  lockStaleTimeout: 10_000,
  purgeInterval: 60_000,
} as const

const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This folder is a cache made by cachekit: backup tools may skip it.\n'

/** Real time with sub-millisecond steps, so that writes within one millisecond still have an order. */
const wallClock = (): number => performance.timeOrigin + performance.now()

interface Settings {
  dir: string
  dirMode: number
  fileMode: number
  staleMs: number
  purgeMs: number
}

function configError(option: string, message: string, cause?: unknown): CacheConfigError {
  return new CacheConfigError(`Option \`${option}\` ${message}`, { option, cause })
}

function mode(option: 'dirMode' | 'fileMode', value: unknown, fallback: number, needs: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777) {
    throw configError(option, `must be a permission mode from 0 to 0o777 (e.g. 0o${fallback.toString(8)}), not ${JSON.stringify(value)}.`)
  }
  if ((value & needs) !== needs) {
    throw configError(option, `is 0o${value.toString(8)}, which does not let the owner use it: include 0o${needs.toString(8)}.`)
  }
  return value
}

function duration(option: string, value: unknown, fallback: number): number {
  return durationOption(value, option, { fallback })
}

function resolveSettings(options: FilesystemAdapterOptions): Settings {
  const dir = options.dir ?? FILESYSTEM_DEFAULTS.dir
  if (typeof dir !== 'string' || dir.trim() === '') {
    throw configError('dir', `must be the path of a folder (relative to the working directory, or absolute), not ${JSON.stringify(dir)}.`)
  }
  if (dir.includes('\0')) throw configError('dir', 'contains a NUL byte, which no path can hold.')
  const staleMs = duration('lockStaleTimeout', options.lockStaleTimeout, FILESYSTEM_DEFAULTS.lockStaleTimeout)
  if (staleMs === 0) throw configError('lockStaleTimeout', "must be longer than 0 (e.g. '10s'): a lock that is stale at once locks nothing.")
  return {
    dir: resolve(dir),
    dirMode: mode('dirMode', options.dirMode, FILESYSTEM_DEFAULTS.dirMode, 0o700),
    fileMode: mode('fileMode', options.fileMode, FILESYSTEM_DEFAULTS.fileMode, 0o600),
    staleMs,
    purgeMs: duration('purgeInterval', options.purgeInterval, FILESYSTEM_DEFAULTS.purgeInterval),
  }
}

/** Create (or check) the cache folder; say so if other users may write into it, or own it. */
function prepareFolder(settings: Settings, context: AdapterContext): void {
  const { dir } = settings
  try {
    mkdirSync(dir, { recursive: true, mode: settings.dirMode })
    const stat = statSync(dir)
    if (!stat.isDirectory()) {
      throw new CacheBackendError(`The cache folder ${dir} is not a folder: set \`dir\` to a folder cachekit may own.`, { option: 'dir' })
    }
    if ((stat.mode & 0o022) !== 0 && process.platform !== 'win32') {
      context.emit({
        type: 'warning',
        message: `the cache folder ${dir} can be written by other users (mode 0o${(stat.mode & 0o777).toString(8)}): they could plant or change entries. Use a folder of your own (mode 0o700).`,
      })
    }
    const uid = process.getuid?.()
    if (uid !== undefined && stat.uid !== uid) {
      context.emit({
        type: 'warning',
        message: `the cache folder ${dir} belongs to another user (uid ${stat.uid}, this process runs as ${uid}): its owner can plant or change entries whatever its mode. Use a folder of your own (mode 0o700).`,
      })
    }
    try {
      writeFileSync(join(dir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx', mode: settings.fileMode })
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error
    }
  } catch (error) {
    if (error instanceof CacheError) throw error
    throw new CacheBackendError(
      `Cannot use the cache folder ${dir}: ${(error as Error).message}. Check that the path is a folder this process may create and write.`,
      { option: 'dir', cause: error },
    )
  }
}

/**
 * A cache in a folder on this machine, shared by every process that opens the same `dir`: `add` and
 * `increment` are atomic across them. Not for a network file system (NFS, SMB, a cloud-synced folder):
 * `O_EXCL` and `rename` are not atomic there, and neither then are the locks.
 *
 * @example filesystemAdapter({ dir: '.cache/app' }, context)
 * @throws {CacheConfigError} for an invalid option, naming it.
 * @throws {CacheBackendError} when the folder cannot be created or written.
 */
export function filesystemAdapter(options: FilesystemAdapterOptions, context: AdapterContext): CacheAdapter {
  const settings = resolveSettings(options ?? {})
  prepareFolder(settings, context)
  const lockOptions: LockOptions = { staleMs: settings.staleMs, fileMode: settings.fileMode, dirMode: settings.dirMode, root: settings.dir }
  const files = new EntryFiles(settings.dir, lockOptions)
  let keeper: Housekeeper
  try {
    keeper = new Housekeeper(files, context, settings.purgeMs)
  } catch (error) {
    throw new CacheBackendError(`Cannot use the cache folder ${settings.dir}: ${(error as Error).message}. Check that this process may write in it.`, {
      option: 'dir',
      cause: error,
    })
  }
  const { now, emit } = context

  const corrupt = (ref: KeyRef, detail: string, removed: boolean): void => {
    emit({ type: 'corrupt', key: ref.key, detail: `${files.fileOf(ref.hash)}: ${detail}${removed ? '; removed' : ''}` })
  }

  /**
   * The live entry of `ref`, or `undefined`. A corrupt file (or one holding another key) is a miss and is
   * removed: under the key's lock, or directly when the caller holds that lock (`locked`).
   */
  const readLive = (ref: KeyRef, part: 'key' | 'whole', locked = false): EntryRead | undefined => {
    const read = files.read(files.fileOf(ref.hash), part)
    if (read === undefined) return undefined
    if (typeof read === 'string' || !sameKey(read.buf, read.header, ref)) {
      const detail = typeof read === 'string' ? read : 'holds another key'
      const removed = locked
        ? files.remove(files.fileOf(ref.hash))
        : files.removeIf(ref.hash, 'key', (r) => typeof r === 'string' || (r !== undefined && !sameKey(r.buf, r.header, ref)))
      corrupt(ref, detail, removed)
      return undefined
    }
    const { expiresAt } = read.header
    return expiresAt !== null && expiresAt <= now() ? undefined : read
  }

  /**
   * Write the entry of `ref`, holding its lock. Only a write that may create an entry counts towards the
   * threshold: one that replaces a file known to be there (`replaces`) adds nothing, and since every
   * removal holds the lock too, that file is still there when the rename replaces it.
   */
  const write = (ref: KeyRef, value: Payload, expiresAt: ExpiresAt, replaces: boolean): void => {
    files.write(ref.hash, encodeEntry(ref, value, expiresAt, wallClock()))
    if (!replaces) keeper.written()
  }

  /**
   * Run `work` holding the lock of `hash`: now if it is free, else once another process releases it. The
   * shard folder is checked first, so that neither the lock nor the file lands outside the cache folder.
   */
  const withLock = <T>(hash: string, work: () => T): T | Promise<T> => {
    files.ensureShard(hash)
    const path = files.lockOf(hash)
    const run = (): T => {
      try {
        return work()
      } finally {
        unlock(path, lockOptions)
      }
    }
    const waiting = lockNowOrLater(path, lockOptions)
    return waiting === undefined ? run() : waiting.then(run)
  }

  /** Run `work` once there is room under `threshold` (at once, nearly always). */
  const withRoom = <T>(work: () => T | Promise<T>): T | Promise<T> => {
    const waiting = keeper.admit()
    return waiting === undefined ? work() : waiting.then(() => withRoom(work))
  }

  const set = (key: string, value: Payload, expiresAt: ExpiresAt): void | Promise<void> => {
    const ref = keyRef(key)
    return withRoom(() => withLock(ref.hash, () => write(ref, value, expiresAt, files.exists(ref.hash))))
  }

  /** Every entry file, a shard folder at a time, yielding to the event loop in between. */
  async function* entryFiles(): AsyncGenerator<{ hash: string; file: string }[]> {
    let shards: string[]
    try {
      // Real folders only: a shard replaced by a symbolic link is never followed out of the cache folder.
      shards = readdirSync(settings.dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && SHARD_NAME.test(d.name))
        .map((d) => d.name)
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return
      throw error
    }
    for (const shard of shards) {
      let names: Dirent[]
      try {
        names = readdirSync(join(settings.dir, shard), { withFileTypes: true })
      } catch (error) {
        if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') continue
        throw error
      }
      yield names
        .filter((d) => !d.isDirectory() && ENTRY_NAME.test(d.name))
        .map((d) => ({ hash: d.name, file: join(settings.dir, shard, d.name) }))
      await yieldToLoop()
    }
  }

  /** The key stored in a file, if the file is sound, live and in its right place. */
  const liveKeyOf = (hash: string, file: string, t: number): string | undefined => {
    const read = files.read(file, 'key')
    if (read === undefined || typeof read === 'string') return undefined
    if (read.header.expiresAt !== null && read.header.expiresAt <= t) return undefined
    const key = storedKey(read.buf, read.header)
    return keyRef(key).hash === hash ? key : undefined
  }

  let closed = false

  return {
    name: 'filesystem',
    capabilities: { shared: true, atomic: true, realClock: false },

    ready: () => keeper.ready(),

    get(key) {
      const read = readLive(keyRef(key), 'whole')
      return read === undefined ? undefined : storedPayload(read.buf, read.header)
    },

    getMany(keys) {
      return keys.map((key) => {
        const read = readLive(keyRef(key), 'whole')
        return read === undefined ? undefined : storedPayload(read.buf, read.header)
      })
    },

    set,

    setMany(entries) {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]
        if (entry === undefined) continue
        const pending = set(entry.key, entry.value, entry.expiresAt)
        // Waiting for room: finish the rest after it, in order.
        if (pending !== undefined) return pending.then(() => this.setMany(entries.slice(i + 1)))
      }
    },

    add(key, value, expiresAt) {
      const ref = keyRef(key)
      return withRoom(() =>
        withLock(ref.hash, () => {
          if (readLive(ref, 'key', true) !== undefined) return false
          write(ref, value, expiresAt, false)
          return true
        }),
      )
    },

    increment(key, delta, expiresAt) {
      const ref = keyRef(key)
      return withRoom(() =>
        withLock(ref.hash, () => {
          const read = readLive(ref, 'whole', true)
          const result = addToPayload(key, read === undefined ? undefined : storedPayload(read.buf, read.header), delta)
          // An existing counter keeps its expiry; a new one gets the one given.
          write(ref, String(result), read === undefined ? expiresAt : read.header.expiresAt, read !== undefined)
          return result
        }),
      )
    },

    delete(key) {
      const ref = keyRef(key)
      const file = files.fileOf(ref.hash)
      // No file: nothing to remove, and no lock to take (nor a shard folder to make).
      if (files.read(file, 'key') === undefined) return false
      // Under the lock: an `increment` or `touch` that read the entry has written before this removes it.
      return withLock(ref.hash, () => {
        const read = files.read(file, 'key')
        if (read === undefined) return false
        const live =
          typeof read === 'object' && sameKey(read.buf, read.header, ref) && (read.header.expiresAt === null || read.header.expiresAt > now())
        return files.remove(file) && live
      })
    },

    async deleteMany(keys) {
      let n = 0
      for (const key of keys) if ((await this.delete(key)) === true) n++
      return n
    },

    has: (key) => readLive(keyRef(key), 'key') !== undefined,

    expiresAt: (key) => readLive(keyRef(key), 'key')?.header.expiresAt,

    deleteIfEquals(key, value) {
      const ref = keyRef(key)
      return withLock(ref.hash, () => {
        const read = readLive(ref, 'whole', true)
        if (read === undefined) return false
        return samePayload(storedPayload(read.buf, read.header), value) && files.remove(files.fileOf(ref.hash))
      })
    },

    touch(key, expiresAt) {
      const ref = keyRef(key)
      return withLock(ref.hash, () => {
        const read = readLive(ref, 'whole', true)
        if (read === undefined) return false
        files.write(ref.hash, withExpiry(read.buf, read.header, expiresAt, wallClock()))
        return true
      })
    },

    async clear(prefix) {
      for await (const batch of entryFiles()) {
        for (const { hash, file } of batch) {
          // Under each key's lock, as `delete`: an `increment` in flight never brings a cleared entry back.
          const removing = withLock(hash, () => {
            if (prefix === '') return files.remove(file)
            const read = files.read(file, 'key')
            return typeof read === 'object' && storedKey(read.buf, read.header).startsWith(prefix) && files.remove(file)
          })
          if (typeof removing !== 'boolean') await removing
        }
      }
    },

    async *keys(prefix) {
      const t = now()
      for await (const batch of entryFiles()) {
        const found: string[] = []
        for (const { hash, file } of batch) {
          const key = liveKeyOf(hash, file, t)
          if (key !== undefined && key.startsWith(prefix)) found.push(key)
        }
        yield* found
      }
    },

    purgeExpired: () => keeper.purge(),

    async close() {
      if (closed) return
      closed = true
      await keeper.close()
    },
  }
}
