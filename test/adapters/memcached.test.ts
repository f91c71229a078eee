import { randomBytes } from 'node:crypto'
import { memcachedDefinition } from '../../adapters/memcached/definition.js'
import { runAdapterConformance } from '../../src/testing/index.js'
import { memcachedOrSkip, MemcachedServer } from '../support/memcached.js'
import { ROOM } from '../support/processes.js'

if (await memcachedOrSkip('the memcached conformance suite')) {
  // A server of this file's own. -I 4m: the suite stores 1 MiB values, and memcached's default item limit
  // is 1 MB (a larger value is refused with an error naming the limit: see test/memcached.test.ts).
  const server = await MemcachedServer.start(['-I', '4m'])
  const factory = await memcachedDefinition.load()
  const options = { servers: [server.address] }
  runAdapterConformance({
    name: `memcached (${server.address})`,
    create: (context) => factory({ ...options, ...ROOM }, context),
    capabilities: { shared: true, atomic: true, realClock: false, listKeys: false },
    processConfig: { type: 'memcached', servers: [server.address], keyPrefix: `ck-conf:${randomBytes(6).toString('hex')}:`, ...ROOM },
    cleanup: () => server.stop(),
  })
}
