import { afterAll } from 'vitest'
import { mysqlAdapter } from '../../adapters/mysql/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { uniqueTableName } from '../support/prefix.js'
import { MYSQL_URL, mysqlOrSkip, mysqlQuery } from '../support/sql.js'
import { skippedHere } from '../support/servers.js'
import { ROOM } from '../support/processes.js'

const table = uniqueTableName('conf')

if (await mysqlOrSkip('the mysql conformance suite')) {
  runAdapterConformance({
    name: `mysql (${MYSQL_URL}, table ${table})`,
    create: (context) => mysqlAdapter({ url: MYSQL_URL, table, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: false },
    processConfig: { type: 'mysql', url: MYSQL_URL, table, ...ROOM },
  })
  afterAll(() => mysqlQuery(`DROP TABLE IF EXISTS \`${table}\``))
} else {
  skippedHere('the mysql conformance suite')
}
