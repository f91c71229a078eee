import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqliteAdapter } from '../../adapters/sqlite/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'

// The whole suite, its 8-process inc/add/stampede proofs included, through the memory tier.
const dir = mkdtempSync(join(tmpdir(), 'cachekit-sqlite-l1-'))
const path = join(dir, 'conformance.sqlite')

runAdapterConformance({
  name: 'sqlite with l1',
  create: (context) => sqliteAdapter({ path }, context),
  capabilities: { shared: true, atomic: true, realClock: false },
  cacheOptions: { l1: true },
  processConfig: { type: 'sqlite', path, l1: true },
  cleanup: () => rmSync(dir, { recursive: true, force: true }),
})
