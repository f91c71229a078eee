/**
 * Packages the benchmark installs (bench/package.json) that some tests use too: @keyv/sqlite, whose sqlite3
 * is compiled from source here, so that a fresh clone's `npm install` builds nothing `npm test` can do
 * without. `npm run bench:install` (or the first `npm run bench`) installs them; .ci/run does before the tests.
 * Missing, they skip their tests with one loud line outside CI and fail under CI=true (servers.ts).
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { KeyvStoreAdapter } from 'keyv'
import { serverOrSkip } from './servers.js'

const BENCH = fileURLToPath(new URL('../../bench/', import.meta.url))

/** @keyv/sqlite's default export. */
export type KeyvSqliteClass = new (options: string | { uri: string; busyTimeout?: number }) => KeyvStoreAdapter

/** The file `import(name)` loads from bench/ (its ESM entry), or undefined if bench/ has not installed it. */
export function benchPeerPath(name: string): string | undefined {
  const dir = join(BENCH, 'node_modules', ...name.split('/'))
  if (!existsSync(join(dir, 'package.json'))) return undefined
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    exports?: { '.'?: { import?: string | { default?: string } } }
    module?: string
    main?: string
  }
  const esm = pkg.exports?.['.']?.import
  const entry = (typeof esm === 'string' ? esm : esm?.default) ?? pkg.module ?? pkg.main ?? 'index.js'
  return join(dir, entry)
}

/**
 * The default export of a package bench/ installs, for `label`'s tests; undefined when it is not installed
 * (serverOrSkip: after one loud line outside CI; under CI=true it throws). Call at the top level of a test file.
 */
export async function benchPeer<T>(name: string, label: string): Promise<T | undefined> {
  const path = benchPeerPath(name)
  if (path !== undefined) return ((await import(pathToFileURL(path).href)) as { default: T }).default
  const why = `${name} is not installed in bench/node_modules (the benchmark's own package, bench/package.json, installs it)`
  await serverOrSkip(label, name, () => why, 'run `npm run bench:install`')
  return undefined
}
