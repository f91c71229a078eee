export { Cache, MAX_KEY_LENGTH, type CacheStats, type Factory } from './cache.js'
export { cache, createCache } from './singleton.js'
export type { GetOrSetOptions, LeaseOptions } from './getorset.js'
export { MAX_TAG_LENGTH, MAX_TAGS, type SetOptions } from './tags.js'
export type { Memoized, MemoizedDecorator, MemoizeOptions } from './memoize/index.js'
export {
  configFromEnv,
  DEFAULTS,
  EMBEDDED_DEFAULT,
  type AdapterOptions,
  type CacheConfig,
  type CommonOptions,
} from './config/index.js'
export { registerAdapter } from './registry.js'
export type { AdapterDefinition, OptionKind } from './definition.js'
export { parseDuration, type Duration, type Milliseconds } from './duration.js'
export {
  CacheArgumentError,
  CacheBackendError,
  CacheClosedError,
  CacheConfigError,
  CacheError,
  CacheFactoryError,
  CacheNotInitializedError,
  CacheSerializationError,
  CacheTypeError,
  CacheUnsupportedError,
  type CacheErrorCode,
  type IncrementRefusal,
} from './errors.js'
export type { CacheEventName, CacheEvents, CacheListener, ErrorInfo } from './events.js'
export { TRACE_CHANNEL, type OperationContext, type TracedOperation } from './trace.js'
export { jsonCodec, v8Codec, type Codec, type SerializerOption } from './codec.js'
export { addToPayload, parseIntegerPayload, samePayload } from './adapter.js'
export type {
  AdapterCapabilities,
  AdapterContext,
  AdapterEntry,
  AdapterEvent,
  AdapterFactory,
  Awaitable,
  CacheAdapter,
  ExpiresAt,
  Payload,
} from './adapter.js'
