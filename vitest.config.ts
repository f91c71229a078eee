import { transformWithEsbuild, type Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

/**
 * Vite 8 transforms TypeScript with Oxc, which lowers only legacy (experimentalDecorators) decorators and
 * leaves TC39 standard decorators in place, which Node 20 cannot parse. Files that use a decorator go
 * through esbuild first (as tsx does for the child processes), which lowers standard decorators.
 */
const standardDecorators: Plugin = {
  name: 'cachekit:standard-decorators',
  enforce: 'pre',
  async transform(code, id) {
    if (!/\.ts$/.test(id) || !/(^|[{;])\s*@[A-Za-z_$]/m.test(code)) return undefined
    const out = await transformWithEsbuild(code, id, { loader: 'ts', target: 'es2022', sourcemap: true })
    return { code: out.code, map: out.map }
  },
}

export default defineConfig({
  plugins: [standardDecorators],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The multi-process tests spawn 8 children each; on 2 cores, two test files at a time is enough.
    maxWorkers: 2,
  },
})
