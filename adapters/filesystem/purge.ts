/**
 * Housekeeping of a cache folder, shared by every process that uses it: purging expired files and keeping
 * the number of entries under `threshold`, without listing the folder on every write.
 *
 * How the count is bounded. Every write that may create an entry appends one byte to `cachekit-writes` (an
 * `O_APPEND` file, so appends from many processes all land) after its rename, and `fstat` gives the total
 * so far. (A write over a file it saw there, under the key's lock, creates nothing: every removal holds
 * that lock too, so the file is still there when the rename replaces it.) A pass (one
 * process at a time, under `cachekit-housekeeping.lock`) notes the journal size, counts the entries and
 * records `count` and that size in `cachekit-state`. So `count + (journal size - size at the pass)` is an
 * upper bound of the entries now: every entry created since the pass either was counted or appended its
 * byte after the pass began. A write checks that bound (one `fstat`):
 *
 * - below `threshold`: it writes;
 * - at `threshold`: it starts a pass in the background and writes; the pass removes expired entries, then
 *   the oldest, down to `threshold - slack`;
 * - at `threshold + slack`: it waits for a pass first.
 *
 * So the folder holds at most `threshold + slack` entries (slack = 10% of `threshold`, at least 1), plus
 * one write in flight per process. The bound does not subtract deletes, so it only errs
 * towards passing early; a pass that finds room only lists the shard folders (no file is opened).
 */
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, openSync, readdirSync, readSync, renameSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { AdapterContext } from '../../src/adapter.js'
import { ENTRY_NAME, SHARD_NAME } from './format.js'
import { errorCode, quiet, unlinkQuiet, yieldToLoop } from './io.js'
import { breakIfStale, CREATE_FLAGS, lockNowOrLater, READ_FLAGS, refreshLock, tidyHolders, unlock } from './lock.js'
import type { EntryFiles, ReadResult } from './store.js'

/** The journal is emptied by the next pass once it is this long (one byte per write). */
const JOURNAL_MAX = 1024 * 1024
/** A temporary file this old belongs to a write that died before its rename. */
export const TEMP_MAX_AGE_MS = 60 * 60_000
const ONE = Buffer.from([10])
/** The journal is appended to, and never through a symbolic link (which could make it append to any file). */
const JOURNAL_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (constants.O_NOFOLLOW ?? 0)

interface State {
  /** Entries counted by the last pass. */
  count: number
  /** Journal size when that pass began. */
  at: number
  /** When the last purge of expired entries ran (real time). */
  purgedAt: number
}

/** How far over `threshold` the count may go before writers wait: 10%, at least 1. */
export function slackOf(threshold: number): number {
  return Math.max(1, Math.ceil(threshold / 10))
}

interface Live {
  hash: string
  writtenAt: number
}

export class Housekeeper {
  readonly #files: EntryFiles
  readonly #context: AdapterContext
  readonly #threshold: number
  readonly #slack: number
  readonly #journalPath: string
  readonly #statePath: string
  readonly #lockPath: string
  #journal: number
  #state: State | undefined
  #pass: Promise<number> | undefined
  #closed = false
  #timer: NodeJS.Timeout | undefined

  constructor(files: EntryFiles, context: AdapterContext, purgeInterval: number) {
    this.#files = files
    this.#context = context
    this.#threshold = context.threshold
    this.#slack = slackOf(context.threshold)
    this.#journalPath = join(files.root, 'cachekit-writes')
    this.#statePath = join(files.root, 'cachekit-state')
    this.#lockPath = join(files.root, 'cachekit-housekeeping.lock')
    this.#journal = openSync(this.#journalPath, JOURNAL_FLAGS, files.fileMode)
    this.#state = this.#readState()
    if (purgeInterval > 0) {
      this.#timer = setInterval(() => this.#scheduledPurge(purgeInterval), purgeInterval)
      this.#timer.unref()
    }
  }

