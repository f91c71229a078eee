/**
 * Every option of every backend is declared once, in its definition; the configuration page lists them
 * (option, backend, kind and the `@default` of its TSDoc), its common-option and variable tables match the
 * config's, and each backend page's option table names only declared options.
 */
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ADAPTERS } from '../adapters/index.js'
import { COMMON_ENV, COMMON_KINDS } from '../src/config/options.js'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const CONFIG_PAGE = read('docs/configuration.md')

/** The rows of the first table after `heading`, as arrays of cells (backticks kept). */
function table(page: string, heading: string): string[][] {
  const at = page.indexOf(`\n${heading}\n`)
  if (at === -1) throw new Error(`no heading ${heading}`)
  const lines = page.slice(at + heading.length + 2).split('\n')
  const start = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.slice(1, -1).split(' | ').map((c) => c.trim()))
  }
  return rows
}

const name = (cell: string | undefined): string => /^`([^`]+)`$/.exec(cell ?? '')?.[1] ?? `(not a name: ${cell})`

/** The `@default` of each option in the TSDoc of the files that declare a backend's options. */
function tsdocDefaults(type: string): Map<string, string | undefined> {
  const files = [`adapters/${type}/definition.ts`, `adapters/${type}/index.ts`].filter((f) => existsSync(new URL(`../${f}`, import.meta.url)))
  const found = new Map<string, string | undefined>()
  for (const file of files) {
    for (const m of read(file).matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*?)\*\/\s*\n\s*(\w+)\??:/g)) {
      const def = /@default\s+(.+)/.exec(m[1] ?? '')?.[1]?.trim()
      if (!found.has(m[2] ?? '')) found.set(m[2] ?? '', def)
    }
  }
  return found
}

describe('the configuration page derives from the definitions', () => {
  const rows = table(CONFIG_PAGE, '### Options of each backend')

  it('lists every declared option of every backend, and no other', () => {
    const declared = ADAPTERS.flatMap((d) => Object.entries(d.options).map(([option, kind]) => `${option} | ${d.type} | ${kind}`)).sort()
    const listed = rows.map(([option, backend, kind]) => `${name(option)} | ${backend} | ${kind}`).sort()
    expect(listed).toEqual(declared)
  })

  it("gives each option the default its TSDoc declares", () => {
    const wrong: string[] = []
    for (const [option, backend, , shown] of rows) {
      const tsdoc = tsdocDefaults(backend ?? '')
      const key = name(option)
      expect(tsdoc.has(key), `${key} has TSDoc in the ${backend} definition`).toBe(true)
      const expected = tsdoc.get(key) ?? '—'
      if ((shown ?? '').replaceAll('`', '') !== expected) wrong.push(`${backend} ${key}: the page says ${shown}, the TSDoc ${expected}`)
    }
    expect(wrong).toEqual([])
  })

  it('lists the common options as the config declares them', () => {
    const listed = table(CONFIG_PAGE, '## Options').map(([option]) => name(option)).sort()
    expect(listed).toEqual([...Object.keys(COMMON_KINDS), 'url'].sort())
  })

  it('lists every variable configFromEnv reads, and no other', () => {
    const listed = table(CONFIG_PAGE, '## Environment variables').map(([variable]) => name(variable)).sort()
    // A variable several backends read (CACHE_SQL_TABLE) has one row.
    expect(listed).toEqual([...new Set([...COMMON_ENV, ...ADAPTERS.flatMap((d) => Object.keys(d.env ?? {}))])].sort())
  })

  it('shows every URL scheme', () => {
    const urls = table(CONFIG_PAGE, '## URLs').map(([url]) => url).join(' ')
    for (const scheme of ADAPTERS.flatMap((d) => d.schemes ?? [])) expect(urls, scheme).toContain(`\`${scheme}:`)
  })

  it("a backend page's option table names only options its definition, or every cache, declares", () => {
    for (const d of ADAPTERS) {
      const page = `docs/backends/${d.type}.md`
      if (!existsSync(new URL(`../${page}`, import.meta.url))) continue
      const text = read(page)
      const heading = ['## Options', '### Options'].find((h) => text.includes(`\n${h}\n`))
      if (heading === undefined) continue
      const known = new Set([...Object.keys(d.options), ...Object.keys(COMMON_KINDS), 'url'])
      const stray = table(text, heading).map(([option]) => name(option)).filter((o) => !known.has(o))
      expect(stray, page).toEqual([])
    }
  })
})
