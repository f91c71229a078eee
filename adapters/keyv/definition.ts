/** The keyv bridge, as the Cache knows it before loading it: its options, and that it takes no URL. */
import type { KeyvStoreAdapter } from 'keyv'
import type { AdapterDefinition } from '../../src/definition.js'
import type { Duration } from '../../src/duration.js'

/**
 * A Keyv store described by plain data, for configs that cannot hold an object: a JSON file, or the child
 * processes of a multi-process test. The module's default export is constructed with `options`.
 *
 * @example { module: '@keyv/postgres', options: { uri: 'postgresql://127.0.0.1/app' } }
 */
export interface KeyvStoreSpec {
  /** The package (or path) to import, e.g. `'@keyv/sqlite'`. */
  module: string
  /** The argument its default export is constructed with, e.g. a URI or an options object. */
  options?: unknown
}

/**
 * The shape shared by every Keyv storage adapter and by Keyv itself. Structural on purpose: the published
 * types of some adapters (`@keyv/sqlite`, `@keyv/postgres`) do not satisfy keyv's own `KeyvStoreAdapter`.
 */
export interface KeyvStoreLike {
  get(key: string): unknown
  set(key: string, value: never, ttl?: number): unknown
  delete(key: string): unknown
  clear(): unknown
}

/** What the `store` option takes: a Keyv storage adapter, a Keyv instance, a `Map`, or a {@link KeyvStoreSpec}. */
export type KeyvStoreOption = KeyvStoreLike | KeyvStoreAdapter | Map<unknown, unknown> | KeyvStoreSpec

/** Options of the `keyv` backend. */
export interface KeyvAdapterOptions {
  /** The Keyv store to wrap. One store serves one cache. */
  store: KeyvStoreOption
  /**
   * Other processes use the same store (a database, not a `Map`). It changes what the capabilities say,
   * and `inc`/`add` then warn once that they are not atomic across processes on this backend.
   * @default false
   */
  shared?: boolean
  /**
   * How long `ready()` waits for the store's first answer before it rejects with a `CacheBackendError`.
   * The store stays open, and later calls work once it answers.
   * @default '5s'
   */
  connectTimeout?: Duration
  /**
   * The longest any one call to the store may take. A call that times out fails with a `CacheBackendError`
   * naming the operation and the key (a miss or `false` with `failOpen`; an error for `inc`, `dec` and `add`).
   * @default '1s'
   */
  commandTimeout?: Duration
}

/** `type: 'keyv'` with a `store`: any Keyv storage adapter as a backend. It takes no URL. */
export const keyvDefinition: AdapterDefinition = {
  type: 'keyv',
  options: { store: 'object', shared: 'boolean', connectTimeout: 'duration', commandTimeout: 'duration' },
  load: async () => (await import('./index.js')).keyvAdapter,
}
