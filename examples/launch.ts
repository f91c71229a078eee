/** Start the demo app (examples/app.ts) as a child process and find its URL: for demo:race and the tests. */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const APP = fileURLToPath(new URL('./app.ts', import.meta.url))
// Resolved here, so that the app can run in another working directory (where `tsx` may not resolve).
const TSX = import.meta.resolve('tsx')

/** A running demo app. */
export interface RunningDemo {
  /** The base URL, ending in `/`. */
  url: string
  /** Everything the app printed so far (stdout and stderr). */
  output(): string
  /** Stop the app and its workers; resolves when the primary has exited. */
  stop(): Promise<void>
}

/**
 * How long the demo may take to print its URL by default: its workers compile the app on start, and on a
 * loaded 2-core machine 4 of them once needed more than 30 s.
 */
const START_TIMEOUT_MS = 90_000

/**
 * Start the demo on a free port with `workers` workers and `env` added to (or, with `undefined`, removed
 * from) this process's environment.
 *
 * @throws if the app exits or does not print its URL within `timeout` ms; the error carries its output.
 */
export function startDemo(options: { workers?: number; env?: Record<string, string | undefined>; timeout?: number; cwd?: string } = {}): Promise<RunningDemo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1' }
  if (options.workers !== undefined) env.WORKERS = String(options.workers)
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  const child: ChildProcess = spawn(process.execPath, ['--import', TSX, APP], {
    env,
    cwd: options.cwd ?? process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let text = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop()
      reject(new Error(`the demo did not start within ${options.timeout ?? START_TIMEOUT_MS}ms. Its output:\n${text}`))
    }, options.timeout ?? START_TIMEOUT_MS)
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8')
      const url = /listening on (http:\/\/\S+\/)/.exec(text)?.[1]
      if (url !== undefined && /^workers: \d+$/m.test(text)) {
        clearTimeout(timer)
        resolve({ url, output: () => text, stop })
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the demo exited (${signal ?? code}) before it listened. Its output:\n${text}`))
    })
  })
}
