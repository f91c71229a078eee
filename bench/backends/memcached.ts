import KeyvMemcache from '@keyv/memcache'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createConnection, createServer } from 'node:net'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'

/** The parts of memjs's Client the raw contestant uses. */
interface MemjsClient {
  get(key: string): Promise<{ value: Buffer | null }>
  set(key: string, value: string, options: { expires: number }): Promise<boolean>
  increment(key: string, amount: number, options: { initial: number; expires: number }): Promise<{ value: number | null }>
  close(): void
}

let server: ChildProcess | undefined

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const address = s.address()
      s.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.on('error', () => resolve(false))
    socket.on('connect', () => {
      socket.destroy()
      resolve(true)
    })
  })

/** A memcached of the benchmark's own on a free loopback port, stopped by `cleanup`. */
async function startServer(): Promise<string> {
  const port = await freePort()
  const user = process.getuid?.() === 0 ? ['-u', 'memcache'] : []
  server = spawn('memcached', ['-p', String(port), '-l', '127.0.0.1', '-U', '0', '-m', '256', ...user], { stdio: 'ignore' })
  for (let i = 0; i < 250 && !(await accepts(port)); i++) await new Promise((r) => setTimeout(r, 20))
  return `127.0.0.1:${port}`
}

/** memjs's own Client: GET/SET with JSON values, INCR (native, so unsigned, and it fails on a value set by SET). */
async function raw(address: string): Promise<Contestant> {
  const name = 'memjs'
  const memjs = ((await import(name)) as { default: { Client: { create(servers: string, options: object): MemjsClient } } }).default
  const client = memjs.Client.create(address, { logger: { log() {} }, retries: 1 })
  const expires = Math.ceil(TTL_MS / 1000)
  const get = async (k: string) => {
    const { value } = await client.get(`raw:${k}`)
    return value === null ? undefined : (JSON.parse(value.toString()) as unknown)
  }
  const set = (k: string, v: unknown) => client.set(`raw:${k}`, JSON.stringify(v), { expires })
  return {
    name: 'raw memjs',
    role: 'raw',
    get,
    set,
    async getOrSet(k, f) {
      const hit = await get(k)
      if (hit !== undefined) return hit
      const v = await f()
      await set(k, v)
      return v
    },
    inc: async (k) => (await client.increment(`raw:inc:${k}`, 1, { initial: 1, expires })).value,
    close: () => client.close(),
  }
}

export const memcached: BenchBackend = {
  name: 'memcached',
  inflight: [1, 64],
  batch: 1,
  async open() {
    if (spawnSync('memcached', ['-h']).status !== 0) return []
    const address = await startServer()
    try {
      return [
        ...(await cachekit('memcached', { type: 'memcached', servers: [address], keyPrefix: 'cachekit:' })),
        ...(await cachekit('memcached', { type: 'memcached', servers: [address], keyPrefix: 'cachekit-1s:', clearCheckInterval: '1s' })).map((c) => ({
          ...c,
          name: 'cachekit, clearCheckInterval 1s',
        })),
        await raw(address),
        // Each over its own client; the store's namespace (set by Keyv) keeps their keys apart.
        ...keyvPeers('@keyv/memcache', () => new KeyvMemcache(address, { logger: { log() {} } }) as never),
      ]
    } catch {
      // memjs is not installed: nothing to compare.
      return []
    }
  },
  async cleanup() {
    server?.kill('SIGKILL')
    server = undefined
  },
  notes: [
    'memcached: a server of the run\'s own over loopback. cachekit reads its clear registry with every call (in parallel) by default; the "clearCheckInterval 1s" row skips that read. ' +
      'cachekit\'s inc is a compare-and-set step (a read, then a write), raw memjs\'s is memcached\'s own INCR (one command); keyv and its peers have no inc.',
  ],
}
