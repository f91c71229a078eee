/**
 * Session ids and their signatures, with Web Crypto only (`crypto.getRandomValues`, `crypto.subtle`), so the
 * Hono middleware runs wherever Hono does: Node, Bun, Deno, Workers-style runtimes.
 *
 * A cookie holds `<id>.<signature>`: the id is 24 random bytes (192 bits) in base64url, the signature the
 * HMAC-SHA256 of the id with the secret, in base64url. Nothing else is in the cookie; the data is in the cache.
 */

/** Random bytes in an id: 192 bits, more than the 128 a session id needs. */
const ID_BYTES = 24
/** An id as written: base64url of {@link ID_BYTES} bytes, no padding. */
const ID_PATTERN = /^[A-Za-z0-9_-]{32}$/
/** A signature as written: base64url of 32 bytes, no padding. */
const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{43}$/

const encoder = new TextEncoder()

/** Web Crypto's key type, named from the global `crypto` (no DOM lib, no `node:crypto` import). */
type CryptoKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>

function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** A new session id: 192 bits from the platform's CSPRNG. */
export function newSessionId(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(ID_BYTES)))
}

/**
 * Equal bytes, in a time that depends only on the length (which is public: every signature has 32 bytes),
 * so that a forger learns nothing from how long a wrong signature takes to refuse.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number)
  return diff === 0
}

/** Signs with the first secret, verifies with any of them (secret rotation). */
export class Signer {
  readonly #secrets: readonly string[]
  #keys: Promise<CryptoKey[]> | undefined

  constructor(secrets: readonly string[]) {
    this.#secrets = secrets
  }

  /** Imported once, on first use: `importKey` is async and the middleware is built synchronously. */
  #cryptoKeys(): Promise<CryptoKey[]> {
    this.#keys ??= Promise.all(
      this.#secrets.map((secret) => crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])),
    )
    return this.#keys
  }

  async #mac(key: CryptoKey, id: string): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(id)))
  }

  /** The cookie value for `id`: `<id>.<signature>`. */
  async sign(id: string): Promise<string> {
    const [first] = await this.#cryptoKeys()
    return `${id}.${base64url(await this.#mac(first as CryptoKey, id))}`
  }

  /** The id a cookie value carries if one of the secrets signed it; `undefined` for anything else. */
  async verify(value: string | undefined): Promise<string | undefined> {
    if (value === undefined) return undefined
    const dot = value.indexOf('.')
    if (dot < 0) return undefined
    const id = value.slice(0, dot)
    const signature = value.slice(dot + 1)
    if (!ID_PATTERN.test(id) || !SIGNATURE_PATTERN.test(signature)) return undefined
    // The signature's text is compared, not its decoded bytes: the last of its 43 characters carries 2 bits
    // that decoding drops, so 4 different texts decode to the same 32 bytes, and a cookie whose signature was
    // altered there must not pass.
    const given = encoder.encode(signature)
    for (const key of await this.#cryptoKeys()) {
      if (constantTimeEqual(given, encoder.encode(base64url(await this.#mac(key, id))))) return id
    }
    return undefined
  }
}
