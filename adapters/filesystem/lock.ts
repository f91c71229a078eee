/**
 * A cross-process lock per key. Node has no `flock`, so a lock is a name in the folder whose creation the
 * file system makes atomic between processes, and a holder that dies keeps it; this module tells such a
 * stale lock from a live one and removes it safely:
 *
 * - The lock is created with its holder already in it. Each process writes, once per cache folder, a
 *   holder file (`cachekit-holder-<pid>-<id>`: pid, where that pid means something, a random id), and a
 *   lock is a hard link to it: `link` fails if the name exists, and the holder is there from the instant
 *   the name is. So no crash leaves a lock that does not say who holds it (a lock file opened with
 *   `O_EXCL` and then written could: waiters could not check its holder and waited the whole stale
 *   timeout). A link makes no new inode, which is what makes a lock cheap enough for every `set` (measured
 *   on ext4, in a set: a hard link and its removal add about a third of what a symbolic link would).
 *   Where hard links cannot be made (FAT), a lock is a file created with `O_EXCL` and written at once.
 * - It is stale when its holder is a process of this machine that is gone (checked with signal 0), or a
 *   leftover with this process's own pid that this process does not hold (a restarted container reuses
 *   pids), or when its holder cannot be checked (another container, a reused pid) and has not locked or
 *   unlocked anything for the stale timeout: every link and unlink of a holder's locks stamps its holder
 *   file (ctime), so that stamp is the holder's last sign of life. A lock that says nothing (an empty file
 *   of a crashed older version, a power loss) is stale once it is {@link UNSIGNED_GRACE_MS} old.
 * - Only one process may remove a stale lock, and only the one it judged: removal happens under a second
 *   lock (`<lock>.break`, itself recoverable the same way) after reading the lock again and finding it the
 *   same (file, content and stamp). Without that, two waiters that both judged it stale could each remove
 *   it, the second removing the fresh lock of the first (the race of naive lock files).
 *
 * Holds are short (a read and a rename), so a live holder never comes near the timeout; one that is
 * stopped (a debugger, SIGSTOP) for longer than it loses its lock.
 */
import { randomBytes, createHash } from 'node:crypto'
import { closeSync, constants, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, utimesSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { errorCode, quiet, sleep, unlinkQuiet } from './io.js'

export interface LockOptions {
  /** After this many ms a lock whose holder cannot be checked is stale. */
  staleMs: number
  fileMode: number
  dirMode: number
  /** The folder of this process's holder file (the cache folder). @default the lock's own folder */
  root?: string
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

const FULL_IDENTITY = identity()
/** The identity, hashed to a short word (a host name may hold spaces). */
const IDENTITY = createHash('sha256').update(FULL_IDENTITY).digest('hex').slice(0, 12)
/** A holder file: its locks are hard links to it, their age is its ctime. */
const HOLDER_TAG = 'ckh'
/** A lock file of its own (where hard links cannot be made): its age is the time it says. */
const FILE_TAG = 'ck2'
/** This process, among the processes that had its pid. */
const NONCE = randomBytes(4).toString('hex')
/** Holder files in a cache folder. */
export const HOLDER_NAME = /^cachekit-holder-\d+-[0-9a-f]{8}$/
/** How deep a chain of `.break` locks may go before the last one is removed on the evidence alone. */
const MAX_DEPTH = 2
/**
 * A lock that does not say who holds it is stale after this long. This version never makes one where hard
 * links can be made; an older version (or this one on FAT) creating a lock file and writing it a few µs
 * later might.
 */
export const UNSIGNED_GRACE_MS = 100
/** A holder file with no lock left, of a process that cannot be checked, is removed after this long. */
const HOLDER_MAX_IDLE_MS = 60 * 60_000
/** Flags to read a lock file or an entry: never through a symbolic link, never blocking on a FIFO. */
export const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)
/** Flags to create a file that must be new: never through a symbolic link a stranger planted. */
export const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0)

/** The locks this process holds, by path: the file each is (its inode) and since when. */
const held = new Map<string, { ino: number; since: number }>()
/** This process's holder file in each folder, by folder. */
const holders = new Map<string, { path: string; ino: number }>()
let sequence = 0
let linked = true

