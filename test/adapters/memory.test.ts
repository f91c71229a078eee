import { memoryAdapter } from '../../adapters/memory/index.js'
import { runAdapterConformance } from '../../src/testing/index.js'

runAdapterConformance({
  name: 'memory',
  create: (context) => memoryAdapter({}, context),
  capabilities: { shared: false, atomic: true, realClock: false },
})
