import { memoryAdapter } from '../../adapters/memory.js'
import { runAdapterConformance } from '../../src/testing/index.js'

runAdapterConformance({
  name: 'memory',
  create: (context) => memoryAdapter({}, context),
  capabilities: { shared: false, atomic: true, realClock: false },
})
