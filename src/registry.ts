/**
 * The adapters a `type`, a URL scheme or a `CACHE_*` variable can name: the built-ins listed in
 * `adapters/index.ts`, then those added with {@link registerAdapter}. The only module of the core that
 * imports from `adapters/`.
 */
import { ADAPTERS } from '../adapters/index.js'
import { COMMON_ENV, COMMON_KINDS } from './config/options.js'
import { OPTION_KINDS, type AdapterDefinition } from './definition.js'
import { CacheConfigError } from './errors.js'

export type { AdapterDefinition, OptionKind } from './definition.js'
export { pathFromUrl } from './url.js'
export { ADAPTERS }

/** Built-ins first, then registered adapters in the order they were registered. */
let all: readonly AdapterDefinition[] = ADAPTERS

/** Every adapter a config can name: the built-ins, then the registered ones. */
export function adapterDefinitions(): readonly AdapterDefinition[] {
  return all
}

/** The definition for a type or alias, or `undefined`. */
export function findAdapter(type: string): AdapterDefinition | undefined {
  return all.find((d) => d.type === type || d.aliases?.includes(type))
}

/** The definition for a URL scheme (lowercase, without the colon), or `undefined`. */
export function findAdapterForScheme(scheme: string): AdapterDefinition | undefined {
  return all.find((d) => d.schemes?.includes(scheme))
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/
const SCHEME = /^[a-z][a-z0-9+.-]*$/
const VARIABLE = /^[A-Z][A-Z0-9_]*$/

/**
 * Add a backend that `type`, a URL of one of its `schemes` and its `env` variables can name, validated at
 * `init` like a built-in (a misspelled option gets a suggestion). Register it once, before the first
 * `init` that names it, e.g. in the module that exports the adapter.
 *
 * @example
 * registerAdapter({
 *   type: 'acme',
 *   options: { endpoint: 'string', timeout: 'duration' },
 *   schemes: ['acme'],
 *   fromUrl: (url) => ({ endpoint: url.slice('acme://'.length) }),
 *   env: { CACHE_ACME_ENDPOINT: 'endpoint' },
 *   load: async () => (await import('./acme-adapter.js')).acmeAdapter,
 * })
 * cache.init('acme://cache.internal')
 * @throws {CacheConfigError} naming the type and what is wrong: a malformed definition, or a type, alias,
 *   URL scheme or variable another adapter already has.
 */
export function registerAdapter(definition: AdapterDefinition): void {
  const def = checkedDefinition(definition)
  const where = `registerAdapter(${JSON.stringify(def.type)})`
  for (const name of [def.type, ...(def.aliases ?? [])]) {
    const taken = findAdapter(name)
    if (taken !== undefined) throw taken_(where, `the type \`${name}\``, taken, 'type')
  }
  for (const scheme of def.schemes ?? []) {
    const taken = findAdapterForScheme(scheme)
    if (taken !== undefined) throw taken_(where, `the URL scheme \`${scheme}:\``, taken, 'schemes')
  }
  for (const variable of Object.keys(def.env ?? {})) {
    if (COMMON_ENV.includes(variable)) throw new CacheConfigError(`${where}: \`${variable}\` is a variable of every cache; give the backend its own.`, { option: 'env' })
    const taken = all.find((d) => d.env?.[variable] !== undefined)
    if (taken !== undefined) throw taken_(where, `the variable \`${variable}\``, taken, 'env')
  }
  all = [...all, def]
}

function taken_(where: string, what: string, by: AdapterDefinition, option: string): CacheConfigError {
  const owner = ADAPTERS.includes(by) ? `the built-in \`${by.type}\` backend` : `the registered \`${by.type}\` backend`
  return new CacheConfigError(`${where}: ${what} is already taken by ${owner}. Choose another name.`, { option })
}

/** A frozen copy of a definition, or a `CacheConfigError` naming the type and the field that is wrong. */
function checkedDefinition(input: unknown): AdapterDefinition {
  if (typeof input !== 'object' || input === null) {
    throw new CacheConfigError(`registerAdapter: the definition must be an object ({ type, options, load, ... }), not ${input === null ? 'null' : typeof input}.`)
  }
  const d = input as Record<string, unknown>
  if (typeof d.type !== 'string' || !NAME.test(d.type)) {
    throw new CacheConfigError(`registerAdapter: \`type\` must be a name of letters, digits, - and _ (starting with a letter), not ${JSON.stringify(d.type) ?? typeof d.type}.`, { option: 'type' })
  }
  const where = `registerAdapter(${JSON.stringify(d.type)})`
  const fail = (field: string, what: string): never => {
    throw new CacheConfigError(`${where}: \`${field}\` ${what}.`, { option: field })
  }
  const strings = (field: string, pattern: RegExp, what: string): string[] | undefined => {
    const v = d[field]
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || !pattern.test(s))) fail(field, `must be an array of ${what}`)
    return [...(v as string[])]
  }
  const aliases = strings('aliases', NAME, 'names (letters, digits, - and _)')
  const schemes = strings('schemes', SCHEME, 'lowercase URL schemes without the colon (e.g. "acme")')
  if (typeof d.options !== 'object' || d.options === null || Array.isArray(d.options)) fail('options', "must be an object of option names and kinds, e.g. { endpoint: 'string' } ({} for none)")
  const options = { ...(d.options as Record<string, unknown>) }
  for (const [name, kind] of Object.entries(options)) {
    if (name in COMMON_KINDS || name === 'url') fail('options', `declares \`${name}\`, an option of every cache: a backend cannot redefine it`)
    if (!OPTION_KINDS.includes(kind as never)) fail('options', `gives \`${name}\` the kind ${JSON.stringify(kind)}; the kinds are ${OPTION_KINDS.join(', ')}`)
  }
  let env: Record<string, string> | undefined
  if (d.env !== undefined) {
    if (typeof d.env !== 'object' || d.env === null || Array.isArray(d.env)) fail('env', 'must be an object of variable names and the options they set')
    env = { ...(d.env as Record<string, string>) }
    for (const [variable, option] of Object.entries(env)) {
      if (!VARIABLE.test(variable)) fail('env', `names ${JSON.stringify(variable)}, not a variable name (capitals, digits and _)`)
      if (option !== 'url' && !(option in options)) fail('env', `maps ${variable} to \`${String(option)}\`, which is not one of its options (or \`url\`)`)
    }
  }
  if (d.fromUrl !== undefined && typeof d.fromUrl !== 'function') fail('fromUrl', 'must be a function (url) => options')
  if (d.fromUrl !== undefined && schemes === undefined) fail('fromUrl', 'is given without `schemes`: say which URLs it reads')
  if (typeof d.load !== 'function') fail('load', 'must be a function that returns (a promise of) the adapter factory')
  return Object.freeze({
    type: d.type,
    ...(aliases === undefined ? {} : { aliases: Object.freeze(aliases) }),
    options: Object.freeze(options) as AdapterDefinition['options'],
    ...(schemes === undefined ? {} : { schemes: Object.freeze(schemes) }),
    ...(d.fromUrl === undefined ? {} : { fromUrl: d.fromUrl as AdapterDefinition['fromUrl'] }),
    ...(env === undefined ? {} : { env: Object.freeze(env) }),
    load: d.load as AdapterDefinition['load'],
  })
}
