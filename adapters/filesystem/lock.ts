/**
 * A cross-process lock per key. Node has no `flock`, so a lock is a name in the folder whose creation the
 * file system makes atomic between processes, and a holder that dies keeps it; this module tells such a
 * stale lock from a live one and removes it safely:
 *
 * - The lock is created with its holder already in it: a symbolic link whose target is the holder (pid,
 *   where that pid means something, when, a sequence number). `symlink` fails if the name exists, and the
 *   target is part of the one create, so no crash can leave a lock that does not say who holds it. (A
 *   lock file opened with `O_EXCL` and then written could: a waiter could not check its holder and waited
 *   the whole stale timeout.) Where symbolic links cannot be made (Windows without the privilege, some
 *   file systems) the holder is written to a temporary file first, then `link`ed into place, which also
 *   fails if the name exists. The link is never followed: it is read with `readlink`, removed with `unlink`.
 * - It is stale when its holder is a process of this machine that is gone (checked with signal 0), or a
 *   leftover with this process's own pid that this process does not hold (a restarted container reuses
 *   pids), or when it is older than the stale timeout (a holder elsewhere, or a reused pid). A lock that
 *   says nothing (an empty file from an older version that died between its create and its write, or
 *   after a power loss) is stale once it is {@link UNSIGNED_GRACE_MS} old.
 * - Only one process may remove a stale lock, and only the one it judged: removal happens under a second
 *   lock (`<lock>.break`, itself recoverable the same way) after reading the lock again and finding the same
 *   content. Without that, two waiters that both judged it stale could each remove it, the second removing
 *   the fresh lock of the first (the race of naive lock files).
 *
 * Holds are short (a read and a rename), so a live holder never comes near the timeout; one that is
 * stopped (a debugger, SIGSTOP) for longer than it loses its lock.
 */
import { closeSync, constants, linkSync, lstatSync, mkdirSync, openSync, readlinkSync, readSync, renameSync, symlinkSync, writeSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { errorCode, quiet, sleep, unlinkQuiet } from './io.js'

export interface LockOptions {
  /** After this many ms a lock whose holder cannot be checked is stale. */
  staleMs: number
  fileMode: number
  dirMode: number
}

/** Where a pid names the same process: this host and this pid namespace (containers have their own). */
function identity(): string {
  let ns = ''
  try {
    ns = readlinkSync('/proc/self/ns/pid')
  } catch {
    // Not Linux: the host name alone.
  }
  return `${hostname()} ${ns}`
}

/**
 * The identity, hashed: a lock's text stays under 60 bytes, which ext4 keeps inside the link's inode (a
 * longer target costs a data block: measured 115 µs a lock instead of 17).
 */
const FULL_IDENTITY = identity()
const IDENTITY = createHash('sha256').update(FULL_IDENTITY).digest('hex').slice(0, 12)
const TAG = 'ck2'
/** How deep a chain of `.break` locks may go before the last one is removed on the evidence alone. */
const MAX_DEPTH = 2
/**
 * A lock that does not say who holds it is stale after this long. This version never makes one (its
 * locks are created whole); an older version creating a lock file and writing it a few µs later might.
 */
export const UNSIGNED_GRACE_MS = 100
/** Flags to read a lock file or an entry: never through a symbolic link, never blocking on a FIFO. */
export const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)
/** Flags to create a file that must be new: never through a symbolic link a stranger planted. */
export const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0)

/** The locks this process holds, by path, with the exact content it wrote. */
const held = new Map<string, { content: string; since: number }>()
let sequence = 0
let symlinks = true

/**
 * Make locks as symbolic links (the default) or as linked files (what is used where links cannot be made).
 * For tests of the fallback; returns the previous setting.
 * @internal
 */
export function useSymlinkLocks(on: boolean): boolean {
  const before = symlinks
  symlinks = on
  return before
}

/** What `symlink` answers where links cannot be made (EPERM: Linux for "this file system has none"; Windows). */
const UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'])

/** Write `content` to a new file `temp` (never through a link), then link it in as `path`. */
function linkFile(path: string, content: string, mode: number): void {
  const temp = `${path}.${process.pid}-${sequence}.tmp`
  let fd: number
  try {
    fd = quiet(() => openSync(temp, CREATE_FLAGS, mode))
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error
    // A leftover of a process that had this pid, or something planted: it is not ours to trust.
    unlinkQuiet(temp)
    fd = openSync(temp, CREATE_FLAGS, mode)
  }
  try {
    try {
      writeSync(fd, content)
    } finally {
      closeSync(fd)
    }
    quiet(() => linkSync(temp, path))
  } finally {
    unlinkQuiet(temp)
  }
}

/** Create `path` holding `content`, atomically; throws EEXIST if it exists. */
function create(path: string, content: string, mode: number): void {
  if (symlinks) {
    try {
      quiet(() => symlinkSync(content, path))
      return
    } catch (error) {
      if (!UNSUPPORTED.has(errorCode(error) ?? '')) throw error
      symlinks = false
    }
  }
  linkFile(path, content, mode)
}

interface LockInfo {
  raw: string
  pid?: number
  identity?: string
  createdAt?: number
}

/** The content of a lock file (not a link): read without following anything or blocking. */
function readPlainFile(path: string): string {
  const fd = quiet(() => openSync(path, READ_FLAGS))
  try {
    const buf = Buffer.allocUnsafe(256)
    const n = readSync(fd, buf, 0, buf.length, 0)
    return buf.toString('utf8', 0, n)
  } finally {
    closeSync(fd)
  }
}

