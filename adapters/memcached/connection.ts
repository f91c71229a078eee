/**
 * The connections to the servers: which server holds a key (consistent hashing), one request and its
 * reply, a deadline on every request, and a short circuit for a server that is down.
 *
 * Never hangs: every request fails after `commandTimeout` even if the socket closed without a word (memjs
 * then never calls back). A server that failed is not asked again for {@link RETRY_MS}: calls to it fail at
 * once, then the next call tries it (one at a time), and the first answer puts it back in service.
 */
import { CacheBackendError } from '../../src/errors.js'
import type { MemjsModule, MemjsResponse, MemjsServer } from './driver.js'
import { request, STATUS } from './protocol.js'
import { Ring } from './ring.js'

/** How long a failed server is left alone before a call tries it again. */
export const RETRY_MS = 1_000

/** A reply: its status, value, flags and the item's CAS. */
export interface Reply {
  status: number
  value: Buffer
  cas: Buffer
}

interface Pending {
  node: Node
  deadline: number
  timeoutMs: number
  what: string
  resolve: (reply: Reply) => void
  reject: (error: Error) => void
}

/** One server: its memjs connection and its health. */
class Node {
  /** Until when calls fail at once (performance.now() time); 0 while healthy. */
  downUntil = 0
  /** A call is trying the server after an outage: the others keep failing at once until it answers. */
  probing = false
  lastError: string | undefined
  /** Reported as lost once per outage. */
  reported = false

  constructor(
    readonly name: string,
    readonly server: MemjsServer,
  ) {}
}

/** Text of whatever memjs reports as an error (an Error, or a bare string for an authentication failure). */
function describe(error: unknown, options: PoolOptions): string {
  const text = error instanceof Error ? error.message : String(error)
  if (/authentication/i.test(text)) return 'SASL authentication failed: check the user and password'
  // memjs's own socket timeouts, set to the same limits as the adapter's.
  if (/timed out waiting on response/.test(text)) return `no answer within ${options.commandTimeout} ms (${options.timeoutName ?? 'commandTimeout'})`
  if (/timed out connecting/.test(text)) return `could not connect within ${options.connectTimeout} ms (connectTimeout)`
  return text
}

export interface PoolOptions {
  servers: readonly string[]
  username: string | undefined
  password: string | undefined
  connectTimeout: number
  commandTimeout: number
  /** The option `commandTimeout` comes from, for messages: `operationTimeout` when the cache's is shorter. */
  timeoutName?: string
  /** Told once per outage of a server. */
  onLost: (error: Error) => void
}

