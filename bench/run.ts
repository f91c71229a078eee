import { execFileSync } from 'node:child_process'
/**
 * `npm run bench [-- --quick] [-- --backend sqlite,redis]`: cachekit against the raw drivers and its peers,
 * one process per backend, contestants interleaved within it. Prints a table of ops/s with cachekit's
 * ratio to each, checks the targets, and writes bench/results.json.
 */
import { fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BACKENDS } from './backends/index.js'
import { OPS, type Figure } from './harness.js'
import { httpTable, runHttpBench, type HttpFigure } from './http.js'
import type { WorkerMessage } from './worker.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    backend: { type: 'string' },
    rounds: { type: 'string' },
    slice: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help === true) {
  console.log(`Usage: npm run bench -- [--quick] [--backend ${BACKENDS.map((b) => b.name).join(',')},http,tags,l1-lag,tracing] [--rounds n] [--slice ms]

--quick     2 rounds of 40 ms per contestant and operation (under a minute in all; HTTP: 1 s per route;
            tags: 10,000 entries per tag instead of 100,000)
--backend   only these backends (http: the cached HTTP routes of Express, Hono and Fastify; tags:
            invalidateTags and tagged hits on memory, SQLite and Redis, bench/tags.ts; l1-lag: how late
            another process sees a write through the memory tier, bench/l1-lag.ts; tracing: a memory cache
            with and without a subscriber to cachekit:operation, bench/tracing.ts)
--rounds    interleaved rounds (default 5)
--slice     ms per contestant, operation and round (default 250)`)
  process.exit(0)
}
const rounds = Number(values.rounds ?? (values.quick === true ? 2 : 5))
const slice = Number(values.slice ?? (values.quick === true ? 40 : 250))
const chosen = values.backend === undefined ? BACKENDS : BACKENDS.filter((b) => values.backend?.split(',').includes(b.name))
const httpChosen = values.backend === undefined || values.backend.split(',').includes('http')
const tagsChosen = values.backend === undefined || values.backend.split(',').includes('tags')
const lagChosen = values.backend === undefined || values.backend.split(',').includes('l1-lag')
const tracingChosen = values.backend === undefined || values.backend.split(',').includes('tracing')
/** The HTTP routes run for seconds, not milliseconds: a request costs tens of microseconds. */
const httpSlice = values.quick === true ? 1000 : 3000
if (chosen.length === 0 && !httpChosen && !tagsChosen && !lagChosen && !tracingChosen) {
  console.error(`bench: no backend named ${values.backend}; there are ${BACKENDS.map((b) => b.name).join(', ')}, http, tags, l1-lag and tracing.`)
  process.exit(2)
}

interface BackendResult {
  name: string
  contestants: { name: string; role: string }[]
  figures: Figure[]
  notes: string[]
  skipped?: string
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
const tty = process.stderr.isTTY
const started = Date.now()

function showProgress(text: string): void {
  const line = `bench [${((Date.now() - started) / 1000).toFixed(0)}s] ${text}`
  if (tty) process.stderr.write(`\r${line}\x1b[K`)
  else if (/round \d+\/\d+, get hit$/.test(text)) process.stderr.write(`${line}\n`)
}

function runOne(name: string): Promise<BackendResult> {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [name, String(rounds), String(slice)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result: BackendResult | undefined
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') showProgress(m.text)
      else if (m.type === 'skipped') result = { name, contestants: [], figures: [], notes: [], skipped: m.reason }
      else result = { name, contestants: m.contestants, figures: m.figures, notes: m.notes }
    })
    child.on('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`the ${name} benchmark exited with ${code} and no result`))))
  })
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`
  return n.toFixed(0)
}

function ratio(a: number, b: number): string {
  const r = a / b
  return `${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2)}x`
}

function table(r: BackendResult): string {
  const lines: string[] = []
  const inflights = [...new Set(r.figures.map((f) => f.inflight))]
  const names = r.contestants.map((c) => c.name)
  for (const inflight of inflights) {
    lines.push(`${r.name}, ${inflight === 1 ? 'sequential' : `${inflight} in flight`}: ops/s, and (in brackets) cachekit's ratio to each`)
    const rows: string[][] = [['', ...names]]
    for (const op of OPS) {
      const row: string[] = [op]
      const mine = r.figures.find((f) => f.op === op && f.inflight === inflight && f.role === 'cachekit')
      for (const name of names) {
        const f = r.figures.find((x) => x.op === op && x.inflight === inflight && x.contestant === name)
        if (f === undefined) row.push('-')
        else if (mine === undefined || f.role === 'cachekit') row.push(fmt(f.opsPerSec))
        else row.push(`${fmt(f.opsPerSec)} (${ratio(mine.opsPerSec, f.opsPerSec)})`)
      }
      rows.push(row)
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? []
    for (const row of rows) lines.push(`  ${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')}`)
    lines.push('')
  }
  return lines.join('\n')
}

