import { deserialize as v8Deserialize, serialize as v8Serialize } from 'node:v8'
import { parseIntegerPayload, type Payload } from './adapter.js'
import { CacheSerializationError } from './errors.js'

/**
 * Turns values into payloads and back. Whatever the codec, a safe integer is stored as its decimal text so
 * that backends can increment it natively and other programs can read it.
 */
export interface Codec {
  encode(value: unknown): Payload
  decode(payload: Payload): unknown
}

/** What the `serializer` option accepts: `'json'` (the default), `'v8'`, or your own codec. */
export type SerializerOption = 'json' | 'v8' | Codec

/**
 * Rich payloads start with this character, which no JSON text can start with. Plain JSON values are
 * stored as plain JSON text and decoded with one `JSON.parse`: they never pay for the rich types.
 */
const RICH = '~'
const TAG = '$t'

const textDecoder = new TextDecoder('utf-8', { fatal: true })

function toText(payload: Payload): string {
  if (typeof payload === 'string') return payload
  try {
    return textDecoder.decode(payload)
  } catch (cause) {
    throw new CacheSerializationError('A stored payload is not UTF-8 text, so the JSON codec cannot read it.', { cause })
  }
}

/**
 * Why a value cannot be stored. Thrown deep inside the walk; each container on the way out adds its
 * segment to `path`, so that the walk never builds path strings for values that are fine.
 */
class Refusal extends Error {
  readonly path: string[] = []
  constructor(
    readonly what: string,
    readonly hint = '',
  ) {
    super(what)
  }
}

const V8_HINT = " Use `serializer: 'v8'` to store it, or convert it first."

/**
 * The most decimal digits of a BigInt, both ways: parsing decimal text takes time that grows faster than
 * its length (18 ms for 100,000 digits, 385 ms for a million), so a crafted payload must not choose it.
 */
const MAX_BIGINT_DIGITS = 100_000
let maxBigIntValue: bigint | undefined
/** 10^100000 - 1, built on first use (3 ms) so that a cache without BigInts never pays for it. */
function maxBigInt(): bigint {
  maxBigIntValue ??= 10n ** BigInt(MAX_BIGINT_DIGITS) - 1n
  return maxBigIntValue
}

const hasOwn = Object.prototype.hasOwnProperty

/**
 * Give `obj` the own data member `key`. A plain assignment would do, except for `__proto__`: assigned, it
 * sets the prototype instead of adding a member, so a value's own `__proto__` would be lost.
 */
function defineMember(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  else obj[key] = value
}

/**
 * Walk a value once: true if it needs the rich encoding, throws a {@link Refusal} on what no encoding can
 * store. Objects deeper than `CYCLE_CHECK_DEPTH` are re-walked with cycle tracking, so the common shallow
 * value does not pay for a `Set` of ancestors.
 */
const CYCLE_CHECK_DEPTH = 64

class DeepValue extends Error {}

function child(value: unknown, segment: string | number, depth: number, ancestors: Set<object> | null): boolean {
  try {
    return needsRich(value, depth, ancestors)
  } catch (error) {
    if (error instanceof Refusal) error.path.push(typeof segment === 'number' ? `[${segment}]` : `.${segment}`)
    throw error
  }
}