export class Pool {
  /** Names the servers in messages (never a user or password), e.g. `memcached at 127.0.0.1:11211`. */
  readonly where: string
  readonly #nodes: Node[]
  readonly #ring: Ring
  readonly #pending = new Map<number, Pending>()
  readonly #options: PoolOptions
  #opaque = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(driver: MemjsModule, options: PoolOptions) {
    this.#options = options
    this.#ring = new Ring(options.servers)
    this.where = `memcached at ${options.servers.join(', ')}`
    const serverOptions = {
      // memjs's own socket timeouts (seconds): a reply overdue by commandTimeout drops the socket.
      timeout: options.commandTimeout / 1000,
      conntimeout: options.connectTimeout / 1000,
      keepAlive: true,
      keepAliveDelay: 30,
    }
    this.#nodes = options.servers.map((name) => {
      const colon = name.lastIndexOf(':')
      const host = name.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
      const server = new driver.Server(host, Number(name.slice(colon + 1)), options.username, options.password, serverOptions)
      // memjs falls back to MEMCACHIER_* / MEMCACHE_* variables when no credentials are given: cachekit uses
      // only what its own config says.
      server.username = options.username
      server.password = options.password
      return new Node(name, server)
    })
  }

  /** The server that holds the item `name`. */
  #nodeFor(name: string): Node {
    return this.#nodes[this.#ring.owner(name)]!
  }

  /** Send one request for item `name` to its server; resolves with the reply, whatever its status. */
  send(name: string, opcode: number, extras?: Buffer, value?: Buffer, cas?: Buffer): Promise<Reply> {
    const node = this.#nodeFor(name)
    if (this.#closed) return Promise.reject(new Error(`${this.where}: the connection is closed`))
    if (node.downUntil !== 0) {
      if (performance.now() < node.downUntil || node.probing) return Promise.reject(this.#downError(node))
      node.probing = true
    }
    return this.#exchange(node, opcode, name, extras, value, cas, this.#options.commandTimeout, this.#options.timeoutName ?? 'commandTimeout')
  }

  #exchange(node: Node, opcode: number, key: string, extras: Buffer | undefined, value: Buffer | undefined, cas: Buffer | undefined, timeoutMs: number, what: string): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      this.#opaque = this.#opaque >= 0xffffffff ? 1 : this.#opaque + 1
      const opaque = this.#opaque
      const entry: Pending = { node, deadline: performance.now() + timeoutMs, timeoutMs, what, resolve, reject }
      this.#pending.set(opaque, entry)
      this.#sweep()
      node.server.onResponse(opaque, (response: MemjsResponse) => {
        if (this.#pending.get(opaque) !== entry) return
        this.#pending.delete(opaque)
        this.#healthy(node)
        resolve({ status: response.header.status, value: response.val, cas: response.header.cas })
      })
      node.server.onError(opaque, (error: unknown) => {
        if (this.#pending.get(opaque) !== entry) return
        this.#pending.delete(opaque)
        reject(this.#failed(node, describe(error, this.#options)))
      })
      try {
        node.server.write(request(opcode, opaque, key, extras, value, cas))
      } catch (error) {
        // Whatever went wrong, the call fails now and the server does not stay marked as being probed.
        this.#pending.delete(opaque)
        reject(this.#failed(node, describe(error, this.#options)))
      }
    })
  }

  #healthy(node: Node): void {
    node.downUntil = 0
    node.probing = false
    node.reported = false
  }

  /** Mark a server failed; the error for the call that found out. */
  #failed(node: Node, reason: string): Error {
    node.lastError = reason
    node.downUntil = performance.now() + RETRY_MS
    node.probing = false
    const error = new Error(`memcached at ${node.name}: ${reason}`)
    if (!node.reported && !this.#closed) {
      node.reported = true
      this.#options.onLost(new Error(`memcached at ${node.name} failed (${reason}); calls to it fail at once, and it is tried again every ${RETRY_MS} ms`))
    }
    return error
  }

  #downError(node: Node): Error {
    const last = node.lastError === undefined ? '' : ` (${node.lastError})`
    return new Error(`memcached at ${node.name} is unreachable${last}; it is tried again every ${RETRY_MS} ms`)
  }

  /** One timer while requests are pending: fails those past their deadline. */
  #sweep(): void {
    if (this.#timer !== undefined) return
    const period = Math.max(5, Math.min(100, Math.ceil(this.#options.commandTimeout / 8)))
    // Unref'd: a pending request keeps the process alive through its socket, never through this timer.
    this.#timer = setInterval(() => {
      const now = performance.now()
      for (const [opaque, p] of this.#pending) {
        if (p.deadline > now) continue
        this.#pending.delete(opaque)
        p.reject(this.#failed(p.node, `no answer within ${p.timeoutMs} ms (${p.what})`))
      }
      if (this.#pending.size === 0) {
        clearInterval(this.#timer)
        this.#timer = undefined
      }
    }, period).unref()
  }

  /**
   * Resolves when every server answers; rejects within `connectTimeout` with a `CacheBackendError` naming
   * those that do not. The cache stays usable: the servers that answer serve their keys.
   */
  async ready(): Promise<void> {
    if (this.#closed) throw new CacheBackendError(`${this.where}: the connection is closed.`)
    const { connectTimeout } = this.#options
    const results = await Promise.all(
      this.#nodes.map((node) =>
        this.#exchange(node, 0x0a, '', undefined, undefined, undefined, connectTimeout, 'connectTimeout').then(
          (reply) => (reply.status === STATUS.ok ? undefined : `${node.name} (status ${reply.status})`),
          (error: Error) => `${node.name} (${error.message.replace(`memcached at ${node.name}: `, '')})`,
        ),
      ),
    )
    const failed = results.filter((r) => r !== undefined)
    if (failed.length === 0) return
    throw new CacheBackendError(
      `Cannot reach memcached at ${failed.join(', ')} within ${connectTimeout} ms (connectTimeout). ` +
        'Check that the server runs and the address is right; an open cache keeps trying it (calls to it fail at once meanwhile).',
    )
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    for (const [opaque, p] of this.#pending) {
      this.#pending.delete(opaque)
      p.reject(new Error(`${this.where}: the connection was closed`))
    }
    for (const node of this.#nodes) node.server.close()
  }
}
