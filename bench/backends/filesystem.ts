import { BentoCache, bentostore } from 'bentocache'
import { fileDriver } from 'bentocache/drivers/file'
import { createHash, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyvFile } from 'keyv-file'
import type { BenchBackend, Contestant } from '../harness.js'
import { cachekit, keyvPeers, TTL_MS } from '../peers.js'
import { tempDir } from './tmp.js'

/**
 * Raw `fs`, synchronous calls (the fastest way for small files): one file per key named by a hash, in 256 shard folders, an expiry header line, writes to a
 * temp file then rename (what any correct file cache must do). No increment: raw fs has no atomic one.
 */
function raw(dir: string): Contestant {
  for (let i = 0; i < 256; i++) mkdirSync(join(dir, i.toString(16).padStart(2, '0')), { recursive: true })
  const path = (k: string) => {
    const h = createHash('sha256').update(k).digest('hex')
    return join(dir, h.slice(0, 2), h)
  }
  const get = (k: string) => {
    let text: string
    try {
      text = readFileSync(path(k), 'utf8')
    } catch {
      return undefined
    }
    const nl = text.indexOf('\n')
    return Number(text.slice(0, nl)) <= Date.now() ? undefined : (JSON.parse(text.slice(nl + 1)) as unknown)
  }
  const set = (k: string, v: unknown) => {
    const p = path(k)
    const tmp = `${p}.${randomUUID()}.tmp`
    writeFileSync(tmp, `${Date.now() + TTL_MS}\n${JSON.stringify(v)}`)
    renameSync(tmp, p)
  }
  return {
    name: 'raw fs',
    role: 'raw',
    get,
    set,
    async getOrSet(k, f) {
      const hit = get(k)
      if (hit !== undefined) return hit
      const v = await f()
      set(k, v)
      return v
    },
    close: () => {},
  }
}

function bento(dir: string): Contestant {
  const bento = new BentoCache({ default: 'f', stores: { f: bentostore().useL2Layer(fileDriver({ directory: dir, pruneInterval: false })) } })
  return {
    name: 'bentocache (file, no L1)',
    role: 'peer',
    get: (k) => bento.get({ key: k }),
    set: (k, v) => bento.set({ key: k, value: v, ttl: TTL_MS }),
    getOrSet: (k, f) => bento.getOrSet({ key: k, factory: f, ttl: TTL_MS }),
    close: () => bento.disconnectAll(),
  }
}

export const filesystem: BenchBackend = {
  name: 'filesystem',
  inflight: [1],
  batch: 5,
  async open() {
    const dir = tempDir('fs')
    return [
      ...(await cachekit('filesystem', { type: 'filesystem', url: `file:${join(dir, 'cachekit')}` })),
      raw(join(dir, 'raw')),
      ...keyvPeers('keyv-file', (name) => new KeyvFile({ filename: join(dir, `${name}.json`), writeDelay: 0 }) as never),
      bento(join(dir, 'bento')),
    ]
  },
  notes: [
    'filesystem: keyv-file keeps the whole cache in one JSON file held in memory and rewritten on change: its reads never touch the disk.',
  ],
}
