/** A config from `CACHE_*` environment variables. */
import type { AdapterDefinition } from '../definition.js'
import { parseDuration, type Duration } from '../duration.js'
import { CacheConfigError } from '../errors.js'
import { redactUrl } from '../redact.js'
import { adapterDefinitions, findAdapter } from '../registry.js'
import { COMMON_ENV, EMBEDDED_DEFAULT, type AdapterOptions, type CommonOptions } from './options.js'
import { definitionFor, definitionForUrl, resolveConfig } from './resolve.js'
import { showValue } from './show.js'
import { takeL1FromUrl } from '../tier/options.js'

function envError(variable: string, value: string, what: string): CacheConfigError {
  return new CacheConfigError(`Environment variable ${variable}=${showValue(value)} is not ${what}.`, { option: variable })
}

/** Options of {@link configFromEnv}. */
export interface EnvOptions {
  /**
   * Told, once per call, of variables that are set but not read: another backend's (`CACHE_DIR` with
   * `CACHE_TYPE=memory`), or `CACHE_DEFAULT_TIMEOUT` beside `CACHE_DEFAULT_TTL`. The message names the
   * variables, never their values. `cache.init()` emits it as a `'warning'` event.
   * @default a line on the console (`console.warn`)
   */
  warn?: (message: string) => void
}

/**
 * A config from `CACHE_*` environment variables, validated as `init` validates; `undefined` when none is
 * set. Reads `CACHE_URL`, `CACHE_TYPE`, `CACHE_DEFAULT_TTL` (a duration) or Flask-Caching's
 * `CACHE_DEFAULT_TIMEOUT` (seconds), `CACHE_KEY_PREFIX`, `CACHE_THRESHOLD`, `CACHE_FAIL_OPEN`, and each
 * backend's own (`CACHE_DIR`, `CACHE_SQLITE_PATH`, `CACHE_REDIS_URL`). A variable set to the empty string
 * counts as unset; variables the chosen backend does not read are named through `options.warn`.
 *
 * @example cache.init(configFromEnv() ?? 'memory:')
 * @throws {CacheConfigError} naming the variable that is malformed: a `CACHE_KEY_PREFIX` of white space
 *   only, or `CACHE_URL` and a backend's variable that say different places, too.
 */
