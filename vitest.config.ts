import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The multi-process tests spawn 8 children each; on 2 cores, two test files at a time is enough.
    maxWorkers: 2,
  },
})