/**
 * Make locks as hard links to a holder file (the default) or as files of their own (what is used where hard
 * links cannot be made). For tests of the fallback; returns the previous setting.
 * @internal
 */
export function useLinkedLocks(on: boolean): boolean {
  const before = linked
  linked = on
  return before
}

/** What `link` answers where hard links cannot be made (EPERM: Linux for "this file system has none"). */
const UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK'])

/** Create the new file `path` with `content`, never through a link; returns its inode. */
function writeNew(path: string, content: string, mode: number): number {
  const fd = quiet(() => openSync(path, CREATE_FLAGS, mode))
  try {
    writeSync(fd, content)
    return fstatSync(fd).ino
  } finally {
    closeSync(fd)
  }
}

function holderOf(root: string, options: LockOptions): { path: string; ino: number } {
  const known = holders.get(root)
  if (known !== undefined) return known
  const path = join(root, `cachekit-holder-${process.pid}-${NONCE}`)
  const content = `${HOLDER_TAG} ${process.pid} ${Date.now()} ${NONCE} ${IDENTITY}`
  let ino: number
  try {
    ino = writeNew(path, content, options.fileMode)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') mkdirSync(root, { recursive: true, mode: options.dirMode })
    // EEXIST: planted (the name has a random part), or left by a failed write of this process: not trusted.
    else if (errorCode(error) === 'EEXIST') unlinkQuiet(path)
    else throw error
    ino = writeNew(path, content, options.fileMode)
  }
  const holder = { path, ino }
  holders.set(root, holder)
  return holder
}

/** Create the lock at `path`, holding its holder from the start; throws EEXIST if it exists. Returns its inode. */
function create(path: string, options: LockOptions): number {
  if (linked) {
    const root = options.root ?? dirname(path)
    const holder = holderOf(root, options)
    try {
      quiet(() => linkSync(holder.path, path))
      return holder.ino
    } catch (error) {
      const code = errorCode(error) ?? ''
      if (code === 'ENOENT') {
        // The lock's folder is missing, or the holder file was removed (a user's `rm`): make it anew.
        try {
          quiet(() => lstatSync(holder.path))
        } catch {
          holders.delete(root)
        }
        throw error
      }
      if (!UNSUPPORTED.has(code)) throw error
      if (code !== 'EMLINK') linked = false
    }
  }
  return writeNew(path, `${FILE_TAG} ${process.pid} ${Date.now()} ${++sequence} ${IDENTITY}`, options.fileMode)
}

interface LockInfo {
  raw: string
  ino: number
  /** When the lock last changed (its holder's last lock or unlock, for a linked lock). */
  changedAt: number
  /** When it was written (for a lock that says nothing). */
  modifiedAt: number
  pid?: number
  identity?: string
  /** When it was taken, for a lock file of its own (not a holder's link). */
  createdAt?: number
}

