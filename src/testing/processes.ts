import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import type { CacheConfig } from '../config/index.js'
import type { ConformanceOptions } from './harness.js'

/** What each child process does once every child is ready. */
export type ProcessJob =
  | { kind: 'inc'; key: string; count: number }
  | { kind: 'inc-sequential'; key: string; count: number }
  | { kind: 'add'; key: string }
  | { kind: 'get'; key: string }
  | { kind: 'set'; key: string; value: unknown; tags?: string[] }
  | { kind: 'invalidateTags'; tags: string[] }
  /** `getOrSet(key, factory)` with a factory that takes `delayMs`; each child reports `{ ran, value }`. */
  | { kind: 'getOrSet'; key: string; delayMs: number; lease?: boolean }
  /** A memoized function named `name` called with `arg`, taking `delayMs`; each child reports `{ ran, value }`. */
  | { kind: 'memoize'; name: string; arg: unknown; delayMs: number }

// Below the 120 s of the tests that run children, so a stuck child is reported as such, with its stderr.
const CHILD_TIMEOUT_MS = 110_000

function childCommand(): { command: string; args: string[] } {
  const self = fileURLToPath(import.meta.url)
  if (self.endsWith('.ts')) {
    // Running from source (the repository's own tests): load TypeScript through tsx.
    return { command: process.execPath, args: ['--import', 'tsx', self.replace(/processes\.ts$/, 'child.ts')] }
  }
  return { command: process.execPath, args: [self.replace(/processes\.js$/, 'child.js')] }
}

/**
 * Run `job` in `count` real child processes over `config`, started together, and return each child's
 * results. Children that fail reject with their stderr.
 */
export async function runInProcesses<T = unknown>(
  config: CacheConfig,
  job: ProcessJob,
  count: number,
  options: { /** Runs once every child is ready, just before they start together. */ beforeGo?: () => Promise<void> } = {},
): Promise<T[][]> {
  const { command, args } = childCommand()
  const children = Array.from({ length: count }, () =>
    spawn(command, args, {
      env: { ...process.env, CACHEKIT_CHILD: JSON.stringify({ config, job }) },
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  )
  const outputs = children.map((child) => {
    let stdout = ''
    let stderr = ''
    let readyResolve: () => void
    const ready = new Promise<void>((resolve) => (readyResolve = resolve))
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('ready\n')) readyResolve()
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const done = new Promise<T[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`child process timed out after ${CHILD_TIMEOUT_MS} ms\n${stderr}`))
      }, CHILD_TIMEOUT_MS)
      child.on('exit', (code) => {
        clearTimeout(timer)
        readyResolve()
        const last = stdout.trim().split('\n').pop() ?? ''
        if (code !== 0 || !last.startsWith('{')) reject(new Error(`child process exited with ${code}\n${stderr}\n${stdout}`))
        else resolve((JSON.parse(last) as { results: T[] }).results)
      })
    })
    return { child, ready, done }
  })
  await Promise.all(outputs.map((o) => o.ready))
  await options.beforeGo?.()
  for (const { child } of outputs) child.stdin.end('go\n')
  return Promise.all(outputs.map((o) => o.done))
}

/** The multi-process tests of a shared backend: real child processes over `processConfig`. */
export function processTests(options: ConformanceOptions): void {
  const caps = options.capabilities
  if (!caps.shared) return
  const config = options.processConfig
  if (config === undefined) throw new Error(`runAdapterConformance(${options.name}): a shared adapter needs \`processConfig\` for its multi-process tests.`)
  const key = () => `ck-proc:${randomBytes(6).toString('hex')}`

  it('a value set in one process is read in another', async () => {
    const k = key()
    await runInProcesses(config, { kind: 'set', key: k, value: { from: 'child' } }, 1)
    const [[value]] = (await runInProcesses(config, { kind: 'get', key: k }, 1)) as [[unknown]]
    expect(value).toEqual({ from: 'child' })
  }, 120_000)

  it('an entry tagged in one process is a miss in a third once a second invalidated its tag', async () => {
    const k = key()
    const tag = `org:${k}`
    await runInProcesses(config, { kind: 'set', key: k, value: 'tagged', tags: [tag] }, 1)
    const [[before]] = (await runInProcesses(config, { kind: 'get', key: k }, 1)) as [[unknown]]
    expect(before).toBe('tagged')
    await runInProcesses(config, { kind: 'invalidateTags', tags: [tag] }, 1)
    const [[after]] = (await runInProcesses(config, { kind: 'get', key: k }, 1)) as [[unknown]]
    // A miss, reported as JSON's null.
    expect(after).toBeNull()
  }, 120_000)

  if (!caps.atomic) return

  it('8 processes x 250 concurrent inc return exactly 1..2000, each once', async () => {
    const k = key()
    const results = (await runInProcesses<number>(config, { kind: 'inc', key: k, count: 250 }, 8)).flat()
    expect(results).toHaveLength(2000)
    expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1))
  }, 120_000)

  it('8 processes racing add: exactly one wins', async () => {
    const k = key()
    const results = (await runInProcesses<boolean>(config, { kind: 'add', key: k }, 8)).flat()
    expect(results.filter((r) => r === true)).toHaveLength(1)
    expect(results).toHaveLength(8)
  }, 120_000)
}