/** The issue's targets: cachekit's ratio to a contestant, at least `atLeast`. */
const TARGETS: { backend: string; op: (typeof OPS)[number]; versus: string; atLeast: number; inflight?: number; mine?: string }[] = [
  // The memory tier: a hit at memory speed, a write at no more than 1.3x the time of one without it.
  { backend: 'sqlite', op: 'get hit', mine: 'cachekit + l1', versus: 'cachekit (better-sqlite3)', atLeast: 5 },
  { backend: 'sqlite', op: 'get hit', mine: 'cachekit + l1', versus: 'cachekit memory', atLeast: 0.5 },
  { backend: 'sqlite', op: 'get hit', mine: 'cachekit + l1', versus: 'bentocache (L1)', atLeast: 1 },
  { backend: 'sqlite', op: 'set', mine: 'cachekit + l1', versus: 'cachekit (better-sqlite3)', atLeast: 1 / 1.3 },
  { backend: 'redis', op: 'get hit', mine: 'cachekit + l1', versus: 'cachekit', atLeast: 50 },
  { backend: 'redis', op: 'get hit', mine: 'cachekit + l1', versus: 'bentocache (L1)', atLeast: 1 },
  { backend: 'redis', op: 'set', mine: 'cachekit + l1', versus: 'cachekit', atLeast: 1 / 1.3 },
  { backend: 'memory', op: 'get hit', versus: 'keyv', atLeast: 10 },
  { backend: 'memory', op: 'get hit', versus: 'cacheable', atLeast: 10 },
  { backend: 'sqlite', op: 'get hit', versus: 'keyv + @keyv/sqlite', atLeast: 20 },
  { backend: 'sqlite', op: 'set', versus: 'keyv + @keyv/sqlite', atLeast: 20 },
  { backend: 'redis', op: 'get hit', versus: 'raw @redis/client', atLeast: 0.9 },
  { backend: 'redis', op: 'set', versus: 'raw @redis/client', atLeast: 0.9 },
  { backend: 'redis', op: 'get hit', versus: 'keyv + @keyv/redis', atLeast: 1.3 },
  { backend: 'redis', op: 'set', versus: 'keyv + @keyv/redis', atLeast: 1.3 },
  // At most 1.3x the raw driver's time per call, i.e. at least 1/1.3 of its rate; 3x keyv's on set.
  ...(['postgres', 'mysql'] as const).flatMap((backend) => [
    ...(['get hit', 'set', 'inc'] as const).map((op) => ({ backend, op, versus: backend === 'postgres' ? 'raw pg' : 'raw mysql2', atLeast: 1 / 1.3 })),
    { backend, op: 'set' as const, versus: `keyv + @keyv/${backend}`, atLeast: 3 },
  ]),
]

interface TargetResult {
  target: string
  inflight: number
  ratio: number | null
  met: boolean | null
}