/** The lock at `path` as it is now, or `undefined` if there is none. Never follows a link, never blocks. */
function readLock(path: string): LockInfo | undefined {
  let raw: string
  let stat: { ino: number; ctimeMs: number; mtimeMs: number }
  try {
    let fd: number
    try {
      fd = quiet(() => openSync(path, READ_FLAGS))
    } catch (error) {
      // Not a file (a link someone planted, a folder): no holder in it.
      if (errorCode(error) !== 'ELOOP' && errorCode(error) !== 'EISDIR') throw error
      stat = quiet(() => lstatSync(path))
      return { raw: '', ino: stat.ino, changedAt: stat.ctimeMs, modifiedAt: stat.mtimeMs }
    }
    try {
      stat = fstatSync(fd)
      const buf = Buffer.allocUnsafe(256)
      let n = 0
      try {
        n = readSync(fd, buf, 0, buf.length, 0)
      } catch (error) {
        if (errorCode(error) !== 'EAGAIN' && errorCode(error) !== 'ESPIPE') throw error
      }
      raw = buf.toString('utf8', 0, n)
    } finally {
      closeSync(fd)
    }
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  const info: LockInfo = { raw, ino: stat.ino, changedAt: stat.ctimeMs, modifiedAt: stat.mtimeMs }
  const [tag, pid, createdAt, , id] = raw.split(' ')
  if ((tag === HOLDER_TAG || tag === FILE_TAG) && pid !== undefined && createdAt !== undefined && id !== undefined) {
    return { ...info, pid: Number(pid), identity: id, createdAt: tag === FILE_TAG ? Number(createdAt) : undefined }
  }
  // The lock file of an older version (during a rolling upgrade): four lines, the identity in full.
  const [header, oldPid, oldId, oldCreatedAt] = raw.split('\n')
  if (header === 'cachekit-lock 1' && oldPid !== undefined && oldId !== undefined && oldCreatedAt !== undefined) {
    const same = oldId === FULL_IDENTITY.replace(/\n/g, ' ')
    return { ...info, pid: Number(oldPid), identity: same ? IDENTITY : oldId, createdAt: Number(oldCreatedAt) }
  }
  return info
}

const sameLock = (a: LockInfo, b: LockInfo | undefined): boolean =>
  b !== undefined && a.ino === b.ino && a.changedAt === b.changedAt && a.raw === b.raw

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
    if (info.pid === process.pid) return held.get(path)?.ino !== info.ino
    if (!alive(info.pid)) return true
  }
  if (info.pid !== undefined) {
    const since = info.createdAt !== undefined && Number.isFinite(info.createdAt) ? info.createdAt : info.changedAt
    return Date.now() - since > staleMs
  }
  // A lock that says nothing: its writer died (or is an older version between its create and its write).
  return Date.now() - info.modifiedAt > Math.min(UNSIGNED_GRACE_MS, staleMs)
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
    if (sameLock(seen, readLock(path))) unlinkQuiet(path)
    return true
  }
  const breaker = `${path}.break`
  if (!tryLock(breaker, options, depth + 1)) return false
  try {
    // Only breakers (under this lock) remove a lock they did not take, so the lock read again is the very
    // lock judged stale, not a fresh one that replaced it (a new holder's link changes the stamp).
    if (sameLock(seen, readLock(path))) unlinkQuiet(path)
  } finally {
    unlock(breaker, options)
  }
  return true
}

/** Take the lock at `path` if it is free or stale; never waits. */
export function tryLock(path: string, options: LockOptions, depth = 0): boolean {
  for (let attempt = 0; attempt < 4; attempt++) {
    let ino: number
    try {
      ino = create(path, options)
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
    held.set(path, { ino, since: Date.now() })
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
  if (mine !== undefined && Date.now() - mine.since > options.staleMs / 2 && readLock(path)?.ino !== mine.ino) return
  unlinkQuiet(path)
}

/** Keep a lock that is held for long (a purge of a large folder) from looking stale. */
export function refreshLock(path: string): void {
  const mine = held.get(path)
  const now = readLock(path)
  if (mine === undefined || now?.ino !== mine.ino) return
  const seconds = Date.now() / 1000
  if (now.createdAt === undefined) {
    // A holder's link: stamp the holder (its ctime is what waiters judge by).
    utimesSync(path, seconds, seconds)
  } else {
    const fd = openSync(path, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0))
    try {
      writeSync(fd, `${FILE_TAG} ${process.pid} ${Date.now()} ${++sequence} ${IDENTITY}`, 0)
    } finally {
      closeSync(fd)
    }
  }
  held.set(path, { ino: mine.ino, since: Date.now() })
}

/**
 * Remove the holder files in `root` that no lock links to any more, of processes that are gone (or that
 * cannot be checked and have been idle for an hour). This process's own holder stays.
 */
export function tidyHolders(root: string): void {
  let names: string[]
  try {
    names = readdirSync(root).filter((name) => HOLDER_NAME.test(name))
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return
    throw error
  }
  for (const name of names) {
    const path = join(root, name)
    if (holders.get(root)?.path === path) continue
    const info = readLock(path)
    if (info === undefined) continue
    let links: number
    try {
      links = quiet(() => lstatSync(path)).nlink
    } catch (error) {
      if (errorCode(error) === 'ENOENT') continue
      throw error
    }
    if (links > 1) continue
    const gone = info.pid !== undefined && info.identity === IDENTITY && info.pid !== process.pid && !alive(info.pid)
    if (gone || Date.now() - info.changedAt > HOLDER_MAX_IDLE_MS) unlinkQuiet(path)
  }
}
