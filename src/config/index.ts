/** The config: its options and defaults, resolving, the environment, suggestions. */
export { checkAdapter } from './check-adapter.js'
export { configFromEnv, type EnvOptions } from './env.js'
export {
  COMMON_ENV,
  COMMON_KINDS,
  DEFAULTS,
  describeEmbeddedDefault,
  EMBEDDED_DEFAULT,
  type AdapterOptions,
  type CacheConfig,
  type CommonOptions,
  type UrlOption,
} from './options.js'
export { configDifferences, differentConfigError, resolveConfig, sizeOption, type ResolvedConfig } from './resolve.js'
export { checkOptionNames, didYouMean, suggest, unknownOptionMessage } from './suggest.js'
export { durationOption } from '../duration.js'
