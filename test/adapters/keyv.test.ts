import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import KeyvPostgres from '@keyv/postgres'
import KeyvRedis from '@keyv/redis'
import { keyvAdapter } from '../../adapters/keyv/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { benchPeer, benchPeerPath, type KeyvSqliteClass } from '../support/bench-peers.js'
import { uniqueTableName } from '../support/prefix.js'
import { freePort, RedisServer, redisServerOrSkip } from '../support/redis.js'
import { POSTGRES_URL, postgresOrSkip } from '../support/sql.js'
import { ROOM } from '../support/processes.js'

const NOT_ATOMIC = { atomic: false, realClock: false } as const
// The bridge's commandTimeout counts an operation's wait for its key's turn, so the suite's 200 concurrent
// `inc` of one key must all end within it: 400 round trips one after another, which a loaded machine does
// not finish in the default 1 s. The suite checks atomicity, not latency (keyv-timeout.test.ts checks the
// timeout), so the stores on disk and on servers get ROOM.

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
    create: (context) => keyvAdapter({ store: new KeyvSqlite(sqlite), shared: true, ...ROOM }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: benchPeerPath('@keyv/sqlite') ?? '@keyv/sqlite', options: sqlite }, shared: true, ...ROOM },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  })
}

// The suite's purgeExpired test sweeps the whole store (the bridge cannot purge by prefix) on a clock moved a
// minute ahead, so it deletes every Keyv entry there that expires within the minute, other users' too. So
// each store here is the run's own: a table of its own on the shared PostgreSQL, a redis-server of its own.

// @keyv/postgres makes VARCHAR(255) keys by default; the suite stores 4 KiB keys.
const postgres = { uri: POSTGRES_URL, table: uniqueTableName('keyv_conformance'), keySize: 8192 }
if (await postgresOrSkip('the keyv (@keyv/postgres) conformance suite')) {
  runAdapterConformance({
    name: 'keyv (@keyv/postgres)',
    create: (context) => keyvAdapter({ store: new KeyvPostgres(postgres), shared: true, ...ROOM }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: '@keyv/postgres', options: postgres }, shared: true, ...ROOM },
    cleanup: async () => {
      const store = new KeyvPostgres(postgres)
      await store.query(`DROP TABLE IF EXISTS public.${postgres.table}`)
      await store.disconnect()
    },
  })
}

if (await redisServerOrSkip('the keyv (@keyv/redis) conformance suite', 'test/adapters/keyv.test.ts')) {
  const server = await new RedisServer(await freePort()).start()
  runAdapterConformance({
    name: 'keyv (@keyv/redis)',
    create: (context) => keyvAdapter({ store: new KeyvRedis(server.url), shared: true, ...ROOM }, context),
    capabilities: { shared: true, ...NOT_ATOMIC },
    processConfig: { type: 'keyv', store: { module: '@keyv/redis', options: server.url }, shared: true, ...ROOM },
    cleanup: () => server.stop(),
  })
}
