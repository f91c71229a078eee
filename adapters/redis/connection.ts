import KeyvRedis from '@keyv/redis'
import { CacheBackendError, CacheConfigError } from '../../src/errors.js'
import { collectSecrets, redactError, redactText, redactUrl } from '../../src/redact.js'
import type { RedisAdapterOptions } from './definition.js'

/** The commands the adapter sends, as @redis/client's client, cluster and sentinel all offer them. */
export interface Commands {
  get(key: string): Promise<string | Buffer | null>
  mGet(keys: string[]): Promise<(string | Buffer | null)[]>
  set(key: string, value: string | Buffer, options?: object): Promise<string | Buffer | null>
  exists(keys: string | string[]): Promise<number>
  unlink(keys: string | string[]): Promise<number>
  pExpire(key: string, ms: number): Promise<number>
  pTTL(key: string): Promise<number>
  evalSha(sha: string, options: { keys: string[]; arguments: (string | Buffer)[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: (string | Buffer)[] }): Promise<unknown>
  scan(cursor: string, options: { MATCH: string; COUNT: number }): Promise<{ cursor: string | number; keys: (string | Buffer)[] }>
  multi(): Multi
}

interface Multi {
  set(key: string, value: string | Buffer, options?: object): Multi
  exec(): Promise<unknown[]>
}

/** What every kind of @redis/client connection has besides its commands. */
interface Driver extends Commands {
  readonly isOpen: boolean
  readonly isReady?: boolean
  readonly options?: { url?: string; socket?: { host?: string; port?: number } }
  connect(): Promise<unknown>
  close(): Promise<void>
  destroy(): void
  withTypeMapping(mapping: object): Commands
  on(event: string, listener: (...args: unknown[]) => void): unknown
  off(event: string, listener: (...args: unknown[]) => void): unknown
  listeners(event: string): ((...args: unknown[]) => void)[]
  sendCommand(args: string[]): Promise<unknown>
}

/** The parts of @keyv/redis this adapter uses: the connection it builds, its masters and its slot grouping. */
interface KeyvRedisParts {
  readonly client: unknown
  isCluster(): boolean
  getMasterNodes(): Promise<unknown[]>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  /** Private in @keyv/redis 5 (its slot-aware batching); checked to exist at start-up. */
  getSlotMap?(keys: string[]): Map<number, string[]>
}

/**
 * `RESP_TYPES.BLOB_STRING` of @redis/client (the RESP `$` type), written out so that cachekit needs only
 * @keyv/redis installed: under a strict package manager @redis/client is its dependency, not ours.
 */
export const BLOB_STRING = 36

/** Events cachekit listens to on the driver; removed again on close, so a caller's client stays clean. */
const EVENTS = ['error', 'ready', 'connect', 'end', 'reconnecting', 'disconnect', 'node-error', 'node-ready'] as const

/** Reconnect backoff: 50 ms doubling to at most 1 s, with jitter, forever (until `close()`). */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), 1000) + Math.floor(Math.random() * 50)
}

function nodeName(node: { url?: unknown; socket?: { host?: unknown; port?: unknown } } | undefined): string {
  if (node === undefined) return '?'
  if (typeof node.url === 'string') return redactUrl(node.url)
  return `${String(node.socket?.host ?? '127.0.0.1')}:${String(node.socket?.port ?? 6379)}`
}

/** A live connection: the driver, its state, and how to reach every master. */
export class Connection {
  /** Names the server(s) in messages, password hidden, e.g. `Redis at redis://127.0.0.1:6379`. */
  readonly where: string
  readonly isCluster: boolean
  /** Reached through Sentinel, which moves the master on a failover. */
  readonly isSentinel: boolean
  /** The connection is cachekit's own (not a client the caller passed in): nobody else sends commands on it. */
  readonly ownConnection: boolean
  /** Commands whose string replies are strings. */
  readonly text: Commands
  /** Commands whose string replies are Buffers, for payloads that may be bytes. */
  readonly bytes: Commands
  readonly connectTimeout: number
  /** True once the first connection attempt has ended (connected, failed or timed out). */
  started = false
  /** Resolves when the first connection attempt ends; never rejects. */
  readonly starting: Promise<void>
  #lastError: Error | undefined
  /** Between a lost connection and its return: reported once per outage. */
  #up = false
  /** The first connection succeeded (a cluster has no readiness of its own: each node has). */
  #connected = false
  #closed = false
  readonly #driver: Driver
  readonly #keyv: KeyvRedisParts
  readonly #owned: boolean
  readonly #added = new Map<string, ((...args: unknown[]) => void)[]>()
  readonly #onLost: (error: Error) => void
  /** The passwords and URLs of the options: hidden in every driver error before it is kept or passed on. */
  readonly #secrets: string[]

