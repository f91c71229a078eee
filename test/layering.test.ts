/**
 * The layering, checked on the sources (static, re-exported and dynamic imports alike, which the lint rule
 * cannot see): adapters import only the core's leaves, the core reaches adapters only through
 * adapters/index.ts, and no runtime import cycle exists under src/ or adapters/.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

interface Edge {
  from: string
  to: string
  /** `import type` / `export type`: erased, so no edge at run time. */
  typeOnly: boolean
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
}

/** The imports of a source text: `import ... from`, `export ... from`, bare `import '...'`, `import('...')`. */
export function importsOf(text: string): { spec: string; typeOnly: boolean }[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  const found: { spec: string; typeOnly: boolean }[] = []
  for (const m of code.matchAll(/(?:^|[\n;])\s*(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]*?\s*from\s*)?['"]([^'"]+)['"]/g)) {
    found.push({ spec: m[2] ?? '', typeOnly: m[1] !== undefined })
  }
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ spec: m[1] ?? '', typeOnly: false })
  return found
}

function edges(): Edge[] {
  const all: Edge[] = []
  for (const file of [...sources('src'), ...sources('adapters')]) {
    for (const { spec, typeOnly } of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue
      const to = relative(ROOT, resolve(ROOT, dirname(file), spec.replace(/\.js$/, '.ts')))
      if (existsSync(join(ROOT, to))) all.push({ from: file, to, typeOnly })
    }
  }
  return all
}

/** A module an adapter must not import: the config, registry, cache and everything built on the cache. */
const CORE_ONLY = /^src\/(config|registry|cache|singleton|index|getorset|lease|memoize|http|testing|to-keyv-store)(\.ts$|\/)/

function forbidden(edge: Edge): boolean {
  if (edge.from.startsWith('adapters/')) return CORE_ONLY.test(edge.to)
  return edge.to.startsWith('adapters/') && edge.to !== 'adapters/index.ts'
}

function cycles(list: Edge[]): string[][] {
  const next = new Map<string, string[]>()
  for (const e of list) if (!e.typeOnly) next.set(e.from, [...(next.get(e.from) ?? []), e.to])
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (node: string): void => {
    state.set(node, 'open')
    stack.push(node)
    for (const to of next.get(node) ?? []) {
      if (state.get(to) === 'open') found.push([...stack.slice(stack.indexOf(to)), to])
      else if (state.get(to) === undefined) visit(to)
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of next.keys()) if (state.get(node) === undefined) visit(node)
  return found
}

describe('layering', () => {
  it('reads every kind of import, and only real ones', () => {
    const text = [
      "import { a, type B } from './a.js'",
      "import type { C } from '../c.js'",
      "export { d } from './d.js'",
      "export type { E } from './e.js'",
      "import './side.js'",
      'const f = await import("./f.js")',
      "/** @example load: () => import('./not-an-import.js') */",
      "// import { g } from './commented.js'",
      'import {\n  h,\n  i,\n} from "./multi.js"',
    ].join('\n')
    expect(importsOf(text)).toEqual([
      { spec: './a.js', typeOnly: false },
      { spec: '../c.js', typeOnly: true },
      { spec: './d.js', typeOnly: false },
      { spec: './e.js', typeOnly: true },
      { spec: './side.js', typeOnly: false },
      { spec: './multi.js', typeOnly: false },
      { spec: './f.js', typeOnly: false },
    ])
  })

  it('finds a forbidden edge and a cycle when there is one (the checks can fail)', () => {
    expect(forbidden({ from: 'adapters/redis/connection.ts', to: 'src/config/index.ts', typeOnly: true })).toBe(true)
    // The cache as a Keyv store is built on the cache: the keyv backend (a Keyv store as a cache) must not use it.
    expect(forbidden({ from: 'adapters/keyv/index.ts', to: 'src/to-keyv-store.ts', typeOnly: false })).toBe(true)
    expect(forbidden({ from: 'src/registry.ts', to: 'adapters/redis/index.ts', typeOnly: false })).toBe(true)
    expect(forbidden({ from: 'src/registry.ts', to: 'adapters/index.ts', typeOnly: false })).toBe(false)
    expect(forbidden({ from: 'adapters/sqlite/options.ts', to: 'src/duration.ts', typeOnly: false })).toBe(false)
    const loop = cycles([
      { from: 'a.ts', to: 'b.ts', typeOnly: false },
      { from: 'b.ts', to: 'a.ts', typeOnly: false },
      { from: 'c.ts', to: 'a.ts', typeOnly: true },
      { from: 'a.ts', to: 'c.ts', typeOnly: false },
    ])
    expect(loop).toEqual([['a.ts', 'b.ts', 'a.ts']])
  })

  it('adapters import no config, registry or cache, and the core imports no adapter but the list', () => {
    const all = edges()
    expect(all.length).toBeGreaterThan(100)
    expect(all.some((e) => e.from === 'src/registry.ts' && e.to === 'adapters/index.ts')).toBe(true)
    expect(all.filter(forbidden).map((e) => `${e.from} -> ${e.to}`)).toEqual([])
  })

  it('no import cycle under src/ or adapters/ (dynamic imports count; type-only ones are erased)', () => {
    expect(cycles(edges()).map((c) => c.join(' -> '))).toEqual([])
  })
})
