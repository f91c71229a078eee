import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import KeyvPostgres from '@keyv/postgres'
import KeyvRedis from '@keyv/redis'
import { keyvAdapter } from '../../adapters/keyv.js'
import { createCache } from '../../src/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { POSTGRES_URI, REDIS_URL, serverAvailable } from '../keyv-servers.js'
import { benchPeer, benchPeerPath, type KeyvSqliteClass } from '../support/bench-peers.js'

const NOT_ATOMIC = { atomic: false, realClock: false } as const

// A Map lives in one process and serves one cache, so each cache gets its own.
runAdapterConformance({
  name: 'keyv (Map)',
  create: (context) => keyvAdapter({ store: new Map() }, context),
  capabilities: { shared: false, ...NOT_ATOMIC },
})

// @keyv/sqlite comes with the benchmark's packages (its sqlite3 is compiled); the children import it from there.
const KeyvSqlite = await benchPeer<KeyvSqliteClass>('@keyv/sqlite', 'the keyv conformance suite over @keyv/sqlite')
if (KeyvSqlite !== undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-keyv-'))
  const sqlite = { uri: `sqlite://${join(dir, 'keyv.sqlite')}`, busyTimeout: 10_000 }
  runAdapterConformance({
    name: 'keyv (@keyv/sqlite)',
    create: (context) => keyvAdapter({ store: new KeyvSqlite(sqlite), shared: true }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: benchPeerPath('@keyv/sqlite') ?? '@keyv/sqlite', options: sqlite }, shared: true },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  })
}

// @keyv/postgres makes VARCHAR(255) keys by default; the suite stores 4 KiB keys.
const postgres = { uri: POSTGRES_URI, table: 'cachekit_keyv_conformance', keySize: 8192 }
if (await serverAvailable('PostgreSQL')) {
  runAdapterConformance({
    name: 'keyv (@keyv/postgres)',
    create: (context) => keyvAdapter({ store: new KeyvPostgres(postgres), shared: true }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: '@keyv/postgres', options: postgres }, shared: true },
    // The child processes' keys outlive their runs (default TTL); sweep the expired ones of earlier runs.
    cleanup: async () => {
      const sweeper = createCache({ type: 'keyv', store: new KeyvPostgres(postgres) })
      await sweeper.purgeExpired()
      await sweeper.close()
    },
  })
}

if (await serverAvailable('Redis')) {
  runAdapterConformance({
    name: 'keyv (@keyv/redis)',
    create: (context) => keyvAdapter({ store: new KeyvRedis(REDIS_URL), shared: true }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: '@keyv/redis', options: REDIS_URL }, shared: true },
  })
}
