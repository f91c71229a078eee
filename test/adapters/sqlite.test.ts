import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqliteAdapter } from '../../adapters/sqlite/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { sqliteDriversUnderTest } from '../support/sqlite.js'

for (const driver of sqliteDriversUnderTest('the SQLite conformance suite (test/adapters/sqlite.test.ts)')) {
  const dir = mkdtempSync(join(tmpdir(), `cachekit-sqlite-${driver}-`))
  const path = join(dir, 'conformance.sqlite')

  runAdapterConformance({
    name: `sqlite on ${driver} (file)`,
    create: (context) => sqliteAdapter({ path, driver }, context),
    capabilities: { shared: true, atomic: true, realClock: false },
    processConfig: { type: 'sqlite', path, driver },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  })

  runAdapterConformance({
    name: `sqlite on ${driver} (:memory:)`,
    create: (context) => sqliteAdapter({ path: ':memory:', driver }, context),
    capabilities: { shared: false, atomic: true, realClock: false },
  })
}