  /** Count the folder once if no pass has ever recorded a count (a new folder, or one from elsewhere). */
  async ready(): Promise<void> {
    if (this.#state === undefined) await this.#request('count')
  }

  /**
   * Called before a write that may add an entry: `undefined` to go ahead now, or a promise to wait for room.
   */
  admit(): Promise<void> | undefined {
    if (this.#threshold === 0 || this.#estimate() < this.#threshold) return undefined
    this.#state = this.#readState()
    const estimate = this.#estimate()
    if (estimate < this.#threshold) return undefined
    this.#request('count').catch((error: unknown) => this.#reportError(error))
    if (estimate < this.#threshold + this.#slack) return undefined
    return this.#waitForRoom()
  }

  /** Called after each write that may have added an entry. */
  written(): void {
    // After close the descriptor may already belong to another file: never write to it.
    if (this.#threshold > 0 && !this.#closed) writeSync(this.#journal, ONE)
  }

  /** Remove expired (and corrupt) entries now; resolves to how many were removed. */
  purge(): Promise<number> {
    return this.#request('purge')
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    await this.#pass?.catch(() => 0)
    closeSync(this.#journal)
  }

  #estimate(): number {
    if (this.#closed) return 0
    const size = fstatSync(this.#journal).size
    let state = this.#state
    if (state === undefined || size < state.at) state = this.#state = this.#readState()
    // No count yet, or a journal replaced under us: assume the worst, so that a pass settles it.
    if (state === undefined) return Infinity
    return state.count + Math.max(0, size - state.at)
  }

  async #waitForRoom(): Promise<void> {
    for (;;) {
      await this.#request('count')
      if (this.#closed) return
      this.#state = this.#readState()
      if (this.#estimate() < this.#threshold + this.#slack) return
    }
  }

  #scheduledPurge(interval: number): void {
    if (this.#pass !== undefined) return
    this.#state = this.#readState()
    // Another process purged recently: the folder is shared, so one purge per interval is enough.
    if (this.#state !== undefined && Date.now() - this.#state.purgedAt < interval * 0.75) return
    this.purge().catch((error: unknown) => this.#reportError(error))
  }

  #reportError(error: unknown): void {
    if (this.#closed) return
    this.#context.emit({ type: 'error', error: error instanceof Error ? error : new Error(String(error)) })
  }

  /** Run a pass, or join the one this adapter is running (a purge never joins a mere count). */
  #request(kind: 'count' | 'purge'): Promise<number> {
    const running = this.#pass
    if (running !== undefined && kind === 'count') return running
    const pass = (async () => {
      if (running !== undefined) await running.catch(() => 0)
      return this.#run(kind)
    })()
    this.#pass = pass
    const clear = () => {
      if (this.#pass === pass) this.#pass = undefined
    }
    pass.then(clear, clear)
    return pass
  }

  async #run(kind: 'count' | 'purge'): Promise<number> {
    if (this.#closed) return 0
    await lockNowOrLater(this.#lockPath, this.#files.lock)
    try {
      this.#state = this.#readState()
      // Another process's pass may have made room while this one waited for the lock.
      if (kind === 'count' && this.#state !== undefined && this.#estimate() < this.#threshold) return 0
      return await this.#sweep(kind === 'purge')
    } finally {
      unlock(this.#lockPath, this.#files.lock)
    }
  }

  async #sweep(purge: boolean): Promise<number> {
    const journalAt = fstatSync(this.#journal).size
    let scan = await this.#scan(purge)
    let removed = scan.removed
    let count = scan.count
    const target = this.#threshold - this.#slack
    if (this.#threshold > 0 && count > target) {
      // Over: read every header (removing expired entries), then remove the oldest.
      if (scan.live === undefined) {
        scan = await this.#scan(true)
        removed += scan.removed
        count = scan.count
      }
      const live = (scan.live ?? []).sort((a, b) => a.writtenAt - b.writtenAt)
      for (const { hash, writtenAt } of live) {
        if (count <= target || this.#closed) break
        const gone = this.#files.removeIf(hash, 'header', (r) => typeof r === 'object' && r.header.writtenAt === writtenAt)
        if (gone) {
          count--
          removed++
        }
      }
    }
    // After the scan, which broke the stale locks still linked to them: holder files of processes gone.
    if (purge && !this.#closed) tidyHolders(this.#files.root)
    this.#finish(count, journalAt, purge)
    return removed
  }

  /** Record the count, and empty a long journal (state first, so readers never see a short journal with an old state). */
  #finish(count: number, journalAt: number, purged: boolean): void {
    if (this.#closed) return
    const purgedAt = purged ? Date.now() : (this.#readState()?.purgedAt ?? 0)
    const size = this.#reopenJournalIfReplaced()
    if (size > JOURNAL_MAX) {
      this.#writeState({ count: count + (size - journalAt), at: 0, purgedAt })
      ftruncateSync(this.#journal, 0)
    } else {
      this.#writeState({ count, at: journalAt, purgedAt })
    }
  }

  /** The journal's size; if someone removed or replaced the file, open the one that is there now. */
  #reopenJournalIfReplaced(): number {
    const mine = fstatSync(this.#journal)
    let there: number | undefined
    try {
      there = lstatSync(this.#journalPath).ino
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error
    }
    if (there === mine.ino) return mine.size
    closeSync(this.#journal)
    this.#journal = openSync(this.#journalPath, JOURNAL_FLAGS, this.#files.fileMode)
    return fstatSync(this.#journal).size
  }

  /**
   * Go through every shard folder. Without `headers`, only count entries (one `readdir` per shard). With
   * them, read each entry's header (never its payload), remove expired and corrupt entries, stale locks and
   * dead temporary files, and list the live entries with their age.
   */
  async #scan(headers: boolean): Promise<{ count: number; removed: number; live: Live[] | undefined }> {
    const now = this.#context.now()
    const live: Live[] | undefined = headers ? [] : undefined
    let count = 0
    let removed = 0
    let refreshed = Date.now()
    for (const shard of this.#shards()) {
      if (this.#closed) break
      const folder = join(this.#files.root, shard)
      let names: string[]
      try {
        names = readdirSync(folder)
      } catch (error) {
        if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') continue
        throw error
      }
      for (const name of names) {
        if (ENTRY_NAME.test(name)) {
          if (live === undefined) {
            count++
            continue
          }
          const read = this.#files.read(join(folder, name), 'header')
          if (read === undefined) continue
          if (typeof read === 'string') {
            if (this.#files.removeIf(name, 'header', (r) => typeof r === 'string')) {
              removed++
              this.#context.emit({ type: 'corrupt', detail: `${join(folder, name)}: ${read}; removed` })
            } else count++
            continue
          }
          const { expiresAt, writtenAt } = read.header
          if (expiresAt !== null && expiresAt <= now) {
            if (this.#files.removeIf(name, 'header', (r) => isExpired(r, now))) {
              removed++
              continue
            }
          }
          count++
          live.push({ hash: name, writtenAt })
        } else if (headers) {
          this.#tidy(join(folder, name), name)
        }
      }
      // Yield between shards so a large folder never stalls the event loop for long.
      await yieldToLoop()
      if (Date.now() - refreshed > this.#files.lock.staleMs / 4) {
        refreshLock(this.#lockPath)
        refreshed = Date.now()
      }
    }
    return { count, removed, live }
  }

  /** Remove what a crashed process left beside the entries: stale locks and temporary files. */
  #tidy(path: string, name: string): void {
    if (name.endsWith('.lock') || name.endsWith('.break')) {
      breakIfStale(path, this.#files.lock)
    } else if (name.endsWith('.tmp')) {
      try {
        if (Date.now() - quiet(() => lstatSync(path)).mtimeMs > TEMP_MAX_AGE_MS) unlinkQuiet(path)
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error
      }
    }
  }

  /** The shard folders: real folders only, so that a purge never follows a symbolic link out of the cache. */
  #shards(): string[] {
    try {
      return readdirSync(this.#files.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && SHARD_NAME.test(d.name))
        .map((d) => d.name)
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return []
      throw error
    }
  }

  #readState(): State | undefined {
    let text: string
    try {
      const fd = quiet(() => openSync(this.#statePath, READ_FLAGS))
      try {
        const buf = Buffer.allocUnsafe(128)
        text = buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0))
      } finally {
        closeSync(fd)
      }
    } catch (error) {
      // Missing, or not a file cachekit wrote (a link, a folder): no state, and the next pass writes one.
      if (['ENOENT', 'ELOOP', 'EISDIR', 'EAGAIN'].includes(errorCode(error) ?? '')) return undefined
      throw error
    }
    const [count, at, purgedAt] = text.trim().split(' ').map(Number)
    if (!Number.isSafeInteger(count) || !Number.isSafeInteger(at) || !Number.isFinite(purgedAt)) return undefined
    return { count: count as number, at: at as number, purgedAt: purgedAt as number }
  }

  #writeState(state: State): void {
    const temp = `${this.#statePath}.${process.pid}.tmp`
    // A new file, never one a link points to: a leftover of this pid (or a planted link) is removed first.
    unlinkQuiet(temp)
    const fd = openSync(temp, CREATE_FLAGS, this.#files.fileMode)
    try {
      writeSync(fd, `${state.count} ${state.at} ${state.purgedAt}\n`)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, this.#statePath)
    this.#state = state
  }
}

function isExpired(read: ReadResult, now: number): boolean {
  return typeof read === 'object' && read.header.expiresAt !== null && read.header.expiresAt <= now
}
