/**
 * A TCP proxy of the test's own on 127.0.0.1 in front of a shared server (PostgreSQL, MySQL), so that a test
 * can make that server look frozen or slow to its own client without touching the server: what the client
 * writes is always passed on at once, and the server's answers are passed on (`pass`), kept back until the
 * mode changes (`hold`: commands are written and never answered, as with a server stopped by SIGSTOP), or
 * each passed on `ms` late (`delay`: a slow server that still answers everything).
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

export type ProxyMode = { kind: 'pass' } | { kind: 'hold' } | { kind: 'delay'; ms: number }

interface Pair {
  client: Socket
  upstream: Socket
  /** Answers kept back (hold), in order. */
  held: Buffer[]
  /** This connection's own mode, over the proxy's (see `setFor`). */
  mode?: ProxyMode
}

export class HoldingProxy {
  #server: Server | undefined
  #mode: ProxyMode = { kind: 'pass' }
  readonly #pairs = new Set<Pair>()
  /** Every connection in the order it was accepted. */
  readonly #accepted: Pair[] = []
  port = 0

  constructor(
    readonly targetPort: number,
    readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<this> {
    this.#server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost)
      const pair: Pair = { client, upstream, held: [] }
      this.#pairs.add(pair)
      this.#accepted.push(pair)
      const end = () => {
        this.#pairs.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      client.on('error', end)
      upstream.on('error', end)
      client.on('close', end)
      upstream.on('close', end)
      client.on('data', (chunk) => upstream.write(chunk))
      upstream.on('data', (chunk) => this.#answer(pair, chunk))
    })
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server!.address() as { port: number }).port
    return this
  }

  #answer(pair: Pair, chunk: Buffer): void {
    const mode = pair.mode ?? this.#mode
    if (mode.kind === 'hold' || pair.held.length > 0) {
      pair.held.push(chunk)
      return
    }
    if (mode.kind === 'pass') pair.client.write(chunk)
    // Timers of one delay fire in the order they were set: the answers keep their order.
    else setTimeout(() => pair.client.write(chunk), mode.ms)
  }

  /** How the server's answers go from now on; what was held is let go when the mode is no longer `hold`. */
  set(mode: ProxyMode): void {
    this.#mode = mode
    if (mode.kind === 'hold') return
    for (const pair of this.#pairs) {
      const held = pair.held.splice(0)
      for (const chunk of held) pair.client.write(chunk)
    }
  }

  /**
   * The mode of the `index`-th connection accepted (0 the first), whatever the proxy's: to slow one
   * connection of a client and not another (its command connection, not its invalidation connection).
   */
  setFor(index: number, mode: ProxyMode): void {
    const pair = this.#accepted[index]
    if (pair === undefined) throw new Error(`the proxy has accepted ${this.#accepted.length} connections, not ${index + 1}`)
    pair.mode = mode
    if (mode.kind === 'hold') return
    for (const chunk of pair.held.splice(0)) pair.client.write(chunk)
  }

  /** Connections currently open through the proxy. */
  get connections(): number {
    return this.#pairs.size
  }

  async stop(): Promise<void> {
    for (const pair of this.#pairs) {
      pair.client.destroy()
      pair.upstream.destroy()
    }
    this.#pairs.clear()
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())))
  }
}