export function configFromEnv(
  env: Record<string, string | undefined> = process.env,
  options: EnvOptions = {},
): (CommonOptions & AdapterOptions & Record<string, unknown>) | undefined {
  const get = (name: string): string | undefined => {
    const v = env[name]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }
  const prefix = env.CACHE_KEY_PREFIX
  if (prefix !== undefined && prefix !== '' && prefix.trim() === '') {
    throw new CacheConfigError(
      `Environment variable CACHE_KEY_PREFIX is white space only (${JSON.stringify(prefix)}), which is almost surely a mistake. ` +
        "Unset it (or set it empty) for no prefix, or give a visible one such as 'app:'.",
      { option: 'CACHE_KEY_PREFIX' },
    )
  }
  const backendVars = adapterDefinitions().flatMap((d) => Object.keys(d.env ?? {}))
  if (![...COMMON_ENV, ...backendVars].some((name) => get(name) !== undefined)) return undefined
  const ignored: string[] = []

  const config: Record<string, unknown> = {}
  const url = get('CACHE_URL')
  const type = get('CACHE_TYPE')
  let def: AdapterDefinition | undefined
  if (type !== undefined) {
    def = definitionFor(type, 'CACHE_TYPE')
    config.type = def.type
  }
  if (url !== undefined) {
    const urlDef = definitionForUrl(url, 'CACHE_URL')
    if (def !== undefined && def !== urlDef) {
      throw new CacheConfigError(`CACHE_TYPE=${redactUrl(type ?? '')} and CACHE_URL (a ${urlDef.type} URL) disagree: set one of them.`, { option: 'CACHE_TYPE' })
    }
    def = urlDef
    config.url = url
  }
  if (def === undefined) {
    // A variable several backends read (CACHE_SQL_TABLE) implies none of them while another one is set.
    const setBy = (d: AdapterDefinition, own: boolean): boolean =>
      Object.keys(d.env ?? {}).some((name) => get(name) !== undefined && (!own || backendVars.indexOf(name) === backendVars.lastIndexOf(name)))
    const byOwn = adapterDefinitions().filter((d) => setBy(d, true))
    const implied = byOwn.length > 0 ? byOwn : adapterDefinitions().filter((d) => setBy(d, false))
    if (implied.length === 1) def = implied[0]
    else if (implied.length > 1) {
      throw new CacheConfigError(
        `Variables of several backends are set (${implied.map((d) => d.type).join(', ')}): set CACHE_TYPE to choose one.`,
        { option: 'CACHE_TYPE' },
      )
    }
    if (def !== undefined) config.type = def.type
    // Only common variables (CACHE_KEY_PREFIX, CACHE_DEFAULT_TTL, ...): they apply to the embedded default.
    else Object.assign(config, EMBEDDED_DEFAULT)
  }
  for (const [variable, option] of Object.entries(def?.env ?? {})) {
    const v = get(variable)
    if (v === undefined) continue
    if (url !== undefined && def !== undefined && saysOtherwise(def, url, option, v)) {
      throw new CacheConfigError(`CACHE_URL and ${variable} both say where the ${def.type} cache is, and differently: set one of them.`, { option: variable })
    }
    config[option] = v
  }
  const chosen = def ?? findAdapter(EMBEDDED_DEFAULT.type)
  ignored.push(...backendVars.filter((name) => get(name) !== undefined && chosen?.env?.[name] === undefined))

  const ttl = get('CACHE_DEFAULT_TTL')
  const timeout = get('CACHE_DEFAULT_TIMEOUT')
  if (ttl !== undefined) {
    try {
      config.defaultTtl = parseDuration(/^\d+(\.\d+)?$/.test(ttl) ? Number(ttl) : ttl)
    } catch {
      throw envError('CACHE_DEFAULT_TTL', ttl, "a duration (ms, or a number and a unit such as '5m')")
    }
    if (timeout !== undefined) ignored.push('CACHE_DEFAULT_TIMEOUT')
  } else if (timeout !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(timeout)) throw envError('CACHE_DEFAULT_TIMEOUT', timeout, 'a number of seconds (0 means never expire)')
    config.defaultTtl = Number(timeout) * 1000
  }
  if (prefix !== undefined && prefix !== '') config.keyPrefix = prefix
  const threshold = get('CACHE_THRESHOLD')
  if (threshold !== undefined) {
    if (!/^\d+$/.test(threshold)) throw envError('CACHE_THRESHOLD', threshold, 'an integer >= 0')
    config.threshold = Number(threshold)
  }
  const failOpen = get('CACHE_FAIL_OPEN')
  if (failOpen !== undefined) {
    const v = failOpen.toLowerCase()
    if (['1', 'true', 'yes', 'on'].includes(v)) config.failOpen = true
    else if (['0', 'false', 'no', 'off'].includes(v)) config.failOpen = false
    else throw envError('CACHE_FAIL_OPEN', failOpen, 'a boolean (true/false, 1/0, yes/no, on/off)')
  }
  const publish = get('CACHE_PUBLISH_STATS')
  if (publish !== undefined) {
    try {
      config.publishStats = parseDuration(/^\d+$/.test(publish) ? Number(publish) : (publish as Duration))
    } catch {
      throw envError('CACHE_PUBLISH_STATS', publish, "a duration such as '5s' (0 means off)")
    }
  }
  const l1 = get('CACHE_L1')
  const l1Options: Record<string, unknown> = {}
  for (const [variable, option] of [['CACHE_L1_THRESHOLD', 'threshold'], ['CACHE_L1_MAX_BYTES', 'maxBytes'], ['CACHE_L1_TTL', 'ttl'], ['CACHE_L1_STALENESS', 'staleness']] as const) {
    const v = get(variable)
    if (v === undefined) continue
    if (option === 'threshold' && !/^\d+$/.test(v)) throw envError(variable, v, 'an integer >= 1')
    l1Options[option] = option === 'threshold' || /^\d+$/.test(v) ? Number(v) : v
  }
  if (l1 !== undefined) {
    const v = l1.toLowerCase()
    if (['1', 'true', 'yes', 'on'].includes(v)) config.l1 = Object.keys(l1Options).length === 0 ? true : l1Options
    else if (['0', 'false', 'no', 'off'].includes(v)) {
      if (Object.keys(l1Options).length > 0) ignored.push(...Object.keys(l1Options).map((o) => `CACHE_L1_${o === 'maxBytes' ? 'MAX_BYTES' : o.toUpperCase()}`))
    } else throw envError('CACHE_L1', l1, 'a boolean (true/false, 1/0, yes/no, on/off)')
  } else if (Object.keys(l1Options).length > 0) config.l1 = l1Options
  resolveConfig(config)
  if (ignored.length > 0) (options.warn ?? ((m: string) => console.warn(`cachekit: ${m}`)))(ignoredMessage(ignored, chosen, type !== undefined ? 'CACHE_TYPE' : url !== undefined ? 'CACHE_URL' : undefined))
  return config
}

/** Whether a backend variable (`CACHE_DIR`) says otherwise than `CACHE_URL` about the option it sets. */
function saysOtherwise(def: AdapterDefinition, url: string, option: string, value: string): boolean {
  if (option === 'url') return value !== url
  let fromUrl: Record<string, unknown>
  try {
    fromUrl = def.fromUrl?.(takeL1FromUrl(url).url) ?? {}
  } catch {
    return false // the URL's own error is reported by the validation that follows
  }
  return option in fromUrl && fromUrl[option] !== value
}

function ignoredMessage(names: string[], chosen: AdapterDefinition | undefined, by: string | undefined): string {
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
  const verb = names.length === 1 ? 'is' : 'are'
  const backends = names.filter((n) => n !== 'CACHE_DEFAULT_TIMEOUT' && !n.startsWith('CACHE_L1_'))
  const reasons: string[] = []
  if (backends.length > 0) {
    const source = by === undefined ? 'the embedded default' : `from ${by}`
    reasons.push(`the backend is ${chosen?.type ?? 'another'} (${source}), which does not read ${backends.length === 1 ? 'it' : 'them'}`)
  }
  if (names.includes('CACHE_DEFAULT_TIMEOUT')) reasons.push('CACHE_DEFAULT_TTL is set and wins over CACHE_DEFAULT_TIMEOUT')
  if (names.some((n) => n.startsWith('CACHE_L1_'))) reasons.push('CACHE_L1 turns the memory tier off')
  return `${list} ${verb} set but ignored: ${reasons.join('; ')}. Unset ${names.length === 1 ? 'it' : 'them'} to silence this.`
}