  constructor(options: RedisAdapterOptions, connectTimeout: number, onLost: (error: Error) => void) {
    this.connectTimeout = connectTimeout
    this.#onLost = onLost
    this.isSentinel = options.sentinel !== undefined
    this.ownConnection = options.client === undefined
    const socket = { connectTimeout, reconnectStrategy: reconnectDelay }
    const ways = (['url', 'client', 'cluster', 'sentinel'] as const).filter((o) => options[o] !== undefined)
    if (ways.length > 1) {
      throw new CacheConfigError(`Options ${ways.map((o) => `\`${o}\``).join(' and ')} both say where Redis is: give only one of them.`, { option: ways[1] })
    }
    if (options.clientOptions !== undefined && ways[0] !== undefined && ways[0] !== 'url') {
      const where = { client: 'the client you pass', cluster: '`cluster.defaults`', sentinel: '`sentinel.nodeClientOptions`' }[ways[0]]
      throw new CacheConfigError(`Option \`clientOptions\` applies to \`url\` only; with \`${ways[0]}\`, put client options in ${where}.`, { option: 'clientOptions' })
    }
    const given = options.client as Driver | undefined
    let connect: unknown
    if (given !== undefined) {
      if (typeof given !== 'object' || given === null || typeof given.connect !== 'function' || typeof given.get !== 'function') {
        throw new CacheConfigError('Option `client` must be a client made by @redis/client (createClient, createCluster or createSentinel).', { option: 'client' })
      }
      connect = given
      const o = given.options as { url?: string; rootNodes?: Parameters<typeof nodeName>[0][] } | undefined
      this.where = Array.isArray(o?.rootNodes)
        ? `Redis Cluster at ${o.rootNodes.map(nodeName).join(', ')}`
        : `Redis at ${o?.url === undefined ? nodeName(o) : redactUrl(o.url)}`
    } else if (options.cluster !== undefined) {
      const c = options.cluster
      if (!Array.isArray(c.rootNodes) || c.rootNodes.length === 0) {
        throw new CacheConfigError('Option `cluster` needs `rootNodes`, e.g. { rootNodes: [{ url: "redis://10.0.0.1:6379" }] }.', { option: 'cluster' })
      }
      const defaults = (c.defaults ?? {}) as { socket?: object }
      connect = { ...c, defaults: { disableOfflineQueue: true, ...defaults, socket: { ...socket, ...defaults.socket } } }
      this.where = `Redis Cluster at ${c.rootNodes.map(nodeName).join(', ')}`
    } else if (options.sentinel !== undefined) {
      const s = options.sentinel
      if (typeof s.name !== 'string' || !Array.isArray(s.sentinelRootNodes) || s.sentinelRootNodes.length === 0) {
        throw new CacheConfigError('Option `sentinel` needs `name` and `sentinelRootNodes`, e.g. { name: "mymaster", sentinelRootNodes: [{ host: "10.0.0.1", port: 26379 }] }.', { option: 'sentinel' })
      }
      const node = (s.nodeClientOptions ?? {}) as { socket?: object }
      const sentinel = (s.sentinelClientOptions ?? {}) as { socket?: object }
      connect = {
        ...s,
        nodeClientOptions: { disableOfflineQueue: true, ...node, socket: { ...socket, ...node.socket } },
        sentinelClientOptions: { ...sentinel, socket: { ...socket, ...sentinel.socket } },
      }
      this.where = `Redis Sentinel master "${s.name}" via ${s.sentinelRootNodes.map((n) => `${n.host}:${n.port}`).join(', ')}`
    } else {
      const url = options.url ?? 'redis://127.0.0.1:6379'
      const extra = (options.clientOptions ?? {}) as { socket?: object }
      connect = { url, disableOfflineQueue: true, ...extra, socket: { ...socket, ...extra.socket } }
      this.where = `Redis at ${redactUrl(url)}`
    }

    // @keyv/redis builds the connection (client, cluster or sentinel) and adds its own listeners: note them
    // so that close() takes them off a client the caller gave us.
    const before = given === undefined ? undefined : new Map(EVENTS.map((e) => [e, given.listeners(e)]))
    // A client's own options are searched too: they may hold its URL and password.
    this.#secrets = collectSecrets({ ...options, client: given?.options })
    let keyv: KeyvRedisParts
    try {
      keyv = new KeyvRedis(connect as string, { throwOnErrors: true, useUnlink: true }) as unknown as KeyvRedisParts
    } catch (error) {
      // @redis/client checks its options here, and some of its messages quote the whole URL.
      const safe = this.redact(error)
      throw new CacheConfigError(`${this.where}: the Redis client refused these options: ${safe.message}`, { option: ways[0] ?? 'url', cause: safe })
    }
    keyv.on('error', () => {}) // errors are handled below; this only keeps Hookified from throwing.
    this.#keyv = keyv
    this.#driver = keyv.client as Driver
    this.isCluster = keyv.isCluster()
    if (this.isCluster && typeof keyv.getSlotMap !== 'function') {
      throw new CacheConfigError('This version of @keyv/redis has no slot grouping (getSlotMap); cachekit needs @keyv/redis 5.', { option: 'cluster' })
    }
    if (before !== undefined) {
      for (const e of EVENTS) this.#added.set(e, given!.listeners(e).filter((l) => !before.get(e)?.includes(l)))
    }
    const up = () => {
      this.#up = true
    }
    this.#listen('error', (error) => this.#error(error as Error))
    this.#listen('ready', up)
    // A cluster reports its nodes' connections under these names.
    this.#listen('node-error', (error) => this.#error(error as Error))
    this.#listen('node-ready', up)
    this.text = this.#driver
    this.bytes = this.#driver.withTypeMapping({ [BLOB_STRING]: Buffer })

    // A client the caller connected already is theirs to close; one we connect, we close.
    this.#owned = given === undefined || !given.isOpen
    const connecting = this.#owned ? this.#driver.connect() : Promise.resolve()
    this.starting = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, connectTimeout)
      const done = () => {
        clearTimeout(timer)
        resolve()
      }
      connecting.then(() => {
        if (!this.#closed) {
          this.#up = true
          this.#connected = true
        }
        done()
      }, (error: unknown) => {
        this.#lastError = this.redact(error)
        done()
      })
    }).then(() => {
      this.started = true
    })
  }

  #listen(event: string, listener: (...args: unknown[]) => void): void {
    this.#driver.on(event, listener)
    this.#added.set(event, [...(this.#added.get(event) ?? []), listener])
  }

  /** A driver error with every credential of the options hidden (the same error when it holds none). */
  redact(error: unknown): Error {
    return error instanceof Error ? redactError(error, this.#secrets) : new Error(redactText(String(error), this.#secrets))
  }

  #error(raw: Error): void {
    const error = this.redact(raw)
    this.#lastError = error
    // One report per outage: the driver emits an error on every reconnect attempt.
    if (!this.#up || this.#closed) return
    this.#up = false
    this.#onLost(new Error(`${this.where}: connection lost (${error.message}); reconnecting in the background`, { cause: error }))
  }

  /** True while commands can be sent. */
  isUp(): boolean {
    if (this.#closed) return false
    const ready = this.#driver.isReady
    // A cluster: each node client fails at once while its node is down (no offline queue).
    return ready === undefined ? this.#connected && this.#driver.isOpen : ready
  }

  /** The error for a command that cannot be sent now. */
  downError(): Error {
    const last = this.#lastError === undefined ? '' : ` (${this.#lastError.message})`
    return new Error(`${this.where} is unreachable${last}; reconnecting in the background`, { cause: this.#lastError })
  }

  /**
   * Resolves when commands can run; rejects within `connectTimeout` with a `CacheBackendError` naming the
   * server when they cannot.
   */
  async ready(): Promise<void> {
    if (this.isUp()) return
    if (this.#closed) throw new CacheBackendError(`${this.where}: the connection is closed.`)
    // One budget for the whole call: the first connection attempt counts against it, so waiting for it
    // and then polling never adds up to more than connectTimeout.
    const deadline = performance.now() + this.connectTimeout
    if (!this.started) await this.starting
    const left = deadline - performance.now()
    if (!this.isUp() && !this.#closed && left > 0) {
      // Poll rather than listen: a cluster or sentinel says "ready" differently from a client, and a poll
      // leaves no listener behind however often ready() is called during an outage.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, left)
        const poll = setInterval(() => (this.isUp() || this.#closed) && finish(), 20)
        function finish() {
          clearTimeout(timer)
          clearInterval(poll)
          resolve()
        }
      })
    }
    if (this.isUp()) return
    if (this.#closed) throw new CacheBackendError(`${this.where}: the connection is closed.`)
    const last = this.#lastError === undefined ? '' : `: ${this.#lastError.message}`
    throw new CacheBackendError(
      `Cannot reach ${this.where} within ${this.connectTimeout} ms (connectTimeout)${last}. ` +
        'Check that the server is running and the URL is right; an open cache keeps reconnecting in the background until it is closed.',
      { cause: this.#lastError },
    )
  }

  /** A command connection to every master (one on a single server or Sentinel), for SCAN. */
  async masters(): Promise<Commands[]> {
    if (!this.isCluster) return [this.text]
    return (await this.#keyv.getMasterNodes()) as Commands[]
  }

  /** Keys grouped so that each group lives in one slot (one group when not a cluster). */
  slotGroups(keys: string[]): string[][] {
    if (!this.isCluster) return [keys]
    return [...this.#keyv.getSlotMap!(keys).values()]
  }

  /**
   * A new connection to the same server with the same options (credentials, TLS), for the memory tier's
   * invalidations: it does not reconnect by itself (its owner starts a new one, and knows it was lost).
   */
  duplicate(): Driver & { clientId(): Promise<number>; sendCommand(args: string[]): Promise<unknown>; subscribe(channel: string, listener: (message: unknown) => void): Promise<void>; ping(): Promise<string> } {
    const d = this.#driver as unknown as { duplicate(overrides: object): never; options?: { socket?: object } }
    return d.duplicate({ socket: { ...(d.options?.socket ?? {}), connectTimeout: this.connectTimeout, reconnectStrategy: false }, disableOfflineQueue: true })
  }

  /**
   * For the memory tier: `lost` when the command connection drops, `ready` when it is back. Returns the
   * function that removes both listeners again.
   */
  watch(lost: () => void, ready: () => void): () => void {
    const onLost = () => lost()
    const onReady = () => ready()
    this.#driver.on('error', onLost)
    this.#driver.on('reconnecting', onLost)
    this.#driver.on('end', onLost)
    this.#driver.on('ready', onReady)
    return () => {
      this.#driver.off('error', onLost)
      this.#driver.off('reconnecting', onLost)
      this.#driver.off('end', onLost)
      this.#driver.off('ready', onReady)
    }
  }

  /** A raw command on the command connection (`CLIENT TRACKING`). */
  command(args: string[]): Promise<unknown> {
    return this.#driver.sendCommand(args)
  }

  /** Listener counts on the driver, for the tests that check they stay flat across outages. */
  listenerCounts(): Record<string, number> {
    return Object.fromEntries(EVENTS.map((e) => [e, this.#driver.listeners(e).length]))
  }

  async close(waitMs: number): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const [event, listeners] of this.#added) for (const l of listeners) this.#driver.off(event, l)
    if (!this.#owned) return
    // Keep one listener: a driver still winding down may emit 'error', which must not crash the process.
    this.#driver.on('error', () => {})
    if (!this.#driver.isOpen) return
    if (!this.#connectedNow()) {
      this.#driver.destroy()
      return
    }
    // Let commands in flight finish, but never wait longer than a command may take.
    let timer: NodeJS.Timeout | undefined
    const closing = this.#driver.close().catch(() => {})
    await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))])
    clearTimeout(timer)
    if (this.#driver.isOpen) this.#driver.destroy()
  }

  #connectedNow(): boolean {
    const ready = this.#driver.isReady
    return ready === undefined ? this.#connected : ready
  }
}
