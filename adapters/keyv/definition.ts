/**
 * The keyv bridge, as the Cache knows it before loading it. Its options are declared beside the bridge
 * (`KeyvAdapterOptions`, re-exported here) until the bridge moves into this folder.
 */
import type { AdapterDefinition } from '../../src/definition.js'

export type { KeyvAdapterOptions, KeyvStoreOption } from '../keyv.js'

/** `type: 'keyv'` with a `store`: any Keyv storage adapter as a backend. It takes no URL. */
export const keyvDefinition: AdapterDefinition = {
  type: 'keyv',
  options: { store: 'object', shared: 'boolean', connectTimeout: 'duration', commandTimeout: 'duration' },
  load: async () => (await import('../keyv.js')).keyvAdapter,
}
