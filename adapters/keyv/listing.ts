/**
 * Listing and deleting keys by scanning the store's iterator: `keys(prefix)`, `clear(prefix)` and the purge
 * of expired entries touch only the keys they match, never `store.clear()`.
 */
import { CacheBackendError } from '../../src/errors.js'
import { decodeEntry, escapeKey, unescapeKey, type Entry } from './envelope.js'
import type { RawStore } from './store.js'
import type { BoundedCalls } from './timeouts.js'

const noop = (): void => {}

/** Every entry of the store; each step of its iterator gets `commandTimeout`. */
export async function* entries(store: () => RawStore, calls: BoundedCalls, op: string): AsyncGenerator<[string, Entry | undefined]> {
  const st = store()
  if (typeof st.iterator !== 'function') {
    throw new CacheBackendError('This Keyv store has no iterator, so the keyv backend cannot list or clear keys by prefix on it.')
  }
  const source = st.iterator(undefined)
  if (!(Symbol.asyncIterator in source)) {
    for (const [key, raw] of source) if (typeof key === 'string') yield [unescapeKey(key), decodeEntry(raw)]
    return
  }
  const it = source[Symbol.asyncIterator]()
  let finished = false
  try {
    for (;;) {
      const step = await calls.run(op, undefined, async (o) => calls.send(o, () => it.next()))
      if (step.done === true) {
        finished = true
        return
      }
      const [key, raw] = step.value
      if (typeof key === 'string') yield [unescapeKey(key), decodeEntry(raw)]
    }
  } finally {
    // Not awaited: after a timeout the iterator is still waiting for the store.
    if (!finished) void Promise.resolve(it.return?.()).catch(noop)
  }
}

/** The keys that `match`. Keys first, deletes after: some iterators page by offset and would skip rows deleted under them. */
export async function collect(store: () => RawStore, calls: BoundedCalls, op: string, match: (key: string, entry: Entry | undefined) => boolean): Promise<string[]> {
  const found: string[] = []
  for await (const [key, entry] of entries(store, calls, op)) if (match(key, entry)) found.push(key)
  return found
}

/** Deletes in batches of 500, each within `commandTimeout`. */
export async function deleteKeys(store: () => RawStore, calls: BoundedCalls, op: string, keys: readonly string[]): Promise<void> {
  const st = store()
  for (let i = 0; i < keys.length; i += 500) {
    const batch = keys.slice(i, i + 500)
    const escaped = batch.map(escapeKey)
    await calls.run(op, batch, (o) =>
      calls.sendWrite(o, batch, () => (typeof st.deleteMany === 'function' ? st.deleteMany(escaped) : Promise.all(escaped.map((k) => st.delete(k))))),
    )
  }
}
