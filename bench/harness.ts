/**
 * The benchmark harness: every contestant of one backend measured in one process, interleaved (each round
 * runs every contestant once per operation, in a rotated order), so that warm-up, GC and a noisy neighbour
 * hit them all alike. Timing and statistics by tinybench; each tinybench iteration runs a small batch of
 * operations so that the timer's own cost does not swamp sub-microsecond operations.
 */
import { Bench } from 'tinybench'

/** The operations measured, in table order. */
export const OPS = ['get hit', 'get miss', 'set', 'getOrSet hit', 'inc'] as const
export type Op = (typeof OPS)[number]

/** One library over one backend. A missing method means the library has no such operation. */
export interface Contestant {
  /** Shown in the table, e.g. `keyv + @keyv/sqlite`. */
  name: string
  role: 'cachekit' | 'raw' | 'peer'
  get(key: string): unknown
  set(key: string, value: unknown): unknown
  getOrSet?(key: string, factory: () => Promise<unknown>): Promise<unknown>
  /** An atomic increment (a raw driver's read-then-write counts only where it is atomic in one process). */
  inc?(key: string): unknown
  close(): unknown
}

/** A backend of the benchmark: one small module in bench/backends/. */
export interface BenchBackend {
  name: string
  /** Operations in flight at once: 1 is sequential. */
  inflight: number[]
  /** The most operations per tinybench iteration at 1 in flight (fewer for slow contestants). */
  batch: number
  /** Build every contestant on fresh, separate storage. Contestants whose driver is missing are left out. */
  open(): Promise<Contestant[]>
  /** Remove what the run left in a shared backend. */
  cleanup?(): Promise<void>
  /** What a reader should know about this backend's figures. */
  notes?: string[]
}

/** A measured figure: one contestant, one operation, one level of concurrency. */
export interface Figure {
  contestant: string
  role: Contestant['role']
  op: Op
  inflight: number
  /** The median over rounds of operations per second. */
  opsPerSec: number
  /** Each round's operations per second. */
  rounds: number[]
}

export interface RunOptions {
  rounds: number
  /** Time per contestant, operation and round, in ms. */
  sliceMs: number
  onProgress?(text: string): void
}

/** Entries preloaded for hits. */
const KEYS = 100
export const VALUE = { id: 42, name: 'Ada Lovelace', email: 'ada@example.com', roles: ['admin', 'author'], active: true, score: 97.5 }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** The function one tinybench iteration runs for `op`: `count` operations, `inflight` at a time. */
function task(c: Contestant, op: Op, inflight: number, count: number): (() => Promise<void>) | undefined {
  let i = 0
  const factory = async () => VALUE
  const one: ((n: number) => unknown) | undefined =
    op === 'get hit'
      ? (n) => c.get(`hit:${n % KEYS}`)
      : op === 'get miss'
        ? (n) => c.get(`miss:${n}`)
        : op === 'set'
          ? (n) => c.set(`set:${n % KEYS}`, VALUE)
          : op === 'getOrSet hit'
            ? c.getOrSet === undefined
              ? undefined
              : (n) => c.getOrSet?.(`hit:${n % KEYS}`, factory)
            : c.inc === undefined
              ? undefined
              : (n) => c.inc?.(`counter:${n % 8}`)
  if (one === undefined) return undefined
  if (inflight === 1) {
    return async () => {
      for (let k = 0; k < count; k++) await one(i++)
    }
  }
  return async () => {
    for (let k = 0; k < count; k++) {
      const batch = new Array<unknown>(inflight)
      for (let j = 0; j < inflight; j++) batch[j] = one(i++)
      await Promise.all(batch)
    }
  }
}

/** How long one tinybench iteration should at least take, so that the timer's cost stays negligible. */
const ITERATION_MS = 0.2

/**
 * Preload the hit keys, check that every contestant reads back what it wrote, and size its batch from how
 * long its writes took: fast in-process contestants run many operations per iteration, slow ones one.
 */
async function prepare(contestants: Contestant[], most: number): Promise<Map<Contestant, number>> {
  const batches = new Map<Contestant, number>()
  for (const c of contestants) {
    const t0 = performance.now()
    for (let n = 0; n < KEYS; n++) await c.set(`hit:${n}`, VALUE)
    const perOp = (performance.now() - t0) / KEYS
    batches.set(c, Math.max(1, Math.min(most, Math.ceil(ITERATION_MS / perOp))))
    const back = (await c.get('hit:7')) as typeof VALUE | undefined
    if (back?.name !== VALUE.name) throw new Error(`${c.name} did not read back what it wrote: ${JSON.stringify(back)}`)
    if ((await c.get('miss:never')) !== undefined) throw new Error(`${c.name} returned a value for a key never written`)
  }
  return batches
}

/** Measure every contestant of `backend`, interleaved. */
export async function runBackend(backend: BenchBackend, contestants: Contestant[], options: RunOptions): Promise<Figure[]> {
  const batches = await prepare(contestants, backend.batch)
  const samples = new Map<string, number[]>()
  const id = (c: Contestant, op: Op, inflight: number) => `${c.name}\u0000${op}\u0000${inflight}`
  for (let round = 0; round < options.rounds; round++) {
    // Rotate who goes first each round.
    const order = contestants.map((_, k) => contestants[(k + round) % contestants.length] as Contestant)
    for (const inflight of backend.inflight) {
      for (const op of OPS) {
        options.onProgress?.(`${backend.name}: round ${round + 1}/${options.rounds}, ${op}${inflight > 1 ? `, ${inflight} in flight` : ''}`)
        const bench = new Bench({ time: options.sliceMs, warmupTime: Math.max(5, options.sliceMs / 5), warmupIterations: 1, iterations: 2, throws: true })
        const counts = new Map<string, number>()
        const names = new Map<string, Contestant>()
        for (const c of order) {
          const count = inflight === 1 ? (batches.get(c) ?? 1) : 1
          counts.set(c.name, count)
          const fn = task(c, op, inflight, count)
          if (fn === undefined) continue
          bench.add(c.name, fn)
          names.set(c.name, c)
        }
        await bench.run()
        for (const t of bench.tasks) {
          const c = names.get(t.name) as Contestant
          const latency = t.result?.latency.mean
          if (latency === undefined || !(latency > 0)) throw new Error(`${c.name} ${op}: no result`)
          const key = id(c, op, inflight)
          samples.set(key, [...(samples.get(key) ?? []), (1000 / latency) * (counts.get(c.name) ?? 1) * inflight])
        }
      }
    }
  }
  const figures: Figure[] = []
  for (const inflight of backend.inflight) {
    for (const op of OPS) {
      for (const c of contestants) {
        const rounds = samples.get(id(c, op, inflight))
        if (rounds !== undefined) figures.push({ contestant: c.name, role: c.role, op, inflight, opsPerSec: median(rounds), rounds })
      }
    }
  }
  return figures
}
