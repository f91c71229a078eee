/**
 * The documentation holds together: every relative link in the README, CONTRIBUTING.md, examples/README.md
 * and docs/ points to a file that exists (and, with `#anchor`, to a heading of it), every page of docs/ is
 * listed in docs/README.md, and the README stays a first screen, not a manual.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))

/** The README's limit, in lines: the reference belongs in docs/. */
const README_MAX_LINES = 300

/** The Markdown files whose links are checked, relative to `root`. */
function markdownFiles(root: string): string[] {
  const files = ['README.md', 'CONTRIBUTING.md', join('examples', 'README.md')].filter((f) => existsSync(join(root, f)))
  const walk = (dir: string): void => {
    if (!existsSync(join(root, dir))) return
    for (const name of readdirSync(join(root, dir)).sort()) {
      const path = join(dir, name)
      if (statSync(join(root, path)).isDirectory()) walk(path)
      else if (name.endsWith('.md')) files.push(path)
    }
  }
  walk('docs')
  return files
}

/** The lines of a Markdown text outside fenced code blocks, with inline code spans blanked. */
function proseLines(text: string): string[] {
  const out: string[] = []
  let fence: string | undefined
  for (const line of text.split('\n')) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1]
    if (marker !== undefined) {
      if (fence === undefined) fence = marker
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined
      out.push('')
      continue
    }
    out.push(fence === undefined ? line.replace(/(`+)[^`]*?\1/g, (m) => ' '.repeat(m.length)) : '')
  }
  return out
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, each space a hyphen. */
function anchorOf(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/<[^>]*>/g, '')
    .trim()
    .toLowerCase()
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
}

/** Every anchor of a Markdown text; a repeated heading gets `-1`, `-2`, ... as on GitHub. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  const lines = text.split('\n')
  let fence: string | undefined
  for (const line of lines) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1]
    if (marker !== undefined) {
      if (fence === undefined) fence = marker
      else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined
      continue
    }
    if (fence !== undefined) continue
    const heading = /^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$/.exec(line)?.[1]
    if (heading === undefined) continue
    const base = anchorOf(heading)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  return anchors
}

/** The link targets of a Markdown text, with their line numbers: inline links, images, reference definitions. */
function linksOf(text: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = []
  proseLines(text).forEach((line, i) => {
    for (const m of line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line: i + 1, target: m[1] as string })
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/.exec(line)
    if (definition !== null) links.push({ line: i + 1, target: definition[1] as string })
  })
  return links
}

/** What is wrong with the relative links of `files` (paths relative to `root`): one line per broken link. */
function brokenLinks(root: string, files: readonly string[]): string[] {
  const problems: string[] = []
  const anchorCache = new Map<string, Set<string>>()
  const anchorsIn = (file: string): Set<string> => {
    let anchors = anchorCache.get(file)
    if (anchors === undefined) anchorCache.set(file, (anchors = anchorsOf(readFileSync(file, 'utf8'))))
    return anchors
  }
  for (const file of files) {
    const from = join(root, file)
    for (const { line, target } of linksOf(readFileSync(from, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue // http:, mailto:, ...
      const where = `${file}:${line}: ${target}`
      const hash = target.indexOf('#')
      const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash))
      const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1))
      const resolved = pathPart === '' ? from : pathPart.startsWith('/') ? join(root, pathPart) : resolve(dirname(from), pathPart)
      const inside = relative(root, resolved)
      if (inside.startsWith(`..${sep}`) || inside === '..') {
        problems.push(`${where}: points outside the repository`)
        continue
      }
      if (!existsSync(resolved)) {
        problems.push(`${where}: no such file`)
        continue
      }
      if (anchor === undefined || anchor === '') continue
      const page = statSync(resolved).isDirectory() ? join(resolved, 'README.md') : resolved
      if (!page.endsWith('.md') || !existsSync(page)) {
        problems.push(`${where}: an anchor into a file that is not Markdown`)
        continue
      }
      if (!anchorsIn(page).has(anchor)) {
        const known = [...anchorsIn(page)].join(', ')
        problems.push(`${where}: no heading #${anchor} in ${relative(root, page)} (its anchors: ${known})`)
      }
    }
  }
  return problems
}

describe('the link checker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cachekit-docs-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('finds a missing file and a missing heading, and accepts good links and code', () => {
    mkdirSync(join(dir, 'docs'))
    writeFileSync(join(dir, 'docs', 'page.md'), '# A page\n\n## The `lease`: how it works\n\n## Again\n\n## Again\n')
    writeFileSync(
      join(dir, 'README.md'),
      [
        '# Title',
        '[good](docs/page.md) [good anchor](docs/page.md#the-lease-how-it-works) [second](docs/page.md#again-1)',
        '[local](#title) [site](https://example.com/x.md) [folder](docs/)',
        '[missing file](docs/nope.md)',
        '[missing anchor](docs/page.md#nope)',
        '[outside](../elsewhere.md)',
        '`[not a link](nope.md)`',
        '```md',
        '[inside a fence](nope.md)',
        '```',
        '[ref]: docs/gone.md',
      ].join('\n'),
    )
    const problems = brokenLinks(dir, ['README.md', join('docs', 'page.md')])
    expect(problems).toHaveLength(4)
    expect(problems[0]).toMatch(/README\.md:4: docs\/nope\.md: no such file/)
    expect(problems[1]).toMatch(/README\.md:5: docs\/page\.md#nope: no heading #nope/)
    expect(problems[2]).toMatch(/README\.md:6: \.\.\/elsewhere\.md: points outside the repository/)
    expect(problems[3]).toMatch(/README\.md:11: docs\/gone\.md: no such file/)
  })

  it('makes anchors as GitHub does', () => {
    expect(anchorOf('getOrSet: stampede protection and grace')).toBe('getorset-stampede-protection-and-grace')
    expect(anchorOf('Methods: `@cache.memoized`')).toBe('methods-cachememoized')
    expect(anchorOf('Errors, `undefined` and outages')).toBe('errors-undefined-and-outages')
    expect(anchorOf('SQLite (the embedded default)')).toBe('sqlite-the-embedded-default')
    expect(anchorOf('What `clear()` touches')).toBe('what-clear-touches')
  })
})

describe('the documentation', () => {
  const files = markdownFiles(ROOT)

  it('covers the README, CONTRIBUTING.md, examples/README.md and docs/', () => {
    expect(files).toEqual(expect.arrayContaining(['README.md', 'CONTRIBUTING.md', join('examples', 'README.md'), join('docs', 'README.md')]))
  })

  it('has no relative link to a missing file or heading', () => {
    expect(brokenLinks(ROOT, files)).toEqual([])
  })

  it('lists every page of docs/ in docs/README.md', () => {
    const index = join(ROOT, 'docs', 'README.md')
    const linked = new Set(linksOf(readFileSync(index, 'utf8')).map(({ target }) => resolve(dirname(index), target.split('#')[0] as string)))
    const pages = files.filter((f) => f.startsWith(`docs${sep}`) && f !== join('docs', 'README.md'))
    expect(pages.filter((page) => !linked.has(join(ROOT, page)))).toEqual([])
  })

  it(`keeps the README under ${README_MAX_LINES} lines, opening on the install and the quick start`, () => {
    const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n')
    expect(lines.length).toBeLessThan(README_MAX_LINES)
    const firstScreen = lines.slice(0, 60).join('\n')
    expect(firstScreen).toContain('npm install cachekit')
    expect(firstScreen).toContain("import { cache } from 'cachekit'")
    expect(firstScreen).toContain('cache.init(')
  })
})
