/**
 * A child process of the multi-process tests: builds a cache from the config it is given, says "ready",
 * waits for "go" on stdin so that every child starts at once, runs its job and prints the results as JSON.
 */
import { createInterface } from 'node:readline'
import { createCache } from '../singleton.js'
import type { ProcessJob } from './processes.js'

const { config, job } = JSON.parse(process.env.CACHEKIT_CHILD ?? '{}') as { config: Parameters<typeof createCache>[0]; job: ProcessJob }
const cache = createCache(config)
await cache.ready()

const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
for await (const line of lines) if (line === 'go') break
lines.close()

let results: unknown[] = []
switch (job.kind) {
  case 'inc':
    results = await Promise.all(Array.from({ length: job.count }, () => cache.inc(job.key)))
    break
  case 'inc-sequential':
    for (let i = 0; i < job.count; i++) results.push(await cache.inc(job.key))
    break
  case 'add':
    results = [await cache.add(job.key, process.pid)]
    break
  case 'get':
    results = [await cache.get(job.key)]
    break
  case 'set':
    results = [await cache.set(job.key, job.value, job.tags === undefined ? undefined : { tags: job.tags })]
    break
  case 'invalidateTags':
    results = [await cache.invalidateTags(job.tags)]
    break
  case 'getOrSet': {
    let ran = false
    const value = await cache.getOrSet(job.key, async () => {
      ran = true
      await new Promise((resolve) => setTimeout(resolve, job.delayMs))
      return { by: process.pid }
    }, { lease: job.lease ?? true })
    results = [{ ran, value }]
    break
  }
  case 'memoize': {
    let ran = false
    const slow = cache.memoize(
      async (arg: unknown) => {
        ran = true
        await new Promise((resolve) => setTimeout(resolve, job.delayMs))
        return { by: process.pid, arg }
      },
      { name: job.name },
    )
    const value = await slow(job.arg)
    results = [{ ran, value }]
    break
  }
}
await cache.close()
process.stdout.write(`${JSON.stringify({ results })}\n`)
