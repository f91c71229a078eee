import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cachekit-bench-${name}-`))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}
