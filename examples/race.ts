/**
 * `npm run demo:race`: start the demo app with this shell's CACHE_* variables on a free port, let 100
 * concurrent clients call /increment once each, and tell whether they saw exactly 1..100.
 * `npm run demo:race -- <url>` races an app that is already running instead.
 *
 *   npm run demo:race                       # the embedded default: passes
 *   CACHE_URL=memory: npm run demo:race     # one copy per worker: fails
 */
import { describeRace, race } from '../bin/race-clients.js'
import { startDemo } from './launch.js'

const target = process.argv[2]
if (target !== undefined) {
  const result = await race(target)
  console.log(describeRace(result))
  process.exit(result.ok ? 0 : 1)
}

const workers = process.env.WORKERS === undefined ? 4 : Number(process.env.WORKERS)
const demo = await startDemo({ workers })
try {
  const header = demo.output().split('\n').filter((line) => /^(backend|workers):/.test(line))
  console.log(`started the demo at ${demo.url}\n${header.join('\n')}`)
  const result = await race(demo.url)
  console.log(describeRace(result))
  process.exitCode = result.ok ? 0 : 1
} finally {
  await demo.stop()
}
