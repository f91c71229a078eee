/**
 * `npm run bench:install`, and the first step of `npm run bench`: install the benchmark's own packages
 * (bench/package.json, from bench/package-lock.json) unless bench/node_modules is already newer than the
 * lock file. @keyv/sqlite's sqlite3 is compiled here where no prebuilt binary can be fetched.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const installed = join(here, 'node_modules', '.package-lock.json')
const lock = join(here, 'package-lock.json')

if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  console.error('bench: installing the benchmark\'s own packages into bench/node_modules (once; sqlite3 may take a few minutes to compile)')
  const started = Date.now()
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' })
  if (npm.status !== 0) {
    console.error(`bench: \`npm ci\` in bench/ failed (exit ${npm.status ?? npm.signal}); see above.`)
    process.exit(1)
  }
  console.error(`bench: installed in ${((Date.now() - started) / 1000).toFixed(0)} s`)
}
