export {
  type BusHandlers,
  type BusStats,
  EventBus,
  type EventBusOptions,
  type RecentEvent,
} from './bus/event-bus.js';
export {
  type CacheEvent,
  type CacheEventInput,
  type CacheEventType,
  cacheEventSchema,
  compareStreamIds,
  EVENT_TYPES,
  type EventBody,
} from './bus/events.js';
export { Cache, type CacheDeps, createCache } from './cache.js';
export {
  CACHE_ENV_SCHEMA,
  CACHE_IMPLS,
  type CacheImpl,
  type CacheOptions,
  cacheOptionsSchema,
  ENV_VARS,
  loadCacheConfig,
  type ResolvedCacheOptions,
  resolveCacheOptions,
} from './config.js';
export { type BreakerState, CircuitBreaker } from './drivers/breaker.js';
export { createCodec, isTombstone } from './drivers/codec.js';
export type { L2ErrorType } from './drivers/guard.js';
export { MemoryStore, type MemoryStoreOptions } from './drivers/memory.js';
export { NullStore } from './drivers/null.js';
export type { HotKey, UnlinkStep } from './drivers/redis/bulk.js';
export type { BackupPoint, DumpedKey, DumpStep, RestoreResult } from './drivers/redis/lifecycle.js';
export { RedisStore, type RedisStoreOptions } from './drivers/redis/store.js';
export type { L2Sample, NamespaceSample, RedisNodeInfo } from './drivers/redis/telemetry.js';
export { AUDIT_MAXLEN, TuningStore } from './drivers/redis/tuning.js';
export { TieredStore } from './drivers/tiered.js';
export { CacheError, type CacheErrorCode, ERROR_CODES, isCacheError } from './errors.js';
export { FleetOps, type WarmBatchResult } from './fleet.js';
export {
  type Acknowledged,
  FENCE_TTL_MS,
  type FleetAck,
  type FleetWait,
  fleetWaitSchema,
} from './fleet-wait.js';
export {
  isUnreachable,
  type MigrateFailure,
  type MigratePrepared,
  type MigrateStepOptions,
  type MigrateStepResult,
  type SweepStepOptions,
} from './lifecycle.js';
export { FastCounter, type Increment } from './metrics/counter.js';
export { FastHistogram, type Observer } from './metrics/histogram.js';
export {
  DEFAULT_ID_SCHEMA,
  defineNamespace,
  type LoadContext,
  type Namespace,
  type NamespaceDefinition,
  type SourceTable,
} from './namespace.js';
export { CacheRegistry, type CacheStatus } from './registry.js';
export { type Err, err, type Ok, ok, type Result, type Staleness } from './result.js';
export { globToRegExp } from './stack/coherence.js';
export type { ReadOptions } from './stack/fail-safe.js';
export { type DeepReadonly, deepFreeze } from './stack/freeze.js';
export { MAX_TUNED_L1_TTL_MS } from './stack/state.js';
export type { NamespaceStats, TierStats } from './stats.js';
export {
  type CohortCount,
  type FleetNamespace,
  type FleetView,
  type PodSnapshot,
  podSnapshotSchema,
  type TierRates,
} from './telemetry.js';
export { ATTR, SPAN, type Tier, tracerProviderRegistered } from './tracing.js';
export {
  type AuditEntry,
  type AuditInput,
  auditEntrySchema,
  DEFAULT_TUNING,
  type NamespaceTuning,
  namespaceTuningSchema,
  parseRolloutHash,
  pinField,
  ROLLOUT_SETTING,
  type RolloutStage,
  rolloutOfEvent,
  rolloutPercentSchema,
  rolloutStageSchema,
  type StoredAuditEntry,
  TUNE_SETTINGS,
  type TuneSetting,
  tuneFactorSchema,
} from './tuning.js';
export type { CacheImplName, CacheStore, SetOptions, StoreHealth } from './types.js';
