export {
  createRedisClient,
  dropConnections,
  isCluster,
  type RedisClient,
  type RedisClientOptions,
  type RedisRole,
} from './client.js';
export { type RedisConnection, type ResolvedRedisConnection, redisConnectionSchema } from './connection.js';
export { Downtime } from './downtime.js';
export { type Heartbeat, type HeartbeatOptions, startHeartbeat } from './heartbeat.js';
export { CacheKeys, cacheKeys, entryBase, entryGlob, scopedTag } from './keys.js';
export { type ScrapeLease, scrapeLease } from './lease.js';
export {
  type CommandTracker,
  escapeGlob,
  findMaster,
  masterName,
  masters,
  SCAN_COUNT,
  type ScanOptions,
  type ScanStep,
  scanFraction,
  scanMasters,
  scanStep,
} from './scan.js';
export { defineScripts, loadScripts, type ScriptFile, type ScriptSet, type ScriptSource } from './scripts.js';
export { HangWatchdog, type HangWatchdogOptions } from './watchdog.js';
