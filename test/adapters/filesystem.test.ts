import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filesystemAdapter } from '../../adapters/filesystem/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'

for (const [label, threshold] of [
  ['default threshold', undefined],
  // Small enough that the suite's larger tests (29 values at once) run through eviction passes.
  ['threshold 40', 40],
] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-fs-conf-'))
  runAdapterConformance({
    name: `filesystem (${label})`,
    create: (context) => filesystemAdapter({ dir }, context),
    capabilities: { shared: true, atomic: true, realClock: false },
    processConfig: { type: 'filesystem', dir, ...(threshold === undefined ? {} : { threshold }) },
    ...(threshold === undefined ? {} : { threshold }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  })
}
