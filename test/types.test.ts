import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))

describe('the published types', () => {
  it('a consumer project compiles against the emitted .d.ts through the package exports', () => {
    // `npm test` builds first; the consumer imports `cachekit` by the package's own name (self-reference),
    // so it resolves through package.json `exports` exactly as an installed copy would.
    expect(existsSync(new URL('../dist/src/index.d.ts', import.meta.url))).toBe(true)
    let output = ''
    try {
      output = execFileSync(process.execPath, [tsc, '-p', 'test/fixtures/consumer/tsconfig.json'], { cwd: root, encoding: 'utf8' })
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error)
    }
    expect(output).toBe('')
  }, 60_000)
})