function needsRich(value: unknown, depth: number, ancestors: Set<object> | null): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return false
    case 'number':
      return !Number.isFinite(value)
    case 'bigint':
      if ((value < 0n ? -value : value) > maxBigInt()) throw new Refusal(`a BigInt of more than ${MAX_BIGINT_DIGITS} digits`, V8_HINT)
      return true
    case 'undefined':
      return true
    case 'function':
      throw new Refusal('a function')
    case 'symbol':
      throw new Refusal('a symbol')
  }
  if (value === null) return false
  const obj = value as object
  if (ancestors === null && depth > CYCLE_CHECK_DEPTH) throw new DeepValue()
  if (ancestors !== null) {
    if (ancestors.has(obj)) throw new Refusal('a cycle (it contains itself)')
    ancestors.add(obj)
  }
  let rich = false
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) {
      if (child(obj[i], i, depth + 1, ancestors)) rich = true
    }
  } else {
    const proto = Object.getPrototypeOf(obj) as object | null
    if (proto !== Object.prototype && proto !== null) {
      if (obj instanceof Date || obj instanceof Uint8Array) {
        rich = true
      } else if (obj instanceof Map) {
        for (const [k, v] of obj) {
          child(k, '<key>', depth + 1, ancestors)
          child(v, `get(${String(k)})`, depth + 1, ancestors)
        }
        rich = true
      } else if (obj instanceof Set) {
        for (const v of obj) child(v, '<item>', depth + 1, ancestors)
        rich = true
      } else if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) {
        throw new Refusal(`a ${obj.constructor.name}`, V8_HINT)
      } else if (obj instanceof Promise || obj instanceof WeakMap || obj instanceof WeakSet) {
        throw new Refusal(`a ${obj.constructor.name}`)
      } else if (obj instanceof RegExp || obj instanceof Error) {
        throw new Refusal(`a ${obj.constructor.name}`, V8_HINT)
      } else if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
        // A class with its own JSON form (Decimal, ObjectId, ...): stored as JSON stores it.
        if (ancestors !== null) ancestors.delete(obj)
        return false
      }
    }
    if (!rich) {
      for (const k in obj) {
        if (!Object.prototype.hasOwnProperty.call(obj, k)) continue
        if (k === TAG) rich = true
        const v = (obj as Record<string, unknown>)[k]
        // JSON drops undefined properties; so do we, and say so in the README.
        if (v !== undefined && child(v, k, depth + 1, ancestors)) rich = true
      }
    }
  }
  if (ancestors !== null) ancestors.delete(obj)
  return rich
}

function checkValue(value: unknown): boolean {
  try {
    try {
      return needsRich(value, 0, null)
    } catch (error) {
      if (!(error instanceof DeepValue)) throw error
      return needsRich(value, 0, new Set())
    }
  } catch (error) {
    if (!(error instanceof Refusal)) throw error
    const path = error.path.reverse().join('')
    const where = path === '' ? 'The value' : `The value at ${path}`
    throw new CacheSerializationError(`${where} is ${error.what}, which cannot be cached.${error.hint}`)
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** The JSON-safe tree of a rich value, with tagged objects for the types JSON lacks. */
function tag(value: unknown): unknown {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : { [TAG]: 'Number', v: String(value) }
    case 'bigint':
      return { [TAG]: 'BigInt', v: value.toString() }
    case 'undefined':
      return { [TAG]: 'undefined' }
    case 'object':
      break
    default:
      return value
  }
  if (value === null) return null
  if (Array.isArray(value)) return value.map(tag)
  if (value instanceof Date) {
    const t = value.getTime()
    return { [TAG]: 'Date', v: Number.isNaN(t) ? null : t }
  }
  if (Buffer.isBuffer(value)) return { [TAG]: 'Buffer', v: toBase64(value) }
  if (value instanceof Uint8Array) return { [TAG]: 'Uint8Array', v: toBase64(value) }
  if (value instanceof Map) return { [TAG]: 'Map', v: Array.from(value, ([k, v]) => [tag(k), tag(v)]) }
  if (value instanceof Set) return { [TAG]: 'Set', v: Array.from(value, tag) }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value
  const out: Record<string, unknown> = {}
  for (const k in value) {
    if (!hasOwn.call(value, k)) continue
    const v = (value as Record<string, unknown>)[k]
    if (v !== undefined) defineMember(out, k, tag(v))
  }
  return hasOwn.call(out, TAG) ? { [TAG]: 'Object', v: out } : out
}

function malformed(t: string): never {
  throw new CacheSerializationError(`A stored payload has a malformed ${t} (its "v" is not what cachekit writes); was it written by another program?`)
}

const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity'])

/**
 * Decode, in place, the tree `JSON.parse` made from a rich payload. Its objects are fresh and ours, and each
 * of their members is an own data property (JSON.parse defines them), so assigning a decoded value to one
 * replaces that member's value, `__proto__` included: no payload can choose a prototype. Anything that is
 * not a form cachekit writes is a {@link CacheSerializationError}.
 */
function untag(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    untagItems(value)
    return value
  }
  const obj = value as Record<string, unknown>
  const t = obj[TAG]
  if (typeof t !== 'string') {
    untagMembers(obj)
    return obj
  }
  const v = obj.v
  switch (t) {
    case 'Number':
      return typeof v === 'string' && NON_FINITE.has(v) ? Number(v) : malformed(t)
    case 'BigInt':
      return typeof v === 'string' && /^-?\d+$/.test(v) && v.length - (v[0] === '-' ? 1 : 0) <= MAX_BIGINT_DIGITS ? BigInt(v) : malformed(t)
    case 'undefined':
      return undefined
    case 'Date':
      return v === null ? new Date(Number.NaN) : typeof v === 'number' ? new Date(v) : malformed(t)
    case 'Buffer':
      return typeof v === 'string' ? Buffer.from(v, 'base64') : malformed(t)
    case 'Uint8Array':
      return typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'base64')) : malformed(t)
    case 'Map': {
      if (!Array.isArray(v)) malformed(t)
      const map = new Map<unknown, unknown>()
      for (const pair of v as unknown[]) {
        if (!Array.isArray(pair) || pair.length !== 2) malformed(t)
        map.set(untag(pair[0]), untag(pair[1]))
      }
      return map
    }
    case 'Set': {
      if (!Array.isArray(v)) malformed(t)
      const set = new Set<unknown>()
      for (const item of v as unknown[]) set.add(untag(item))
      return set
    }
    case 'Object':
      // An object with a `$t` member of its own: its members are decoded, its `$t` is not a tag.
      if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed(t)
      untagMembers(v as Record<string, unknown>)
      return v
    default:
      throw new CacheSerializationError(`A stored payload has an unknown type tag ${JSON.stringify(t.slice(0, 40))}.`)
  }
}

