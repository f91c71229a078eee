/**
 * The Redis backend's invalidation channel for the memory tier: server-assisted client-side caching
 * (`CLIENT TRACKING ... BCAST PREFIX <keyPrefix>`). One extra connection per cache turns tracking on for
 * itself and subscribes to `__redis__:invalidate`; the server then pushes the key of every change under the
 * prefix, whoever makes it (a process with the tier, one without, another program), and of every key that
 * expires or is evicted. `FLUSHALL`/`FLUSHDB` arrive as a flush.
 *
 * Why tracking rather than a pub/sub channel of cachekit's own: a writer without the tier, or one that
 * crashes between its write and its PUBLISH, would leave other processes' tiers stale; with tracking the
 * server reports every change itself, at no cost to the writer's round trip.
 *
 * On cachekit's own command connection, tracking is turned on there with NOLOOP (this process's own
 * writes are not echoed back: the tier records them itself); on a client passed in, on the subscriber.
 *
 * The connection never reconnects by itself: when it is lost (an error, `CLIENT KILL`, a server restart) or
 * stops answering its heartbeat (a frozen server), the channel says it is down, so the tier is flushed and
 * bypassed, and a new connection is made with a backoff. Only once it is tracking and subscribed again is
 * the channel up, and the tier, empty, used again.
 */
import type { InvalidationChannel, InvalidationListener } from '../../src/adapter.js'
import { reconnectDelay, type Connection } from './connection.js'

/** How often the connection is pinged, and how long a ping may take before the channel counts as down. */
export const HEARTBEAT_MS = 1_000

type TrackingClient = ReturnType<Connection['duplicate']>

export function trackingChannel(conn: Connection, prefix: string): InvalidationChannel {
  const where = conn.where
  /**
   * On cachekit's own command connection tracking is turned on there (redirected here, NOLOOP), so this
   * process's own writes cost no message; then that connection's loss is the channel's too. On a client the
   * caller passed in, which other code may write through, the subscriber tracks for itself and hears of
   * every write, this process's included.
   */
  const viaCommands = conn.ownConnection
  let unwatch: (() => void) | undefined
  let listener: InvalidationListener | undefined
  let client: TrackingClient | undefined
  let closed = false
  let up = false
  let attempts = 0
  let retry: NodeJS.Timeout | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let pingOut = false

  const down = (reason: string): void => {
    clearInterval(heartbeat)
    const old = client
    client = undefined
    if (old !== undefined) {
      old.on('error', () => {})
      try {
        old.destroy()
      } catch {
        // already gone
      }
    }
    // Said every time, up or not: the tier reports a channel that never came up once, and a loss once.
    up = false
    listener?.state(false, reason)
    if (!closed && retry === undefined) {
      retry = setTimeout(() => {
        retry = undefined
        void connect()
      }, reconnectDelay(attempts++))
      retry.unref?.()
    }
  }

  const onMessage = (message: unknown): void => {
    if (listener === undefined) return
    // A null message: the database was flushed (FLUSHALL, FLUSHDB) and every key is gone.
    if (message === null || message === undefined) listener.flush()
    else listener.invalidate(Array.isArray(message) ? message.map(String) : [String(message)])
  }

  const connect = async (): Promise<void> => {
    if (closed) return
    let c: TrackingClient
    try {
      c = conn.duplicate()
    } catch (error) {
      down(`${where}: cannot open the invalidation connection (${conn.redact(error).message})`)
      return
    }
    client = c
    c.on('error', (error: unknown) => {
      if (client === c) down(`${where}: the invalidation connection was lost (${conn.redact(error).message})`)
    })
    c.on('end', () => {
      if (client === c && !closed) down(`${where}: the invalidation connection was closed`)
    })
    let timer: NodeJS.Timeout | undefined
    try {
      const setup = async () => {
        await c.connect()
        const id = await c.clientId()
        const tracking = ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'BCAST', ...(prefix === '' ? [] : ['PREFIX', prefix])]
        if (!viaCommands) await c.sendCommand(tracking)
        await c.subscribe('__redis__:invalidate', onMessage)
        if (viaCommands) {
          // Tracking is turned on for the command connection, sending to this one, with NOLOOP: the server
          // does not echo this process's own writes (which the tier has recorded itself). Off first, as a
          // connection that had tracking on with another redirect (a subscriber lost before) must change it.
          await conn.command(['CLIENT', 'TRACKING', 'OFF'])
          await conn.command([...tracking, 'NOLOOP'])
        }
        // Tracking and the subscription are in place: everything from now on is reported.
        await c.ping()
      }
      // A server that accepts the connection and then stops answering must not hold the channel forever.
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${conn.connectTimeout} ms`)), conn.connectTimeout)
      })
      await Promise.race([setup(), late])
    } catch (error) {
      clearTimeout(timer)
      if (client === c) down(`${where}: the invalidation connection could not start (${conn.redact(error).message})`)
      return
    }
    clearTimeout(timer)
    if (client !== c || closed) return
    attempts = 0
    pingOut = false
    up = true
    listener?.state(true, `${where}: invalidations are tracked again`)
    heartbeat = setInterval(() => {
      if (pingOut) {
        down(`${where}: the invalidation connection did not answer for ${HEARTBEAT_MS} ms`)
        return
      }
      pingOut = true
      c.ping().then(
        () => {
          pingOut = false
        },
        () => {},
      )
    }, HEARTBEAT_MS)
    heartbeat.unref?.()
  }

  return {
    kind: 'push',
    start(l) {
      listener = l
      if (viaCommands) {
        unwatch = conn.watch(
          () => {
            if (up) down(`${where}: the command connection, which carries the tracking, was lost`)
          },
          () => {
            // Back: track again at once rather than after the backoff.
            if (!up && retry !== undefined) {
              clearTimeout(retry)
              retry = undefined
              void connect()
            }
          },
        )
      }
      void connect()
    },
    async close() {
      closed = true
      unwatch?.()
      clearTimeout(retry)
      clearInterval(heartbeat)
      const c = client
      client = undefined
      listener = undefined
      if (c === undefined) return
      c.on('error', () => {})
      try {
        if (c.isOpen) await Promise.race([c.close(), new Promise((r) => setTimeout(r, 500))])
      } catch {
        // closing anyway
      }
      if (c.isOpen) c.destroy()
    },
  }
}
