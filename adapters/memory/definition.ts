/** The memory backend, as the Cache knows it before loading it. */
import type { AdapterDefinition } from '../../src/definition.js'
import type { Size } from '../../src/size.js'

/** Options of the memory backend; `threshold` (a common option) bounds its entries. */
export interface MemoryAdapterOptions {
  /**
   * The most bytes the entries may take, counted as the UTF-8 bytes of each key plus the bytes of its
   * encoded value; least recently used entries go first, as with `threshold` (both bounds hold). A number
   * of bytes or a string such as `'64mb'` (binary units: 1mb = 1024 KiB). An entry larger than this is not
   * stored: `set` reports the failure (`false` and an `'error'` event under fail-open), and the key's old
   * value stays. `0` means no byte bound; with `threshold: 0` and no `maxBytes`, the memory cache is
   * unbounded, as before, and warns.
   * @default '64mb'
   */
  maxBytes?: Size
}

/** `memory:` (or `type: 'memory'`, Flask-Caching's `simple`): one process's memory. */
export const memoryDefinition: AdapterDefinition = {
  type: 'memory',
  aliases: ['simple'],
  options: { maxBytes: 'size' },
  schemes: ['memory'],
  load: async () => (await import('./index.js')).memoryAdapter,
}
