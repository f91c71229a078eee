import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqliteAdapter } from '../../adapters/sqlite/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'

const dir = mkdtempSync(join(tmpdir(), 'cachekit-sqlite-'))
const path = join(dir, 'conformance.sqlite')

runAdapterConformance({
  name: 'sqlite (file)',
  create: (context) => sqliteAdapter({ path }, context),
  capabilities: { shared: true, atomic: true, realClock: false },
  processConfig: { type: 'sqlite', path },
  cleanup: () => rmSync(dir, { recursive: true, force: true }),
})

runAdapterConformance({
  name: 'sqlite (:memory:)',
  create: (context) => sqliteAdapter({ path: ':memory:' }, context),
  capabilities: { shared: false, atomic: true, realClock: false },
})
