/** The redis backend, as the Cache knows it before loading it: its options, URL check and variable. */
import type { AdapterDefinition } from '../../src/definition.js'
import { isModuleMissing } from '../../src/definition.js'
import type { Duration } from '../../src/duration.js'
import { CacheConfigError } from '../../src/errors.js'
import { redactText, redactUrl } from '../../src/redact.js'

/** A Redis node as @redis/client takes it: `{ url: 'redis://10.0.0.1:6379' }` or `{ socket: { host, port } }`. */
export interface RedisNodeOption {
  url?: string
  socket?: { host?: string; port?: number; tls?: boolean; [option: string]: unknown }
  [option: string]: unknown
}

/** Options of the redis backend (Redis and Valkey). */
export interface RedisAdapterOptions {
  /**
   * The server: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
   * @default 'redis://127.0.0.1:6379' without `client`, `cluster` or `sentinel`
   */
  url?: string
  /**
   * A client made by @redis/client (`createClient`, `createCluster` or `createSentinel`). cachekit connects
   * it if it is not open yet (and then closes it on `close()`); one already open stays yours to close.
   */
  client?: object
  /**
   * A Redis Cluster, as @redis/client's `createCluster` takes it. cachekit adds its timeouts and turns the
   * offline queue off in `defaults`.
   * @example { rootNodes: [{ url: 'redis://10.0.0.1:7000' }, { url: 'redis://10.0.0.2:7000' }] }
   */
  cluster?: { rootNodes: RedisNodeOption[]; defaults?: Record<string, unknown>; [option: string]: unknown }
  /**
   * Redis Sentinel, as @redis/client's `createSentinel` takes it: the master's `name` and the sentinels to ask.
   * @example { name: 'mymaster', sentinelRootNodes: [{ host: '10.0.0.1', port: 26379 }] }
   */
  sentinel?: {
    name: string
    sentinelRootNodes: { host: string; port: number }[]
    nodeClientOptions?: Record<string, unknown>
    sentinelClientOptions?: Record<string, unknown>
    [option: string]: unknown
  }
  /**
   * How long `ready()` waits for the first connection (and each connection attempt may take) before it
   * rejects with a `CacheBackendError` naming the server. cachekit keeps reconnecting in the background.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * The longest any one command may take (it fails at most an eighth of this later, as one sweep checks
   * every command's deadline). A command that times out fails (a miss or `false` with `failOpen`; an error
   * for `inc`, `dec` and `add`). While the server is down commands fail at once. The commands of one
   * `getOrSet` or memoized call share one deadline, this unless `operationTimeout` is set.
   * @default '1s'
   */
  commandTimeout?: Duration
  /**
   * Allow `clear()` with an empty `keyPrefix`, which deletes every key in the database (with SCAN and
   * UNLINK, on every master), other applications' keys included. Refused unless true.
   * @default false
   */
  clearAll?: boolean
  /**
   * More options for @redis/client's `createClient` with `url` (e.g. `{ socket: { ca, cert, key } }` for
   * TLS, `{ database: 2 }`). cachekit's `disableOfflineQueue` and timeouts apply unless set here.
   */
  clientOptions?: Record<string, unknown>
}

const REDIS_URL_FORM = 'write it as redis://[user:password@]host:port[/db] (or rediss:// for TLS)'

/**
 * Refuse a Redis URL that would not connect where it says, before anything connects, with a message that
 * says what is wrong and never shows the password (the URL parser's own error carries the whole input, so
 * it is not kept as the cause). A userinfo is everything before the last `@`, as the parser reads it.
 */
function checkRedisUrl(url: string): Record<string, unknown> {
  const shown = JSON.stringify(redactUrl(url))
  const scheme = /^rediss?:\/\//i.exec(url)
  if (scheme === null) throw new CacheConfigError(`Invalid Redis URL ${shown}: ${REDIS_URL_FORM}.`, { option: 'url' })
  const rest = url.slice(scheme[0].length)
  const at = rest.lastIndexOf('@')
  const userinfo = at === -1 ? '' : rest.slice(0, at)
  const authority = (at === -1 ? rest : rest.slice(at + 1)).split(/[/?#]/, 1)[0] ?? ''
  if (/[/?#]/.test(userinfo)) {
    throw new CacheConfigError(
      `Invalid Redis URL ${shown}: the user name or password contains \`/\`, \`?\` or \`#\`, which end a URL's host part. ` +
        'Percent-encode the password (encodeURIComponent(password): %2F, %3F, %23), or pass it in `clientOptions: { password }`.',
      { option: 'url' },
    )
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    const port = /^(?:\[[^\]]*\]|[^:[\]]*)(?::(.*))?$/.exec(authority)?.[1]
    const reason = authority.includes('[') && !/^\[[0-9a-f:.]+\](:\d*)?$/i.test(authority)
      ? 'an IPv6 host goes in brackets, e.g. redis://[::1]:6379'
      : port !== undefined && !/^\d*$/.test(port)
        ? 'the port must be a number'
        : /\s/.test(userinfo)
          ? 'percent-encode the user name and password (encodeURIComponent)'
          : REDIS_URL_FORM
    // No cause: the parser's TypeError holds the whole input, password included.
    throw new CacheConfigError(`Invalid Redis URL ${shown}: ${reason}.`, { option: 'url' })
  }
  try {
    decodeURIComponent(parsed.username)
    decodeURIComponent(parsed.password)
  } catch {
    throw new CacheConfigError(`Invalid Redis URL ${shown}: the user name or password has a \`%\` that is not a percent-escape; write it as %25.`, { option: 'url' })
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d+$/.test(parsed.pathname)) {
    throw new CacheConfigError(`Invalid Redis URL ${shown}: the path must be a database number such as /0, not ${JSON.stringify(redactText(parsed.pathname))}.`, { option: 'url' })
  }
  return {}
}

/** `redis://host:6379` (or `type: 'redis'`, `'valkey'`): one server, a cluster or Sentinel, shared by every process. */
export const redisDefinition: AdapterDefinition = {
  type: 'redis',
  aliases: ['valkey'],
  options: {
    client: 'object',
    cluster: 'object',
    sentinel: 'object',
    connectTimeout: 'duration',
    commandTimeout: 'duration',
    clearAll: 'boolean',
    clientOptions: 'object',
  },
  schemes: ['redis', 'rediss'],
  fromUrl: checkRedisUrl,
  env: { CACHE_REDIS_URL: 'url' },
  load: async () => {
    try {
      return (await import('./index.js')).redisAdapter
    } catch (error) {
      if (isModuleMissing(error, '@keyv/redis', '@redis/client')) {
        throw new CacheConfigError('The redis backend needs @keyv/redis: run `npm install @keyv/redis`.', { option: 'type', cause: error })
      }
      throw error
    }
  },
}
