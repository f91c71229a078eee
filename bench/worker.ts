/**
 * One backend's benchmark, in its own process (started by run.ts): builds the contestants, runs them
 * interleaved, sends the figures back over IPC. Progress goes over IPC too.
 */
import { runBackend, type Figure } from './harness.js'
import { BACKENDS } from './backends/index.js'

export type WorkerMessage =
  | { type: 'progress'; text: string }
  | { type: 'done'; figures: Figure[]; contestants: { name: string; role: string }[]; notes: string[] }
  | { type: 'skipped'; reason: string }

const send = (m: WorkerMessage) => new Promise<void>((resolve) => process.send?.(m, () => resolve()))

const [name, rounds, slice] = process.argv.slice(2)
const backend = BACKENDS.find((b) => b.name === name)
if (backend === undefined) throw new Error(`no benchmark backend ${name}`)

let contestants
try {
  contestants = await backend.open()
} catch (error) {
  await send({ type: 'skipped', reason: (error as Error).message })
  process.exit(0)
}
try {
  const figures = await runBackend(backend, contestants, {
    rounds: Number(rounds),
    sliceMs: Number(slice),
    onProgress: (text) => void send({ type: 'progress', text }),
  })
  await send({ type: 'done', figures, contestants: contestants.map((c) => ({ name: c.name, role: c.role })), notes: backend.notes ?? [] })
} finally {
  // cacheable and cache-manager disconnect the Keyv store they were given, and @keyv/postgres and @keyv/mysql
  // throw when their pool is ended twice: a peer's failure to close is not the benchmark's, and is not printed.
  for (const c of contestants) await Promise.resolve().then(() => c.close()).catch(() => {})
  await backend.cleanup?.()
}
process.exit(0)
