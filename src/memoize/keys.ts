import { CacheArgumentError, CacheConfigError } from '../errors.js'
import { BOOKKEEPING } from '../engine.js'
import { sha256 } from '../hash.js'

/**
 * A canonical text for a value: equal values give equal text in every process and after every restart,
 * different values give different text. Object key order does not matter; types are tagged, so `1` and
 * `'1'`, `undefined` and `null`, `[]` and `{}` differ. Maps and Sets keep their insertion order (it is part
 * of what they mean), so two Maps with different contents (or orders) never share a key.
 *
 * @throws {CacheArgumentError} for a function, a symbol, a WeakMap/WeakSet/Promise or a cycle, which have
 *   no stable identity across processes.
 */
export function canonicalEncode(value: unknown, what = 'argument'): string {
  const out: string[] = []
  encode(value, out, [], what, '')
  return out.join('')
}

function refuse(what: string, path: string, kind: string): never {
  throw new CacheArgumentError(
    `The ${what}${path} is ${kind}, which has no stable cache key. Leave it out with \`argsToIgnore\`, or say what identifies the call with \`key\`.`,
  )
}

function encode(value: unknown, out: string[], ancestors: object[], what: string, path: string): void {
  switch (typeof value) {
    case 'undefined':
      out.push('u')
      return
    case 'boolean':
      out.push(value ? 'T' : 'F')
      return
    case 'number':
      // `String(-0)` is "0": keep the sign apart. NaN and Infinity are fine as text.
      out.push('n', Object.is(value, -0) ? '-0' : String(value), ';')
      return
    case 'bigint':
      out.push('b', value.toString(), ';')
      return
    case 'string':
      out.push('s', JSON.stringify(value))
      return
    case 'function':
      return refuse(what, path, 'a function')
    case 'symbol':
      return refuse(what, path, 'a symbol')
  }
  if (value === null) {
    out.push('N')
    return
  }
  const obj = value as object
  if (ancestors.includes(obj)) refuse(what, path, 'a cycle (it contains itself)')
  ancestors.push(obj)
  if (Array.isArray(obj)) {
    out.push('[')
    // An index loop, not forEach: a hole must not vanish (`[, 1]` is not `[1]`).
    for (let i = 0; i < obj.length; i++) {
      encode(obj[i], out, ancestors, what, `${path}[${i}]`)
      out.push(',')
    }
    out.push(']')
  } else if (obj instanceof Date) {
    out.push('D', String(obj.getTime()), ';')
  } else if (obj instanceof Uint8Array) {
    out.push(Buffer.isBuffer(obj) ? 'B' : 'U', Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64'), ';')
  } else if (obj instanceof Map) {
    out.push('M{')
    let i = 0
    for (const [k, v] of obj) {
      encode(k, out, ancestors, what, `${path}<key ${i}>`)
      out.push('=>')
      encode(v, out, ancestors, what, `${path}.get(${i})`)
      out.push(',')
      i++
    }
    out.push('}')
  } else if (obj instanceof Set) {
    out.push('S[')
    let i = 0
    for (const v of obj) {
      encode(v, out, ancestors, what, `${path}<item ${i++}>`)
      out.push(',')
    }
    out.push(']')
  } else if (obj instanceof RegExp) {
    out.push('R', JSON.stringify(obj.source), obj.flags, ';')
  } else if (obj instanceof Promise || obj instanceof WeakMap || obj instanceof WeakSet) {
    refuse(what, path, `a ${obj.constructor.name}`)
  } else if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    // A class with its own JSON form (Decimal, ObjectId, URL): identified by that form and its class.
    out.push('J', JSON.stringify(className(obj)), ':')
    encode((obj as { toJSON(): unknown }).toJSON(), out, ancestors, what, path)
  } else {
    const proto = Object.getPrototypeOf(obj) as object | null
    // Plain objects share one tag; instances of a class also carry the class name.
    out.push(proto === Object.prototype || proto === null ? '{' : `O${JSON.stringify(className(obj))}{`)
    for (const k of Object.keys(obj).sort()) {
      out.push(JSON.stringify(k), ':')
      encode((obj as Record<string, unknown>)[k], out, ancestors, what, `${path}.${k}`)
      out.push(',')
    }
    out.push('}')
  }
  ancestors.pop()
}

function className(obj: object): string {
  const ctor = (obj as { constructor?: { name?: unknown } }).constructor
  return typeof ctor?.name === 'string' ? ctor.name : ''
}


