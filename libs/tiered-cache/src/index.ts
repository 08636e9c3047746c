export { type BusHandlers, type BusStats, EventBus, type EventBusOptions } from './bus/event-bus.js';
export {
  type CacheEvent,
  type CacheEventInput,
  type CacheEventType,
  cacheEventSchema,
  compareStreamIds,
  EVENT_TYPES,
  type EventBody,
} from './bus/events.js';
export { Cache, type CacheDeps, createCache, type NamespaceStats, type TierStats } from './cache.js';
export {
  CACHE_IMPLS,
  type CacheImpl,
  type CacheOptions,
  cacheOptionsSchema,
  ENV_VARS,
  loadCacheConfig,
  type RedisConnection,
  type ResolvedCacheOptions,
  type ResolvedRedisConnection,
  redisConnectionSchema,
  resolveCacheOptions,
} from './config.js';
export { type BreakerState, CircuitBreaker } from './drivers/breaker.js';
export { createCodec } from './drivers/codec.js';
export { MemoryStore, type MemoryStoreOptions } from './drivers/memory.js';
export { NullStore } from './drivers/null.js';
export {
  escapeGlob,
  isTombstone,
  type L2ErrorType,
  RedisStore,
  type RedisStoreOptions,
} from './drivers/redis.js';
export type { HotKey, UnlinkStep } from './drivers/redis-bulk.js';
export { TieredStore } from './drivers/tiered.js';
export { CacheError, type CacheErrorCode, ERROR_CODES, isCacheError } from './errors.js';
export { FleetOps, type WarmBatchResult } from './fleet.js';
export { DEFAULT_ID_SCHEMA, defineNamespace, type Namespace, type NamespaceDefinition } from './namespace.js';
export {
  createRedisClient,
  type RedisClient,
  type RedisClientOptions,
  type RedisRole,
} from './redis/factory.js';
export { CacheRegistry, type CacheStatus } from './registry.js';
export { type Err, err, type Ok, ok, type Result } from './result.js';
export { globToRegExp } from './stack/coherence.js';
export type { CacheImplName, CacheStore, SetOptions, StoreHealth } from './types.js';
