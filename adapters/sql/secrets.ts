import { inspect } from 'node:util'

/** The forms a password may take in a message: as given, and percent-encoded as in a URL. */
export function secretForms(password: string | undefined): string[] {
  if (password === undefined || password === '') return []
  const forms = new Set([password, encodeURIComponent(password)])
  try {
    forms.add(decodeURIComponent(password))
  } catch {
    // Not percent-encoded text: the forms above are all there is.
  }
  return [...forms].filter((f) => f !== '')
}

function scrub(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) out = out.split(s).join('***')
  return out
}

/** A copy of `value` with every secret replaced, errors (and their causes) kept as errors. */
function scrubbed(value: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof value === 'string') return scrub(value, secrets)
  if (depth > 10 || typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map((v) => scrubbed(v, secrets, depth + 1))
  const source = value as Record<string, unknown>
  const copy: Record<string, unknown> =
    value instanceof Error ? (new Error(scrub(value.message, secrets)) as unknown as Record<string, unknown>) : {}
  if (value instanceof Error) {
    copy.name = value.name
    copy.stack = value.stack === undefined ? undefined : scrub(value.stack, secrets)
    if ('cause' in value) copy.cause = scrubbed(value.cause, secrets, depth + 1)
  }
  for (const [k, v] of Object.entries(source)) {
    if (k === 'message' || k === 'stack' || k === 'cause') continue
    copy[k] = scrubbed(v, secrets, depth + 1)
  }
  return copy
}

/**
 * `error` without any of `secrets` (a password): the error itself when none appears anywhere in it or its
 * causes, else a copy with each occurrence replaced by `***`. Drivers may put a connection string in an
 * error; no credential may reach a message, a cause, an event or a log.
 */
export function withoutSecrets<T>(error: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return error
  const text = `${inspect(error, { depth: 10, showHidden: false })}${(error as Error | undefined)?.message ?? ''}`
  if (!secrets.some((s) => text.includes(s))) return error
  return scrubbed(error, secrets, 0) as T
}

/** An error's text for a message: its message, else its code, else those of the errors it aggregates. */
export function reasonOf(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown; errors?: unknown } | undefined
  if (typeof e?.message === 'string' && e.message !== '') return e.message
  if (Array.isArray(e?.errors) && e.errors.length > 0) return [...new Set(e.errors.map(reasonOf))].join('; ')
  if (typeof e?.code === 'string') return e.code
  return String(error)
}
