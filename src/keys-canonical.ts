import { createHash } from 'node:crypto'
import { CacheArgumentError } from './errors.js'

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

/** SHA-256 of `text`, in base64url (43 characters): short enough for any backend's key. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

