/** The filesystem backend, as the Cache knows it before loading it. */
import type { AdapterDefinition } from '../../src/definition.js'
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import { pathFromUrl, redactUrl, refuseUserinfo } from '../../src/url.js'

/** Options of the filesystem backend. */
export interface FilesystemAdapterOptions {
  /**
   * The folder of the cache, relative to the working directory or absolute. Created if missing (with
   * `dirMode`). Give each application its own: `clear()` empties only cachekit's entries in it, but every
   * process that opens the folder shares its entries. Not on a network file system. Env `CACHE_DIR`.
   * @default '.cache/cachekit'
   */
  dir?: string
  /**
   * The permission mode of the folders cachekit creates (the process umask still applies). Must include 0o700.
   * @default 0o700
   */
  dirMode?: number
  /**
   * The permission mode of entry files (the process umask still applies). Must include 0o600.
   * @default 0o600
   */
  fileMode?: number
  /**
   * After how long a key's lock counts as abandoned when its holder cannot be checked (a process of another
   * host or container). A holder on this machine that has died is detected at once; a live holder keeps a
   * lock for microseconds.
   * @default '10s'
   */
  lockStaleTimeout?: Duration
  /**
   * How often expired entries are deleted in the background (an unref'd timer); `0` turns it off
   * (`purgeExpired()` still works). On a folder shared by several processes, one of them purges per
   * interval, for all.
   * @default '1m'
   */
  purgeInterval?: Duration
}

/** `file:./cache` (or `type: 'filesystem'`): one file per key in a folder every local process shares. */
export const filesystemDefinition: AdapterDefinition = {
  type: 'filesystem',
  // Flask-Caching's `FileSystemCache` (and `filesystemcache`) reach it through the lowercase, strip-"cache" rule.
  aliases: ['file', 'fs', 'files'],
  options: { dir: 'string', dirMode: 'number', fileMode: 'number', lockStaleTimeout: 'duration', purgeInterval: 'duration' },
  schemes: ['file'],
  fromUrl(url) {
    refuseUserinfo(url, "'file:./cache' or 'file:///var/cache/app'")
    const dir = pathFromUrl(url)
    if (dir === '') throw new CacheConfigError(`The URL ${JSON.stringify(redactUrl(url))} names no folder: write file:./cache or file:///var/cache/app.`, { option: 'url' })
    return { dir }
  },
  env: { CACHE_DIR: 'dir' },
  load: async () => (await import('./index.js')).filesystemAdapter,
}