function untagItems(items: unknown[]): void {
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (typeof item === 'object' && item !== null) items[i] = untag(item)
  }
}

function untagMembers(obj: Record<string, unknown>): void {
  for (const k of Object.keys(obj)) {
    const member = obj[k]
    if (typeof member === 'object' && member !== null) obj[k] = untag(member)
  }
}

/** A rich payload's value; a stack overflow on a crafted nesting depth is a named error too. */
function decodeRich(text: string): unknown {
  const tree = parseJson(text)
  try {
    return untag(tree)
  } catch (error) {
    if (error instanceof CacheSerializationError) throw error
    throw new CacheSerializationError(`A stored payload cannot be decoded: ${(error as Error)?.message ?? String(error)}`, { cause: error })
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new CacheSerializationError(
      `A stored payload is not cachekit JSON (it starts with ${JSON.stringify(text.slice(0, 20))}); was it written by another program or another serializer?`,
      { cause },
    )
  }
}

/**
 * The default codec: plain JSON for plain values (one `JSON.stringify` / `JSON.parse`), a tagged form for
 * `Date`, `Map`, `Set`, `BigInt`, `Buffer`, `Uint8Array`, `NaN`/`Infinity` and `undefined` array items.
 */
export const jsonCodec: Codec = {
  encode(value) {
    // The hot path for counters and strings: no walk.
    if (typeof value === 'string') return JSON.stringify(value)
    if (typeof value === 'number' && Number.isFinite(value)) return JSON.stringify(value)
    if (typeof value === 'boolean' || value === null) return String(value)
    return checkValue(value) ? RICH + JSON.stringify(tag(value)) : JSON.stringify(value)
  },
  decode(payload) {
    const text = toText(payload)
    return text.charCodeAt(0) === 126 /* ~ */ ? decodeRich(text.slice(1)) : parseJson(text)
  },
}

/** Structured clone (`node:v8`): keeps class-free types JSON lacks, cycles included; Node-only payloads. */
export const v8Codec: Codec = {
  encode(value) {
    if (Number.isSafeInteger(value)) return String(value)
    try {
      return v8Serialize(value)
    } catch (cause) {
      throw new CacheSerializationError(
        `The value cannot be cached with the v8 serializer: ${(cause as Error).message}`,
        { cause },
      )
    }
  },
  decode(payload) {
    const int = parseIntegerPayload(payload)
    if (int !== undefined) return int
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload
    try {
      return v8Deserialize(bytes)
    } catch (cause) {
      throw new CacheSerializationError('A stored payload is not a v8-serialized value.', { cause })
    }
  },
}

/** Wrap a user codec so integers stay decimal text (and so `inc` works) whatever the codec does. */
export function integerSafe(codec: Codec): Codec {
  return {
    encode: (value) => (Number.isSafeInteger(value) ? String(value) : codec.encode(value)),
    decode: (payload) => parseIntegerPayload(payload) ?? codec.decode(payload),
  }
}

/** The codec for a `serializer` option. */
export function resolveCodec(option: SerializerOption): Codec {
  if (option === 'json') return jsonCodec
  if (option === 'v8') return v8Codec
  return integerSafe(option)
}