/** Every memoized entry's key starts with this, then the function's name. */
export const KEY_PREFIX = 'memoize:'

/** The key of the version of every entry of `name`: bookkeeping, left out of `keys()`. */
export function versionKey(name: string): string {
  return `${KEY_PREFIX}${name}${BOOKKEEPING}version`
}

/** The key of the version of one instance's entries of the method `name`. */
export function instanceVersionKey(name: string, id: string): string {
  return `${KEY_PREFIX}${name}${BOOKKEEPING}version:${id}`
}

/** The instance id of `self` for a memoized method: its `cacheId()`, else its `id` field. */
export function instanceId(self: object, name: string): string {
  const withId = self as { cacheId?: unknown; id?: unknown }
  const id = typeof withId.cacheId === 'function' ? (withId.cacheId as () => unknown).call(self) : withId.id
  if (id === undefined || id === null) {
    throw new CacheArgumentError(
      `The memoized method ${name} needs to know which instance it runs on: give the class an \`id\` field or a \`cacheId()\` method returning a string or number that identifies the instance in every process.`,
    )
  }
  return sha256(canonicalEncode(id, `instance id of ${name}`))
}

/** Parameter names of a function, from its source; `undefined` for a destructured or unreadable one. */
export function parameterNames(fn: (...args: never[]) => unknown): (string | undefined)[] {
  const source = Function.prototype.toString.call(fn)
  const start = /^[^(=]*?(?=\(|[\w$]+\s*=>)/.exec(source)
  let rest = source.slice(start?.[0].length ?? 0)
  if (!rest.startsWith('(')) {
    const single = /^([\w$]+)\s*=>/.exec(rest)
    return single ? [single[1]] : []
  }
  rest = rest.slice(1)
  const params: string[] = []
  let depth = 0
  let current = ''
  let quote = ''
  for (const ch of rest) {
    if (quote !== '') {
      if (ch === quote) quote = ''
      current += ch
      continue
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch
    if (ch === '(' || ch === '[' || ch === '{') depth++
    if (ch === ')' || ch === ']' || ch === '}') {
      if (depth === 0) break
      depth--
    }
    if (ch === ',' && depth === 0) {
      params.push(current)
      current = ''
      continue
    }
    current += ch
  }
  if (current.trim() !== '') params.push(current)
  return params.map((p) => /^\s*(?:\.\.\.)?([\w$]+)\s*(?:=|$)/.exec(p)?.[1])
}

export function ignoredPositions(fn: (...args: never[]) => unknown, name: string, argsToIgnore: readonly (number | string)[] | undefined): Set<number> {
  const ignored = new Set<number>()
  if (argsToIgnore === undefined) return ignored
  if (!Array.isArray(argsToIgnore)) throw new CacheConfigError(`memoize(${name}): \`argsToIgnore\` must be an array of positions or parameter names.`, { option: 'argsToIgnore' })
  let params: (string | undefined)[] | undefined
  for (const a of argsToIgnore) {
    if (typeof a === 'number' && Number.isSafeInteger(a) && a >= 0) ignored.add(a)
    else if (typeof a === 'string') {
      params ??= parameterNames(fn)
      const at = params.indexOf(a)
      if (at < 0) {
        throw new CacheConfigError(
          `memoize(${name}): \`argsToIgnore\` names ${JSON.stringify(a)}, which is not a parameter of the function (${params.filter(Boolean).join(', ') || 'none found'}). Give its position instead.`,
          { option: 'argsToIgnore' },
        )
      }
      ignored.add(at)
    } else {
      throw new CacheConfigError(`memoize(${name}): \`argsToIgnore\` holds ${String(a)}; write positions (0, 1, ...) or parameter names.`, { option: 'argsToIgnore' })
    }
  }
  return ignored
}


/** The key of one call: the name, then a hash of what identifies the call (and of the instance, for a method). */
export function callKey<A extends unknown[]>(plan: { options: { key?: (...args: A) => unknown }; ignored: Set<number> }, name: string, instance: string | undefined, args: A): string {
  const identity = plan.options.key !== undefined ? [plan.options.key(...args)] : args.filter((_, i) => !plan.ignored.has(i))
  const encoded = canonicalEncode(identity, `arguments of ${name}`)
  return `${KEY_PREFIX}${name}:${sha256(instance === undefined ? encoded : `${instance}|${encoded}`)}`
}
