/**
 * Entry files on disk: where a key's file lives, reading it in one open/read, writing it through a
 * temporary file and `rename`, and removing it under its lock. Everything is synchronous (see index.ts for
 * why), so the one scratch buffer is never shared by two operations at once.
 *
 * Nothing here follows a symbolic link someone planted in the folder: entries are opened with `O_NOFOLLOW`
 * (and `O_NONBLOCK`, so that a FIFO cannot hang a read), temporary files are created with `O_EXCL`, and a
 * shard folder must be a real folder before anything is written into it.
 */
import { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs'
import { kMaxLength } from 'node:buffer'
import { sep } from 'node:path'
import { CacheBackendError } from '../../src/errors.js'
import { HEADER_SIZE, parseHeader, type Header } from './format.js'
import { errorCode, quiet, unlinkQuiet } from './io.js'
import { CREATE_FLAGS, READ_FLAGS, tryLock, unlock, type LockOptions } from './lock.js'

/** Most entries fit: one read of this size answers a `get` without a `stat`. */
const SCRATCH_SIZE = 64 * 1024

/** A file as read: its header, and a buffer holding at least the header and key (and payload if asked). */
export interface EntryRead {
  header: Header
  /** Valid until the next read: copy what you keep. */
  buf: Buffer
}

/** What reading a file gives: the entry, `undefined` when there is no file, or why the file is corrupt. */
export type ReadResult = EntryRead | undefined | string

export class EntryFiles {
  readonly root: string
  readonly fileMode: number
  readonly dirMode: number
  readonly lock: LockOptions
  readonly #scratch = Buffer.allocUnsafeSlow(SCRATCH_SIZE)
  /** `root` and a separator: paths are built by concatenation (a `join` per call cost more than the `lstat`). */
  readonly #prefix: string
  #temps = 0

  /** `root` must be an absolute, normalized path (`path.resolve`). */
  constructor(root: string, lock: LockOptions) {
    this.root = root
    this.lock = lock
    this.fileMode = lock.fileMode
    this.dirMode = lock.dirMode
    this.#prefix = root.endsWith(sep) ? root : root + sep
  }

  shardOf(hash: string): string {
    return this.#prefix + hash.slice(0, 2)
  }

  fileOf(hash: string): string {
    return this.#prefix + hash.slice(0, 2) + sep + hash
  }

  lockOf(hash: string): string {
    return `${this.fileOf(hash)}.lock`
  }

  /**
   * Make sure the shard folder of `hash` is a real folder (not a symbolic link to somewhere else), creating
   * it if needed. Called before a key's lock is taken and its file written, so that neither lands outside
   * the cache folder.
   */
  ensureShard(hash: string): void {
    const shard = this.shardOf(hash)
    let stat
    try {
      stat = quiet(() => lstatSync(shard))
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error
      try {
        mkdirSync(shard, { mode: this.dirMode })
      } catch (made) {
        if (errorCode(made) === 'ENOENT') mkdirSync(shard, { recursive: true, mode: this.dirMode })
        else if (errorCode(made) !== 'EEXIST') throw made
      }
      stat = lstatSync(shard)
    }
    if (!stat.isDirectory()) {
      throw new CacheBackendError(
        `The shard folder ${shard} is ${stat.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: cachekit writes only into folders of its own. Remove it (cachekit makes it again), and check who else can write in ${this.root}.`,
        { option: 'dir' },
      )
    }
  }

  /**
   * Read the file at `file`: its header (`'header'`, checking the size with `fstat`: a purge never reads a
   * payload), header and key (`'key'`), or all of it (`'whole'`). A file under 64 KiB takes one open and
   * one read, with no `stat`; a larger one is read on, or its size checked.
   */
  read(file: string, part: 'header' | 'key' | 'whole'): ReadResult {
    let fd: number
    try {
      fd = quiet(() => openSync(file, READ_FLAGS))
    } catch (error) {
      const code = errorCode(error)
      if (code === 'ENOENT') return undefined
      if (code === 'ELOOP') return 'a symbolic link, not an entry'
      throw error
    }
    try {
      let buf = this.#scratch
      let n: number
      try {
        n = readSync(fd, buf, 0, part === 'header' ? HEADER_SIZE : buf.length, 0)
      } catch (error) {
        // A folder, a FIFO or a device where an entry should be: nothing cachekit wrote.
        if (['EISDIR', 'ESPIPE', 'EAGAIN'].includes(errorCode(error) ?? '')) return 'not a regular file'
        throw error
      }
      const header = parseHeader(buf, n)
      if (typeof header === 'string') return header
      if (n < buf.length && part !== 'header') {
        // The whole file is in the buffer: its size must be exactly what the header says.
        if (header.total !== n) return n < header.total ? `truncated (${n} of ${header.total} bytes)` : `bad length (${n} bytes, header says ${header.total})`
        return { header, buf }
      }
      // A larger file: its size must be what the header says before anything is allocated for it (a header
      // may claim up to 8 GiB).
      const size = fstatSync(fd).size
      if (size !== header.total) return size < header.total ? `truncated (${size} of ${header.total} bytes)` : `bad length (${size} bytes, header says ${header.total})`
      if (part === 'whole' || (part === 'key' && HEADER_SIZE + header.keyLength > n)) {
        if (header.total > kMaxLength) return `too large to read (${header.total} bytes)`
        const big = Buffer.allocUnsafe(header.total)
        let got = Math.min(n, big.length)
        buf.copy(big, 0, 0, got)
        while (got < big.length) {
          const r = readSync(fd, big, got, big.length - got, got)
          if (r === 0) break
          got += r
        }
        if (got !== header.total) return `truncated (${got} of ${header.total} bytes)`
        buf = big
      }
      return { header, buf }
    } finally {
      closeSync(fd)
    }
  }

  /**
   * Write `bytes` as the file of `hash`: to a temporary file in the same folder, then `rename` over the old
   * one, so that a reader (or a crash) sees the old file or the new one, never a mix. No `fsync`: after a
   * power loss a file may be empty or short, and then it reads as corrupt (a miss), as a cache may.
   */
  write(hash: string, bytes: Buffer): void {
    const file = this.fileOf(hash)
    const temp = `${file}.${process.pid}-${++this.#temps}.tmp`
    let fd: number
    try {
      fd = quiet(() => openSync(temp, CREATE_FLAGS, this.fileMode))
    } catch (error) {
      const code = errorCode(error)
      if (code === 'ENOENT') this.ensureShard(hash)
      // A leftover of a process that had this pid, or a link planted to make this write land elsewhere:
      // remove the name (never what it points to) and create the file anew.
      else if (code === 'EEXIST') unlinkQuiet(temp)
      else throw error
      fd = openSync(temp, CREATE_FLAGS, this.fileMode)
    }
    try {
      let done = 0
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done)
      closeSync(fd)
    } catch (error) {
      closeSync(fd)
      unlinkQuiet(temp)
      throw error
    }
    try {
      renameSync(temp, file)
    } catch (error) {
      unlinkQuiet(temp)
      throw error
    }
  }

  /** True if the file of `hash` is there (whatever it holds): one `access`, cheaper than a read or a `stat`. */
  exists(hash: string): boolean {
    return existsSync(this.fileOf(hash))
  }

  /** Remove the entry file `file`: false if it was not there, or is a folder (left alone: no entry is one). */
  remove(file: string): boolean {
    try {
      return unlinkQuiet(file)
    } catch (error) {
      if (errorCode(error) === 'EISDIR' || errorCode(error) === 'EPERM') return false
      throw error
    }
  }

  /**
   * Remove the file of `hash` if, read (`part` of it) under its lock, `shouldGo` says it should go. False if it did not go (a
   * busy lock counts: the holder is using the entry). Every write holds the lock too, so what goes is the
   * very file judged here: a purge never removes an entry that a `set` or `increment` wrote after the purge
   * found the old one expired.
   */
  removeIf(hash: string, part: 'header' | 'key', shouldGo: (read: ReadResult) => boolean): boolean {
    // A read may have gone through a shard replaced by a link; a removal never does.
    this.ensureShard(hash)
    const lockPath = this.lockOf(hash)
    if (!tryLock(lockPath, this.lock)) return false
    try {
      const file = this.fileOf(hash)
      return shouldGo(this.read(file, part)) && this.remove(file)
    } finally {
      unlock(lockPath, this.lock)
    }
  }
}
