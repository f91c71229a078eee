import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/cluster-memory.ts', import.meta.url))

function run(env: Record<string, string>): { worker: boolean; warnings: string[] } {
  const out = execFileSync(process.execPath, ['--import', 'tsx', fixture], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 })
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { worker: boolean; warnings: string[] }
}

describe('a memory cache where each worker has its own copy', () => {
  it('warns once in a node:cluster worker, naming the shared backends', () => {
    const result = run({})
    expect(result.worker).toBe(true)
    expect(result.warnings).toHaveLength(1)
    expect(result.warnings[0]).toMatch(/each worker has its own copy/)
    expect(result.warnings[0]).toMatch(/sqlite, filesystem or redis/)
  })

  it('warns in a PM2 instance too, and not in a plain process', () => {
    expect(run({ AS_PLAIN: '1', NODE_APP_INSTANCE: '0' }).warnings).toHaveLength(1)
    const { NODE_APP_INSTANCE: _a, pm_id: _b, ...clean } = process.env
    const plain = execFileSync(process.execPath, ['--import', 'tsx', fixture], { encoding: 'utf8', env: { ...clean, AS_PLAIN: '1' } as NodeJS.ProcessEnv, timeout: 30_000 })
    expect(JSON.parse(plain.trim()).warnings).toEqual([])
  })
})
