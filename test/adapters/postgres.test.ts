import { afterAll } from 'vitest'
import { postgresAdapter } from '../../adapters/postgres/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { uniqueTableName } from '../support/prefix.js'
import { pgQuery, POSTGRES_URL, postgresOrSkip } from '../support/sql.js'
import { skippedHere } from '../support/servers.js'
import { ROOM } from '../support/processes.js'

const table = uniqueTableName('conf')

if (await postgresOrSkip('the postgres conformance suite')) {
  runAdapterConformance({
    name: `postgres (${POSTGRES_URL}, table ${table})`,
    create: (context) => postgresAdapter({ url: POSTGRES_URL, table, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: false },
    processConfig: { type: 'postgres', url: POSTGRES_URL, table, ...ROOM },
  })
  afterAll(() => pgQuery(`DROP TABLE IF EXISTS "${table}"`))
} else {
  skippedHere('the postgres conformance suite')
}