function checkTargets(results: BackendResult[]): TargetResult[] {
  const out: TargetResult[] = []
  for (const t of TARGETS) {
    const r = results.find((x) => x.name === t.backend)
    const inflights = r === undefined ? [1] : [...new Set(r.figures.map((f) => f.inflight))]
    for (const inflight of inflights.length === 0 ? [1] : inflights) {
      const mine = r?.figures.find((f) => f.op === t.op && f.inflight === inflight && (t.mine === undefined ? f.role === 'cachekit' : f.contestant === t.mine))
      const theirs = r?.figures.find((f) => f.op === t.op && f.inflight === inflight && f.contestant === t.versus)
      const value = mine !== undefined && theirs !== undefined ? mine.opsPerSec / theirs.opsPerSec : null
      out.push({
        target: `${t.backend} ${t.op}: ${t.mine ?? 'cachekit'} >= ${Number.isInteger(t.atLeast) ? t.atLeast : t.atLeast.toFixed(2)}x ${t.versus}`,
        inflight,
        ratio: value,
        met: value === null ? null : value >= t.atLeast,
      })
    }
  }
  return out
}

const results: BackendResult[] = []
for (const b of chosen) results.push(await runOne(b.name))
const http: HttpFigure[] = httpChosen ? await runHttpBench({ rounds, sliceMs: httpSlice, onProgress: showProgress }) : []
if (tty) process.stderr.write('\r\x1b[K')

const cpu = cpus()[0]?.model ?? 'unknown CPU'
console.log(`cachekit benchmark, ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`)
console.log(`${rounds} interleaved rounds of ${slice} ms per contestant and operation; median of the rounds.\n`)
for (const r of results) {
  if (r.skipped !== undefined) {
    console.log(`${r.name}: skipped (${r.skipped})\n`)
    continue
  }
  if (!r.contestants.some((c) => c.role === 'cachekit')) console.log(`${r.name}: no cachekit adapter for it on this branch yet; the others only.`)
  console.log(table(r))
}
if (http.length > 0) console.log(`${httpTable(http)}\n  (${rounds} rounds of ${httpSlice} ms per route, median)\n`)
const targets = checkTargets(results)
console.log('Targets:')
for (const t of targets) {
  const where = t.inflight === 1 ? '' : ` (${t.inflight} in flight)`
  const verdict = t.met === null ? 'not measured' : `${t.met ? 'met' : 'MISSED'}: ${t.ratio?.toFixed(2)}x`
  console.log(`  ${t.target}${where}: ${verdict}`)
}
const notes = results.flatMap((r) => r.notes)
if (notes.length > 0) console.log(`\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`)

// Tags: their own script (its figures are times per call of invalidateTags over 1 and many entries, not
// ops/s of contestants), run in a process of its own after the rest.
if (tagsChosen) {
  console.log('\nTags (bench/tags.ts): time per call, median of batches')
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./tags.ts', import.meta.url)), '--backend', 'memory,sqlite,redis', ...(values.quick === true ? ['--entries', '10000'] : [])], {
    stdio: 'inherit',
    env: { ...process.env, ...(values.quick === true ? { BENCH_MS: '300' } : {}) },
  })
}

// The memory tier's cross-process lag: a writer and a reader process, times not rates.
if (lagChosen) {
  console.log('')
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./l1-lag.ts', import.meta.url)), ...(values.quick === true ? ['--writes', '100'] : [])], { stdio: 'inherit' })
}

// What a subscriber to the tracing channel costs a memory cache.
if (tracingChosen) {
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./tracing.ts', import.meta.url)), '--rounds', String(rounds)], { stdio: 'inherit' })
}

const file = fileURLToPath(new URL('./results.json', import.meta.url))
writeFileSync(
  file,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine: { node: process.version, cpus: cpus().length, cpu, memoryGiB: Math.round(totalmem() / 2 ** 30), platform: process.platform },
      rounds,
      sliceMs: slice,
      backends: results,
      http,
      targets,
    },
    null,
    2,
  )}\n`,
)
console.log(`\nWrote ${file} in ${((Date.now() - started) / 1000).toFixed(0)} s.`)