function readLock(path: string): LockInfo | undefined {
  let raw: string
  try {
    try {
      raw = quiet(() => readlinkSync(path))
    } catch (error) {
      // Not a link: a lock made by linking a file (or by an older version), or something else.
      if (errorCode(error) !== 'EINVAL' && errorCode(error) !== 'UNKNOWN') throw error
      raw = readPlainFile(path)
    }
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  const [tag, pid, createdAt, , id] = raw.split(' ')
  if (tag === TAG && pid !== undefined && createdAt !== undefined && id !== undefined) {
    return { raw, pid: Number(pid), identity: id, createdAt: Number(createdAt) }
  }
  // The lock file of an older version (during a rolling upgrade): four lines, the identity in full.
  const [header, oldPid, oldId, oldCreatedAt] = raw.split('\n')
  if (header === 'cachekit-lock 1' && oldPid !== undefined && oldId !== undefined && oldCreatedAt !== undefined) {
    return { raw, pid: Number(oldPid), identity: oldId === FULL_IDENTITY.replace(/\n/g, ' ') ? IDENTITY : oldId, createdAt: Number(oldCreatedAt) }
  }
  return { raw }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errorCode(error) === 'EPERM'
  }
}

/** True if the lock at `path`, as read in `info`, may be removed. */
function isStale(path: string, info: LockInfo, staleMs: number): boolean {
  if (info.pid !== undefined && Number.isSafeInteger(info.pid) && info.identity === IDENTITY) {
    if (info.pid === process.pid) return held.get(path)?.content !== info.raw
    if (!alive(info.pid)) return true
  }
  if (info.createdAt !== undefined && Number.isFinite(info.createdAt)) return Date.now() - info.createdAt > staleMs
  // A lock that says nothing: its writer died (or is an older version between its create and its write).
  let mtime: number
  try {
    mtime = quiet(() => lstatSync(path)).mtimeMs
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return true
    throw error
  }
  return Date.now() - mtime > Math.min(UNSIGNED_GRACE_MS, staleMs)
}

/**
 * Remove the lock at `path` if it is stale. True if it is gone (try again), false if it is live or another
 * process is removing it.
 */
export function breakIfStale(path: string, options: LockOptions, depth = 0): boolean {
  const seen = readLock(path)
  if (seen === undefined) return true
  if (!isStale(path, seen, options.staleMs)) return false
  if (depth >= MAX_DEPTH) {
    if (readLock(path)?.raw === seen.raw) unlinkQuiet(path)
    return true
  }
  const breaker = `${path}.break`
  if (!tryLock(breaker, options, depth + 1)) return false
  try {
    // Only breakers (under this lock) remove a lock they did not take, so the content read again is the
    // very lock judged stale, not a fresh one that replaced it.
    if (readLock(path)?.raw === seen.raw) unlinkQuiet(path)
  } finally {
    unlock(breaker, options)
  }
  return true
}

/** Take the lock at `path` if it is free or stale; never waits. */
export function tryLock(path: string, options: LockOptions, depth = 0): boolean {
  for (let attempt = 0; attempt < 4; attempt++) {
    const since = Date.now()
    const content = `${TAG} ${process.pid} ${since} ${++sequence} ${IDENTITY}`
    try {
      create(path, content, options.fileMode)
    } catch (error) {
      const code = errorCode(error)
      if (code === 'ENOENT') {
        mkdirSync(dirname(path), { recursive: true, mode: options.dirMode })
        continue
      }
      if (code !== 'EEXIST') throw error
      if (breakIfStale(path, options, depth)) continue
      return false
    }
    held.set(path, { content, since })
    return true
  }
  return false
}

/** Take the lock at `path`, waiting (without blocking the event loop) while another process holds it. */
export async function lock(path: string, options: LockOptions): Promise<void> {
  let delay = 0.5
  for (;;) {
    await sleep(delay * (0.5 + Math.random()))
    if (tryLock(path, options)) return
    delay = Math.min(delay * 2, 8)
  }
}

/**
 * Callers of this process waiting for a lock, by path. Only the first polls the lock file; the others
 * queue behind it here, so that 250 pending `inc` of one key poll once, not 250 times, and are served in
 * order.
 */
const queues = new Map<string, Promise<void>>()

/** Take the lock now if it is free (returns `undefined`), or a promise that resolves once it is taken. */
export function lockNowOrLater(path: string, options: LockOptions): Promise<void> | undefined {
  const ahead = queues.get(path)
  if (ahead === undefined && tryLock(path, options)) return undefined
  // The caller runs its (synchronous) work and unlocks as soon as this resolves, before the next in the
  // queue, whose first poll comes after a sleep, tries the file.
  const mine = (ahead ?? Promise.resolve()).then(() => lock(path, options))
  const settled = mine.then(
    () => undefined,
    () => undefined,
  )
  queues.set(path, settled)
  void settled.then(() => {
    if (queues.get(path) === settled) queues.delete(path)
  })
  return mine
}

/** Release a lock taken with {@link tryLock} or {@link lock}. */
export function unlock(path: string, options: LockOptions): void {
  const mine = held.get(path)
  held.delete(path)
  // Held long enough to have been judged stale: remove it only if it is still ours.
  if (mine !== undefined && Date.now() - mine.since > options.staleMs / 2 && readLock(path)?.raw !== mine.content) return
  unlinkQuiet(path)
}

/** Keep a lock that is held for long (a purge of a large folder) from looking stale. */
export function refreshLock(path: string, options: LockOptions): void {
  const mine = held.get(path)
  if (mine === undefined || readLock(path)?.raw !== mine.content) return
  const since = Date.now()
  const content = `${TAG} ${process.pid} ${since} ${++sequence} ${IDENTITY}`
  // A new lock beside it, then `rename` over it: the lock is never missing nor half-written.
  const next = `${path}.${process.pid}-${sequence}.next`
  unlinkQuiet(next)
  create(next, content, options.fileMode)
  renameSync(next, path)
  held.set(path, { content, since })
}
