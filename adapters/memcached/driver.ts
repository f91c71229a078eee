/**
 * The parts of memjs (1.x) this adapter uses, typed here so that cachekit builds without memjs installed.
 *
 * memjs gives each server a connection (`Server`): the socket, SASL PLAIN authentication, the binary
 * protocol's framing, and replies matched to requests by their `opaque`. The adapter writes its own requests
 * (memjs 1.x has no API for CAS, which `inc`, `touch` and `deleteIfEquals` need) and picks the server itself
 * (memjs spreads keys by `hash % servers`, which moves almost every key when a server is added).
 */

/** A reply as memjs parses it. */
export interface MemjsResponse {
  header: { opcode: number; status: number; opaque: number; cas: Buffer; totalBodyLength: number }
  key: Buffer
  extras: Buffer
  val: Buffer
}

/** Options memjs reads for each server; times in seconds. */
export interface MemjsServerOptions {
  timeout: number
  conntimeout: number
  keepAlive: boolean
  keepAliveDelay: number
}

/** One server's connection. */
export interface MemjsServer {
  host: string
  port: number
  username: string | undefined
  password: string | undefined
  onResponse(opaque: number, callback: (response: MemjsResponse) => void): void
  onError(opaque: number, callback: (error: unknown) => void): void
  write(request: Buffer): void
  close(): void
}

/** The module, as `import('memjs')` gives it. */
export interface MemjsModule {
  Server: new (host: string, port: number, username: string | undefined, password: string | undefined, options: MemjsServerOptions) => MemjsServer
}
