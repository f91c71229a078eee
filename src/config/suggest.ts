/** Suggestions for misspelled names, and the one check of option names that makes them. */

/** Names users bring from other libraries, and what cachekit calls them. */
const KNOWN_ALIASES: Record<string, string> = {
  ttl: 'defaultTtl',
  timeout: 'defaultTtl',
  defaultTimeout: 'defaultTtl',
  default_timeout: 'defaultTtl',
  prefix: 'keyPrefix',
  namespace: 'keyPrefix',
  key_prefix: 'keyPrefix',
  max: 'threshold',
  maxSize: 'maxBytes',
  maxMemory: 'maxBytes',
  sizeLimit: 'maxBytes',
  maxEntries: 'threshold',
  store: 'adapter',
  cacheDir: 'dir',
  cache_dir: 'dir',
  directory: 'dir',
  mode: 'fileMode',
  backend: 'type',
}

/** Edit distance (Levenshtein), case-insensitive. */
function editDistance(a: string, b: string): number {
  a = a.toLowerCase()
  b = b.toLowerCase()
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length] ?? 0
}

/** The closest of `candidates` to `name`, if close enough to be a likely misspelling. */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  const alias = KNOWN_ALIASES[name]
  if (alias !== undefined && candidates.includes(alias)) return alias
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(name, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

/** `" Did you mean \`name\`?"` for a likely misspelling of one of `candidates`, else `''`. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const s = suggest(name, candidates)
  return s === undefined ? '' : ` Did you mean \`${s}\`?`
}

/**
 * The message for an unknown option: `where` (e.g. `getOrSet("k")`), the name, a suggestion for a likely
 * misspelling, and the options there are.
 */
export function unknownOptionMessage(where: string, name: string, known: readonly string[]): string {
  return `${where}: unknown option \`${name}\`.${didYouMean(name, known)} The options are ${known.join(', ')}.`
}

/**
 * Refuse an option name not in `known`, with a suggestion for a likely misspelling. `fail` makes the error
 * (each caller has its own class and context); it is called only for an unknown name, so a valid options
 * object costs one lookup per name. `where` may be a function, so that a caller on a hot path (getOrSet) builds
 * its label only for a message.
 *
 * @throws whatever `fail` returns, for the first unknown name.
 */
export function checkOptionNames(
  input: object,
  known: readonly string[],
  where: string | (() => string),
  fail: (message: string, option: string) => Error,
): void {
  for (const name of Object.keys(input)) {
    if (!known.includes(name)) throw fail(unknownOptionMessage(typeof where === 'string' ? where : where(), name, known), name)
  }
}
