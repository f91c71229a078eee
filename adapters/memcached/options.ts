/** memcached's option defaults and the parsing of servers and URLs: shared by the definition and the factory. */
import { CacheConfigError } from '../../src/errors.js'

export const MEMCACHED_DEFAULTS = {
  servers: ['127.0.0.1:11211'] as readonly string[],
  port: 11211,
  connectTimeout: 5_000,
  commandTimeout: 1_000,
  clearCheckInterval: 0,
  clearAll: false,
} as const

const SCHEME = /^(memcached|memcache):\/\//i

/** `host:port` checked, with the default port added; IPv6 in brackets. */
export function normalizeServer(server: string, option = 'servers'): string {
  const s = server.trim()
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/@,]+)(?::(\d{1,5}))?$/.exec(s)
  const port = m?.[2] === undefined ? MEMCACHED_DEFAULTS.port : Number(m[2])
  if (m === null || port < 1 || port > 65535) {
    throw new CacheConfigError(`Invalid memcached server ${JSON.stringify(s)} in \`${option}\`: write host:port, e.g. '127.0.0.1:11211'.`, { option })
  }
  return `${m[1]}:${port}`
}

/** The servers of a `servers` option (an array, or one comma-separated string). */
export function parseServers(value: unknown, option = 'servers'): string[] {
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? (value as unknown[]) : undefined
  if (list === undefined || list.some((s) => typeof s !== 'string')) {
    throw new CacheConfigError(`Option \`${option}\` must be 'host:port', a comma-separated list of them, or an array of them.`, { option })
  }
  const servers = (list as string[]).filter((s) => s.trim() !== '').map((s) => normalizeServer(s, option))
  if (servers.length === 0) throw new CacheConfigError(`Option \`${option}\` names no server: write e.g. '127.0.0.1:11211'.`, { option })
  return servers
}

/**
 * Options from `memcached://[user:password@]host[:port][,host[:port]...]` (or `memcache://`). The user and
 * password are percent-decoded; the message of a malformed URL never repeats the password.
 */
export function memcachedOptionsFromUrl(url: string): Record<string, unknown> {
  const rest = url.replace(SCHEME, '')
  const at = rest.lastIndexOf('@')
  const userinfo = at === -1 ? undefined : rest.slice(0, at)
  const hosts = (at === -1 ? rest : rest.slice(at + 1)).replace(/\/$/, '')
  const shown = userinfo === undefined ? url : url.replace(userinfo, userinfo.includes(':') ? `${userinfo.slice(0, userinfo.indexOf(':'))}:***` : userinfo)
  if (!SCHEME.test(url) || hosts === '' || /[/?#]/.test(hosts)) {
    throw new CacheConfigError(`Invalid memcached URL ${JSON.stringify(shown)}: write memcached://[user:password@]host:port[,host:port...].`, { option: 'url' })
  }
  const options: Record<string, unknown> = { servers: parseServers(hosts, 'url') }
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    try {
      options.username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon))
      if (colon !== -1) options.password = decodeURIComponent(userinfo.slice(colon + 1))
    } catch {
      throw new CacheConfigError(`Invalid memcached URL ${JSON.stringify(shown)}: the user or password has a malformed %-escape.`, { option: 'url' })
    }
  }
  return options
}

/** Whether an import failed because `name` is not installed. */
