/**
 * A cross-process lock per key, made of a lock file created with `O_EXCL` (the one create that the file
 * system makes atomic between processes). Node has no `flock`, so a holder that dies keeps its file; this
 * module tells such a stale lock from a live one and removes it safely:
 *
 * - The file says who holds it: pid, where that pid means something (host name and pid namespace) and when.
 * - It is stale when its holder is a process of this machine that is gone (checked with signal 0), or a
 *   leftover with this process's own pid that this process does not hold (a restarted container reuses
 *   pids), or when it is older than the stale timeout (a holder elsewhere, or a reused pid).
 * - Only one process may remove a stale lock, and only the one it judged: removal happens under a second
 *   lock (`<lock>.break`, itself recoverable the same way) after reading the lock again and finding the same
 *   content. Without that, two waiters that both judged it stale could each remove it, the second removing
 *   the fresh lock of the first (the race of naive lock files).
 *
 * Holds are short (a read and a rename), so a live holder never comes near the timeout; one that is
 * stopped (a debugger, SIGSTOP) for longer than it loses its lock.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readlinkSync, statSync, writeSync } from 'node:fs'
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
  return `${hostname()} ${ns}`.replace(/\n/g, ' ')
}

const IDENTITY = identity()
const HEADER = 'cachekit-lock 1'
/** How deep a chain of `.break` locks may go before the last one is removed on the evidence alone. */
const MAX_DEPTH = 2

/** The locks this process holds, by path, with the exact content it wrote. */
const held = new Map<string, { content: string; since: number }>()
let sequence = 0

interface LockInfo {
  raw: string
  pid?: number
  identity?: string
  createdAt?: number
}

function readLock(path: string): LockInfo | undefined {
  let raw: string
  try {
    raw = quiet(() => readFileSync(path, 'utf8'))
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  const [header, pid, id, createdAt] = raw.split('\n')
  if (header !== HEADER || pid === undefined || id === undefined || createdAt === undefined) return { raw }
  return { raw, pid: Number(pid), identity: id, createdAt: Number(createdAt) }
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
  let createdAt = info.createdAt
  if (createdAt === undefined || !Number.isFinite(createdAt)) {
    // Being written right now, or a holder died between create and write: judge by the file's age.
    try {
      createdAt = quiet(() => statSync(path)).mtimeMs
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true
      throw error
    }
  }
  return Date.now() - createdAt > staleMs
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
    let fd: number
    try {
      fd = quiet(() => openSync(path, 'wx', options.fileMode))
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
    const since = Date.now()
    const content = `${HEADER}\n${process.pid}\n${IDENTITY}\n${since}\n${++sequence}\n`
    try {
      writeSync(fd, content)
    } catch (error) {
      closeSync(fd)
      unlinkQuiet(path)
      throw error
    } 
    closeSync(fd)
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
export function refreshLock(path: string): void {
  const mine = held.get(path)
  if (mine === undefined || readLock(path)?.raw !== mine.content) return
  const since = Date.now()
  const content = mine.content.replace(/^(.*\n.*\n.*\n)\d+\n/, `$1${since}\n`)
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, content, 0)
  } finally {
    closeSync(fd)
  }
  held.set(path, { content, since })
}
