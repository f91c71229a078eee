/** The null backend, as the Cache knows it before loading it. */
import type { AdapterDefinition } from '../../src/definition.js'

/** The null backend has no options. */
export type NullAdapterOptions = Record<string, never>

/** `null:` (or `type: 'none'`): stores nothing, to switch caching off by config. */
export const nullDefinition: AdapterDefinition = {
  type: 'null',
  aliases: ['none'],
  options: {},
  schemes: ['null'],
  load: async () => (await import('./index.js')).nullAdapter,
}
